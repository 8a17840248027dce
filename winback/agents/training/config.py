"""The training config: its fields, their checks, and TOML files of them."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winback.agents.sb3 import ALGORITHMS
from winback.agents.tuning import FAMILIES
from winback.errors import ConfigError
from winback.scenarios.scenario import BUILT_IN

PPO_FAMILY = ("ppo", "maskable_ppo", "recurrent_ppo")
"""Algorithms that split a rollout into minibatches of ``batch_size``."""
CLONABLE = ("ppo", "maskable_ppo")
"""Algorithms that can start from a rule (``imitate``): feed-forward actor-critics."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; the defaults are the best found on the default scenario."""

    algo: str = "maskable_ppo"
    """Algorithm: ppo, a2c, dqn, maskable_ppo (never samples a masked action) or recurrent_ppo (LSTM).
    On the default scenario at 1M timesteps MaskablePPO and PPO tie over five seeds; RecurrentPPO,
    A2C and DQN score lower (``benchmarks/RESULTS.md``, "Which algorithm")."""
    scenario: str = "default"
    """Scenario whose training users the agent learns on: a built-in name or the path of a TOML file."""
    total_timesteps: int = 300_000
    """User-periods to train on (on-policy algorithms round up to whole rollouts)."""
    seed: int = 0
    """Seeds the simulator's streams, the environment's draws of users and the networks."""
    n_envs: int = 64
    """Users stepping together in the vectorised environment."""
    learning_rate: float = 3e-4
    """Adam step size (constant; 1e-4 learns too slowly in 300k timesteps, 1e-3 ends lower)."""
    n_steps: int = 128
    """On-policy rollout length per environment slot (PPO family, A2C)."""
    batch_size: int = 256
    """Minibatch size (PPO family: must divide ``n_steps * n_envs``; DQN: replay sample size)."""
    n_epochs: int = 10
    """Passes over each rollout (PPO family; 4 learns less per timestep)."""
    gamma: float = 0.999
    """Discount factor; also discounts the returns reward normalisation scales by. Contacts pay back over
    months (a care message's lift fades over six weeks, a win-back rekindles interest): discount little."""
    gae_lambda: float = 0.95
    """GAE bias-variance trade-off (PPO family, A2C)."""
    clip_range: float = 0.2
    """PPO's policy-ratio clip."""
    ent_coef: float = 0.01
    """Entropy bonus (PPO family, A2C)."""
    vf_coef: float = 0.5
    """Value-loss weight (PPO family, A2C)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value (or Q) networks."""
    lstm_hidden_size: int = 64
    """LSTM units (recurrent_ppo)."""
    buffer_size: int = 100_000
    """Replay buffer transitions (DQN)."""
    learning_starts: int = 5_000
    """Transitions collected before the first gradient step (DQN)."""
    train_freq: int = 4
    """Vectorised steps between DQN updates."""
    gradient_steps: int = 16
    """Gradient steps per DQN update."""
    target_update_interval: int = 5_000
    """Timesteps between target-network updates (DQN)."""
    exploration_fraction: float = 0.2
    """Share of training over which DQN's epsilon falls from 1 to ``exploration_final_eps``."""
    exploration_final_eps: float = 0.05
    """Final epsilon of DQN's epsilon-greedy exploration."""
    normalize_observations: bool = True
    """Standardise observations with running statistics (saved as JSON with every model)."""
    reward: str = "expected"
    """What the agent learns from: ``expected`` (each period's net value in expectation over its
    draws, :meth:`~winback.simulator.core.Simulator.expected_reward`: the same objective with the
    purchase-draw noise removed) or ``realised`` (the drawn net value). Validation is realised.
    Expected: over seeds 0-4 at 600k timesteps its best validation value beat realised's in every seed
    (mean +1.39 $/user, ``benchmarks/RESULTS.md``)."""
    bootstrap_horizon: bool = False
    """What an episode's return holds at the scenario's horizon. ``False``: nothing after it, so the
    agent maximises what the benchmark measures, the net value over the horizon; the environment
    still reports a time limit, and training treats it as the end of the task. ``True``: SB3's
    time-limit bootstrap adds the critic's value of the user beyond the horizon (a continuing task).
    False: over seeds 0-3 at 600k timesteps its best validation value beat True's in three seeds and
    its mean by 1.66 $/user, with 1-4 points more opt-outs; a fifth seed, trained afterwards, tied
    (``benchmarks/RESULTS.md``)."""
    normalize_rewards: bool = True
    """Scale rewards by the running std of discounted returns (training only; validation is in dollars).
    The hyperparameter that matters most: without it, PPO learns far less
    (:func:`~winback.agents.training.factory.make_env` has the measurements)."""
    imitate: str = ""
    """Start from a tuned rule instead of random weights (:mod:`~winback.agents.training.imitation`):
    a rule family (``interest_threshold``, ``recency_rule``, ``fixed_cadence``), ``best_rule`` (the
    best of the three after tuning), or empty. PPO and MaskablePPO only."""
    imitation_users: int = 4000
    """Training users the imitated rule is tuned on and recorded on (0: all; as ``bench --tuning-users``)."""
    imitation_quick: bool = False
    """Tune the imitated rule on its coarse grid (as ``bench --quick``; for tests and smoke runs)."""
    imitation_epochs: int = 10
    """Passes of behaviour cloning over the rule's recorded decisions."""
    imitation_smoothing: float = 0.2
    """Share of the cloned probability spread evenly over the allowed actions (label smoothing). A
    clone fitted to the rule's actions alone is nearly deterministic (entropy 0.015 nats on the
    strong-season world) and PPO hardly moves it; 0.2 gives about 0.59 nats with four actions, the
    entropy PPO's own policies keep there (0.55-0.65 after 250k timesteps), with the rule's choice
    still the most likely."""
    value_warmup: int = 50_000
    """Timesteps after cloning during which only the critic learns (the actor frozen)."""
    eval_every: int = 20_000
    """Timesteps between validation evaluations (also one before training and one at the end)."""
    eval_users: int = 0
    """Validation users evaluated (a fixed seeded subsample; 0: all)."""
    checkpoint_every: int = 50_000
    """Timesteps between checkpoints (also one at the end, from which ``resume`` extends a run)."""
    torch_threads: int = 1
    """Threads torch may use."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), str(field.type))
        rollout = self.n_steps * self.n_envs
        checks: dict[str, tuple[bool, str]] = {
            "algo": (self.algo in ALGORITHMS, f"one of {', '.join(ALGORITHMS)}"),
            "scenario": (
                self.scenario in BUILT_IN
                or (self.scenario.endswith(".toml") and Path(self.scenario).is_file()),
                f"one of {', '.join(BUILT_IN)}, or the path of an existing .toml file",
            ),
            "total_timesteps": (self.total_timesteps >= 1, ">= 1"),
            "n_envs": (self.n_envs >= 1, ">= 1"),
            "learning_rate": (0 < self.learning_rate < math.inf, "(0, inf)"),
            "n_steps": (self.n_steps >= 1 and rollout > 1, ">= 1, and n_steps * n_envs >= 2"),
            "batch_size": (
                self.batch_size >= 2 and (self.algo not in PPO_FAMILY or rollout % self.batch_size == 0),
                f">= 2, and for {', '.join(PPO_FAMILY)} a divisor of n_steps * n_envs = {rollout}",
            ),
            "n_epochs": (self.n_epochs >= 1, ">= 1"),
            "gamma": (0 < self.gamma <= 1, "(0, 1]"),
            "gae_lambda": (0 <= self.gae_lambda <= 1, "[0, 1]"),
            "clip_range": (0 < self.clip_range < math.inf, "(0, inf)"),
            "ent_coef": (0 <= self.ent_coef < math.inf, "[0, inf)"),
            "vf_coef": (0 <= self.vf_coef < math.inf, "[0, inf)"),
            "max_grad_norm": (0 < self.max_grad_norm < math.inf, "(0, inf)"),
            "net_arch": (all(size >= 1 for size in self.net_arch), "sizes >= 1"),
            "lstm_hidden_size": (self.lstm_hidden_size >= 1, ">= 1"),
            "buffer_size": (self.buffer_size >= self.batch_size, f">= batch_size = {self.batch_size}"),
            "learning_starts": (self.learning_starts >= 0, ">= 0"),
            "train_freq": (self.train_freq >= 1, ">= 1"),
            "gradient_steps": (self.gradient_steps >= 1, ">= 1"),
            "target_update_interval": (self.target_update_interval >= 1, ">= 1"),
            "exploration_fraction": (0 < self.exploration_fraction <= 1, "(0, 1]"),
            "exploration_final_eps": (0 <= self.exploration_final_eps <= 1, "[0, 1]"),
            "eval_every": (self.eval_every >= 1, ">= 1"),
            "eval_users": (self.eval_users >= 0, ">= 0 (0: all)"),
            "checkpoint_every": (self.checkpoint_every >= 1, ">= 1"),
            "torch_threads": (self.torch_threads >= 1, ">= 1"),
            "reward": (self.reward in ("expected", "realised"), "'expected' or 'realised'"),
            "imitate": (
                self.imitate in ("", "best_rule", *FAMILIES) and (not self.imitate or self.algo in CLONABLE),
                f"'', 'best_rule' or one of {', '.join(FAMILIES)}; with algo {' or '.join(CLONABLE)}",
            ),
            "imitation_users": (self.imitation_users >= 0, ">= 0 (0: all)"),
            "imitation_epochs": (self.imitation_epochs >= 1, ">= 1"),
            "value_warmup": (self.value_warmup >= 0, ">= 0"),
            "imitation_smoothing": (0 <= self.imitation_smoothing < 1, "[0, 1)"),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ConfigError(f"TrainConfig.{name} = {getattr(self, name)!r} (allowed: {allowed})")

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (``net_arch`` as a list)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """A config from ``values`` (lists allowed for tuples); errors name ``source`` and the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        try:
            return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from err

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """The fields set in a TOML file (top-level keys), then ``overrides`` on top of them."""
        try:
            with open(path, "rb") as file:
                values = tomllib.load(file)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the training config ({err.strerror})") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from err
        return cls.from_dict({**values, **overrides}, source=str(path))


def _check_type(name: str, value: Any, annotation: str) -> None:
    """Raise if ``value`` is not of the annotated type (bools are not numbers here)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok, wanted = {
        "str": (isinstance(value, str), "a string"),
        "int": (is_int, "an integer"),
        "float": (is_int or isinstance(value, float), "a number"),
        "bool": (isinstance(value, bool), "true or false"),
        "tuple[int, ...]": (
            isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "a list of integers",
        ),
    }[annotation]
    if not ok:
        raise ConfigError(f"TrainConfig.{name} = {value!r} (expected {wanted})")
