"""The Gymnasium vector entry point of ``winback/Activation-v1`` over the batched simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from winback.envs.config import EnvConfig
from winback.envs.episodes import EpisodeBatch, EpisodeConfig, Reward, info_columns
from winback.scenarios.scenario import Scenario
from winback.simulator.core import Simulator
from winback.simulator.state import SimState


class ActivationVectorEnv(VectorEnv):
    """``num_envs`` activation episodes in one batched step, with Gymnasium's next-step autoreset.

    ``gymnasium.make_vec("winback/Activation-v1", num_envs=N, ...)`` builds it, with the arguments of
    :class:`~winback.envs.activation.ActivationEnv` (:meth:`EnvConfig.make`). Returns 5-tuples; an
    episode is truncated after the configuration's horizon, and the step after that resets the slot
    (its action is ignored, reward 0), as ``AutoresetMode.NEXT_STEP`` prescribes. ``reset(seed=s)``
    seeds slot ``i`` with ``s + i``, so slot ``i`` follows the same trajectory as ``ActivationEnv``
    reset with ``s + i``. ``infos`` are what ``SyncVectorEnv`` makes of the single environments'
    (tested): each of :data:`~winback.envs.episodes.INFO_KEYS` as an array with its ``_key`` mask,
    false in the slots being reset (none of the keys when every slot is).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
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
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(self.episodes.low, self.episodes.high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(len(self.simulator.actions))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator] = []
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if isinstance(seed, list):
            seeds = seed
        else:
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} environments")
        self._rngs = [gym.utils.seeding.np_random(s)[0] for s in seeds]
        self.episodes.start(np.arange(self.num_envs), self._rngs)
        self._autoreset[:] = False
        return self.episodes.observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._rngs:
            raise gym.error.ResetNeeded("call reset() before step()")
        restarting = self._autoreset.copy()
        outcome, reward = self.episodes.step(np.where(restarting, 0, np.asarray(actions, dtype=np.int64)))
        if restarting.any():
            slots = np.flatnonzero(restarting)
            self.episodes.start(slots, [self._rngs[slot] for slot in slots])
        stepped = ~restarting
        infos: dict[str, Any] = {}
        if stepped.any():
            for key, column in info_columns(outcome, self.simulator.actions).items():
                blank = np.full(self.num_envs, None) if column.dtype == object else np.zeros_like(column)
                infos[key], infos[f"_{key}"] = np.where(stepped, column, blank), stepped
        truncated = self.episodes.truncated()
        self._autoreset = truncated.copy()
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self.episodes.observe(), np.where(stepped, reward, 0.0), terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """(num_envs, A) bool valid actions of every slot."""
        return self.episodes.action_masks()
