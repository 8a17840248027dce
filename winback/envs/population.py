"""N users stepping together as one stable-baselines3 ``VecEnv`` over the batched simulator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from winback.allocation import PriceInput
from winback.envs.config import EnvConfig
from winback.envs.episodes import EpisodeBatch, EpisodeConfig, Reward, step_infos
from winback.scenarios.scenario import Scenario
from winback.simulator.core import Simulator
from winback.simulator.state import SimState

TRUNCATED = "TimeLimit.truncated"
"""``info`` key SB3 reads for an episode cut by a time limit (set ``True`` at the horizon)."""
TERMINAL_OBSERVATION = "terminal_observation"
"""``info`` key of an auto-reset slot's last observation, as SB3's ``VecEnv`` API has it."""


class PopulationVecEnv(VecEnv):
    """``num_envs`` :class:`~winback.envs.activation.ActivationEnv` episodes in one batched step.

    Takes the arguments of ``ActivationEnv`` after ``num_envs`` (:meth:`EnvConfig.make`), and is
    equivalent to ``DummyVecEnv`` of ``num_envs`` ``gymnasium.make("winback/Activation-v1", ...)`` with
    them: with the same seeds, every slot follows the same user through the same trajectory (tested),
    but one simulator call steps them all. SB3 conventions: 4-tuples, auto-reset after the horizon,
    seeds from :meth:`seed` used at the next :meth:`reset` (slot ``i`` gets ``seed + i``).
    ``env_method("action_masks")`` returns each slot's mask, as sb3-contrib's ``MaskablePPO`` expects.
    ``infos`` hold :data:`~winback.envs.episodes.INFO_KEYS` as the single environment's do; at an
    episode's end SB3's ``VecEnv`` API adds only ``TimeLimit.truncated`` (``True``) and
    ``terminal_observation`` (the last observation), as ``DummyVecEnv`` does.
    """

    def __init__(
        self,
        num_envs: int = 64,
        scenario: str | Path | Scenario | None = None,
        reward: Reward | None = None,
        *,
        simulator: Simulator | None = None,
        population: SimState | None = None,
        config: EpisodeConfig | None = None,
    ) -> None:
        env = EnvConfig.make(scenario, reward, simulator=simulator, population=population, config=config)
        self.simulator = env.simulator
        self.episodes = EpisodeBatch(env, num_envs)
        observation_space = spaces.Box(self.episodes.low, self.episodes.high, dtype=np.float32)
        self.render_mode = None
        super().__init__(num_envs, observation_space, spaces.Discrete(len(self.simulator.actions)))
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._actions = np.zeros(num_envs, dtype=np.int64)

    @property
    def price_input(self) -> PriceInput | None:
        """The prices of shared resources the observations end with (``None``: none)."""
        pricing = self.episodes.config.pricing
        return None if pricing is None else pricing.input

    def reset(self) -> VecEnvObs:
        self._start(np.arange(self.num_envs), self._seeds)
        self._reset_seeds()
        self._reset_options()
        return self.episodes.observe()

    def _start(self, slots: np.ndarray, seeds: Sequence[int | None]) -> None:
        """New episodes in ``slots``; a slot's generator is (re)seeded when its seed is given."""
        for slot, seed in zip(slots, seeds, strict=True):
            if seed is not None or self._rngs[slot] is None:
                self._rngs[slot] = gym.utils.seeding.np_random(seed)[0]
            self.reset_infos[slot] = {}
        self.episodes.start(slots, [self._rngs[slot] for slot in slots])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        outcome, rewards = self.episodes.step(self._actions)
        observations = self.episodes.observe()
        dones = self.episodes.truncated()
        infos: list[dict[str, Any]] = step_infos(outcome, self.simulator.actions)
        if dones.any():
            done = np.flatnonzero(dones)
            for slot in done:
                infos[slot][TERMINAL_OBSERVATION] = observations[slot].copy()
                infos[slot][TRUNCATED] = True
            self._start(done, [None] * len(done))
            observations[done] = self.episodes.observe()[done]
        return observations, rewards.astype(np.float32), dones, infos

    def action_masks(self) -> np.ndarray:
        """(num_envs, A) bool valid actions of every slot."""
        return self.episodes.action_masks()

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if indices is not None and len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("PopulationVecEnv slots share their attributes: set them for all slots")
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Calls a batched method (e.g. ``action_masks``) once and splits its result per slot."""
        result: Sequence[Any] = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
