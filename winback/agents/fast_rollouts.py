"""How SB3's on-policy rollouts end episodes at the horizon: two speed-ups that leave what it collects
unchanged (up to float rounding: a batched forward pass rounds differently in the last bit), and
:class:`EndReturnsAtHorizon`, which makes the horizon the end of the task.

Measured on this machine (``benchmarks/env_speed.py``): with 64 users of ``PopulationVecEnv``, SB3's
own work per vector step (policy forward, distribution, buffer) costs several times the simulator's,
and two parts of it are pure overhead for winback's environments:

* :class:`BatchedTimeoutBootstrap`: every episode ends at the horizon, and all slots of a vectorised
  environment usually end in the same step. SB3 adds ``gamma * V(terminal observation)`` to each
  truncated slot's reward with one value prediction per slot (64 single-row forward passes every
  52 steps); this callback makes one prediction for all of them.
* :func:`without_distribution_checks`: torch validates every ``Categorical`` it builds (its logits,
  then every sampled action) unless told not to; the checks only ever raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from winback.envs.population import TERMINAL_OBSERVATION, TRUNCATED

BOOTSTRAPPING = (PPO, A2C, MaskablePPO)
"""Algorithms whose rollouts bootstrap truncated episodes from ``V(observation)`` alone."""


class BatchedTimeoutBootstrap(BaseCallback):
    """SB3's bootstrap of episodes cut by a time limit, with one value prediction per step.

    For PPO, A2C and MaskablePPO, whose ``collect_rollouts`` calls callbacks after ``env.step`` and
    before its own bootstrap loop: this adds ``gamma * V(terminal observation)`` to the reward of
    every slot SB3 would bootstrap, in place, and clears their ``TimeLimit.truncated`` flag so that
    SB3's loop skips them. For array (``Box``) observations. Not for RecurrentPPO (its values need
    each slot's LSTM state). Put it last in a callback list, so that callbacks before it see the infos
    the environment returned.
    """

    def _init_callback(self) -> None:
        if not isinstance(self.model, BOOTSTRAPPING):
            names = [algo.__name__ for algo in BOOTSTRAPPING]
            raise TypeError(f"BatchedTimeoutBootstrap is for {names}, not {type(self.model).__name__}")

    def _on_step(self) -> bool:
        infos, rewards = self.locals["infos"], self.locals["rewards"]
        slots = [
            slot
            for slot in np.flatnonzero(self.locals["dones"])
            if infos[slot].get(TRUNCATED, False) and infos[slot].get(TERMINAL_OBSERVATION) is not None
        ]
        if not slots:
            return True
        policy = self.model.policy
        observations = np.stack([infos[slot][TERMINAL_OBSERVATION] for slot in slots])
        with torch.no_grad():
            values = policy.predict_values(policy.obs_to_tensor(observations)[0])
        for slot, value in zip(slots, values, strict=True):
            rewards[slot] += self.model.gamma * value  # SB3's own expression, slot by slot
            infos[slot][TRUNCATED] = False
        return True


class EndReturnsAtHorizon(BaseCallback):
    """Makes the time limit the end of the task for an on-policy algorithm: clears the
    ``TimeLimit.truncated`` flag of every slot that ends, so that ``collect_rollouts`` adds no
    bootstrap value and a return holds the rewards up to the horizon only."""

    def _init_callback(self) -> None:
        if not isinstance(self.model, OnPolicyAlgorithm):
            algo = type(self.model).__name__
            raise TypeError(f"EndReturnsAtHorizon is for on-policy algorithms, not {algo}")

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        for slot in np.flatnonzero(self.locals["dones"]):
            if TRUNCATED in infos[slot]:
                infos[slot][TRUNCATED] = False
        return True


def horizon_callback(model: BaseAlgorithm, bootstrap: bool) -> BaseCallback | None:
    """The callback with which ``model`` ends episodes at the horizon the way ``bootstrap`` asks
    (:attr:`~winback.agents.training.TrainConfig.bootstrap_horizon`); ``None`` where SB3's own
    handling is already that (RecurrentPPO bootstrapping; DQN, whose replay buffer decides)."""
    if not bootstrap and isinstance(model, OnPolicyAlgorithm):
        return EndReturnsAtHorizon()
    if bootstrap and isinstance(model, BOOTSTRAPPING):
        return BatchedTimeoutBootstrap()
    return None


@contextmanager
def without_distribution_checks() -> Iterator[None]:
    """Builds torch distributions without validating their arguments inside the block."""
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)
