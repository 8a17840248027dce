"""Kickstarting an agent from a tuned rule: behaviour cloning, then a critic warm-up.

Where contacts pay little (weak effects, small margins) PPO from random weights can end below the
best threshold rule: the gains it must find are small against the noise of its own exploration. A
run with ``imitate`` set starts instead from the rule the benchmark compares it with: the rule is
tuned on training users exactly as ``winback bench`` tunes it, its decisions on those users are
recorded, and the policy network is fitted to them (cross-entropy of the masked action
distribution, against the rule's action smoothed over the allowed ones: the clone's greedy choice is
the rule's, but it still explores as PPO's own policies do). The observation statistics start as
those of the recorded observations. PPO then
trains the critic alone for ``value_warmup`` timesteps (the actor frozen, so that the first policy
updates follow real advantages rather than an untrained critic's), and everything after that.

Validation at timestep 0 evaluates the cloned policy, so the best model kept is never worse on the
validation users than the clone. Only feed-forward actor-critics (PPO, MaskablePPO) clone: the
recurrent policy's state and the value-based learners have no action distribution to fit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.base import DecisionContext, Policy
from winback.agents.sb3 import ObservationNormalization, SB3Policy
from winback.agents.training.callbacks import VALIDATION_SEED, validation_users
from winback.agents.training.config import TrainConfig
from winback.agents.tuning import FAMILIES
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import (
    RULES,
    BenchConfig,
    SimulatorsBySeed,
    TuningSetting,
    tune_baselines,
)
from winback.scenarios.scenario import Scenario

BATCH_SIZE = 256
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class Imitation:
    """What a run was cloned from, and how closely (recorded in ``train.json``)."""

    rule: str
    params: dict[str, Any]
    rule_value: float
    """The rule's mean net value per user on the training users it was tuned on."""
    rule_validation_value: float
    """Its net value per user on the validation users, as the learning curve measures the agent."""
    decisions: int
    """Recorded user-periods the policy was fitted to."""
    agreement: float
    """Share of them where the cloned policy's greedy action is the rule's."""
    contact_agreement: float
    """The same, among the user-periods where the rule contacts."""
    entropy: float
    """Mean entropy (nats) of the clone's masked action distribution on them: how much it explores."""

    def to_dict(self) -> dict[str, Any]:
        return {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in dataclasses.asdict(self).items()
        }


class _Recorder(Policy):
    """``policy``, keeping every observation, mask and action it was given and chose."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.name, self.separable = policy, policy.name, policy.separable
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self.policy.reset(context)

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        actions = self.policy.act(observations, masks, period)
        self.batches.append((observations.copy(), masks.copy(), np.asarray(actions, dtype=np.int64)))
        return actions


def kickstart(
    config: TrainConfig, scenario: Scenario, model: BaseAlgorithm, env: VecNormalize, *, progress: bool
) -> Imitation:
    """Tune ``config.imitate``'s rule on training users, clone it into ``model``'s policy and start
    ``env``'s observation statistics from its observations."""
    families = RULES if config.imitate == "best_rule" else (config.imitate,)
    bench = BenchConfig(
        scenario=config.scenario,
        policies=families,
        tuning_users=config.imitation_users,
        quick=config.imitation_quick,
    )
    setting = TuningSetting.of(bench, scenario)
    tuned = tune_baselines(bench, setting, SimulatorsBySeed(scenario), progress=progress)
    best = max(tuned.values(), key=lambda result: result.best.net_value)
    rule = best.policy(FAMILIES[best.family].make, best.family)
    validation = run_policy(rule, scenario, validation_users(scenario, config.eval_users), [VALIDATION_SEED])
    recorder = _Recorder(rule)
    run_policy(recorder, scenario, setting.users, setting.seeds[:1])
    observations, masks, actions = (np.concatenate(part) for part in zip(*recorder.batches, strict=True))
    env.obs_rms.update(observations)
    normalization = ObservationNormalization.of(env)
    normalized = normalization.normalize(observations)
    _fit(config, model, normalized, masks, actions)
    greedy = SB3Policy(model, normalization).act(observations, masks, 0)
    contacts = actions > 0
    return Imitation(
        rule=best.family,
        params=best.best.params,
        rule_value=best.best.net_value,
        rule_validation_value=float(validation.metrics["net_value"].mean()),
        decisions=len(actions),
        agreement=float(np.mean(greedy == actions)),
        contact_agreement=float(np.mean(greedy[contacts] == actions[contacts])) if contacts.any() else 1.0,
        entropy=_entropy(model, normalized, masks),
    )


def _distribution(model: BaseAlgorithm, obs: torch.Tensor, masks: np.ndarray) -> Distribution:
    """``model``'s action distribution on ``obs`` (masked for MaskablePPO)."""
    if isinstance(model, MaskablePPO):
        return model.policy.get_distribution(obs, action_masks=masks)
    return model.policy.get_distribution(obs)


def _entropy(model: BaseAlgorithm, observations: np.ndarray, masks: np.ndarray) -> float:
    """Mean entropy (nats) of ``model``'s action distribution on ``observations``."""
    with torch.no_grad():
        return float(_distribution(model, torch.as_tensor(observations), masks).entropy().mean())


def _fit(
    config: TrainConfig,
    model: BaseAlgorithm,
    observations: np.ndarray,
    masks: np.ndarray,
    actions: np.ndarray,
) -> None:
    """``config.imitation_epochs`` passes of cross-entropy between the policy's (masked) action
    distribution and ``actions`` smoothed over the allowed actions, in seeded minibatches."""
    policy = model.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(config.seed)
    obs, acts = torch.as_tensor(observations), torch.as_tensor(actions)
    masks_tensor = torch.as_tensor(masks)
    smoothing = config.imitation_smoothing
    policy.set_training_mode(True)
    for _ in range(config.imitation_epochs):
        for index in torch.randperm(len(acts), generator=generator).split(BATCH_SIZE):
            allowed = masks_tensor[index].float()
            distribution = _distribution(model, obs[index], masks[index.numpy()])
            log_p = torch.log_softmax(distribution.distribution.logits, dim=1)
            chosen = log_p.gather(1, acts[index, None]).squeeze(1)
            spread = (log_p * allowed).sum(dim=1) / allowed.sum(dim=1)
            loss = -((1 - smoothing) * chosen + smoothing * spread).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    policy.set_training_mode(False)


class CriticWarmUp(BaseCallback):
    """Freezes the actor until ``until`` timesteps (only the critic learns from PPO's first rollouts)."""

    def __init__(self, until: int) -> None:
        super().__init__()
        self.until = until

    def _actor(self) -> list[torch.nn.Parameter]:
        policy = self.model.policy
        return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]

    def _set_frozen(self, frozen: bool) -> None:
        for parameter in self._actor():
            parameter.requires_grad_(not frozen)

    def _on_training_start(self) -> None:
        self._set_frozen(self.num_timesteps < self.until)

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.until:
            self._set_frozen(False)

    def _on_step(self) -> bool:
        return True
