"""One user over a horizon (a year by default): each week push new items, send a coupon, a care message,
or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from winback.envs.config import EnvConfig
from winback.envs.episodes import EpisodeBatch, EpisodeConfig, Reward, step_infos
from winback.scenarios.scenario import Scenario
from winback.simulator.core import Simulator
from winback.simulator.state import SimState


class ActivationEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    An episode follows one user drawn from a population, by default CDNOW's 23,570 customers as they
    stood at the end of calibration (week 39), simulated by :class:`winback.simulator.core.Simulator`
    with the packaged decay model (``winback.envs.defaults``). Each step is one period of the decay
    model (a week for CDNOW's): the agent chooses a contact or nothing; the user's interest decays as
    the learned model says, contacts lift it by the response priors of
    :mod:`winback.simulator.response` (a repeat of a kind whose lift is still in force refreshes it,
    kinds add), fatigue accumulates, and the user may opt out of contacts for good. A scenario
    (``scenario=``) sets the simulator, the users, the horizon, the frequency cap and shifts of
    demand the decay model does not know about (holiday shocks, faster decay); the policy observes
    the decay model's interest, without them.

    ## Action Space

    ``Discrete(4)``: ``0`` none, ``1`` push_new_items, ``2`` coupon, ``3`` care_message (the
    simulator's ``actions``; a custom response config may add kinds, the space grows with them).
    :meth:`action_masks` gives the valid actions for sb3-contrib's ``MaskablePPO``: no coupon while
    one is valid, no contact after an opt-out, and with ``min_contact_gap`` a frequency cap. A
    masked action is refused: it costs nothing and counts as ``none`` (``info["refused"]``).

    ## Observation Space

    ``Box(low, high, (F,), float32)`` with the features of :mod:`winback.simulator.features`, in
    order: interest (the decay model's probability of a purchase this period with no new contact),
    log recency, log frequency, log monetary, log tenure, new-user flag, fatigue, opted-out flag,
    coupon valid, and the periods since each contact kind over 52 (1: a year or more, or never).

    ## Rewards

    ``margin x spend - discounts paid - contact costs`` for the period
    (:mod:`winback.simulator.rewards`); with ``reward="expected"``, its expectation over the period's
    draws (:meth:`Simulator.expected_reward`: the same expected return with far less noise, what
    training learns from). ``info`` holds :data:`~winback.envs.episodes.INFO_KEYS`, the same in every
    environment: the realised parts ``margin``, ``discount`` and ``contact_cost`` (which add up to
    the realised reward), ``purchases``, ``spend``, ``delivered``, ``refused`` and ``opted_out``.

    ## Starting State

    A user of the population drawn by the environment's generator, with a drawn luck: the same seed
    gives the same user and the same random stream (common random numbers).

    ## Episode End

    Never terminates (users do not leave the store, they only stop buying); truncated by the
    environment itself after the configuration's horizon: 52 periods by default, a scenario's
    ``horizon`` with one. The id registers no ``max_episode_steps``: the horizon is part of the
    configuration, and a ``TimeLimit`` fixed at registration would cut a longer scenario short
    (``gymnasium.make(..., max_episode_steps=n)`` still adds one).

    ## Arguments

    ``gymnasium.make("winback/Activation-v1", scenario=None, reward=None, *, simulator=None,
    population=None, config=None)``: a scenario (built-in name, ``.toml`` path or
    :class:`Scenario`; its training users), or the default world; the reward; and explicit parts in
    place of the scenario's or the default's (:meth:`EnvConfig.make`). The vector environments take
    the same arguments after ``num_envs``.

    ## Version History

    * v1: repeated contacts of a kind refresh their lift to the larger of the fresh one and the one
      still in force instead of adding to it (the simulator's change in commit 3d4e0bb; v0, which
      stacked them, can no longer be built and is not registered). One configuration for every
      environment (:class:`EnvConfig`): a scenario's demand shocks and faster decay, horizon and
      frequency cap, and the expected reward; ``min_contact_gap`` moved into ``config``; truncation
      at the configuration's horizon by the environment instead of a registered ``TimeLimit``; the
      same ``info`` keys as the vector environments.
    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        scenario: str | Path | Scenario | None = None,
        reward: Reward | None = None,
        *,
        simulator: Simulator | None = None,
        population: SimState | None = None,
        config: EpisodeConfig | None = None,
    ) -> None:
        env = EnvConfig.make(scenario, reward, simulator=simulator, population=population, config=config)
        self.simulator = env.simulator
        self.episodes = EpisodeBatch(env, 1)
        self.action_space = spaces.Discrete(len(self.simulator.actions))
        self.observation_space = spaces.Box(self.episodes.low, self.episodes.high, dtype=np.float32)
        self._started = False
        self._slot = np.zeros(1, dtype=np.int64)
        self._action = np.zeros(1, dtype=np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.episodes.start(self._slot, [self.np_random])
        self._started = True
        return self.episodes.observe()[0], {}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        self._action[0] = action
        outcome, reward = self.episodes.step(self._action)
        info = step_infos(outcome, self.simulator.actions)[0]
        truncated = bool(self.episodes.truncated()[0])
        return self.episodes.observe()[0], float(reward[0]), False, truncated, info

    def action_masks(self) -> np.ndarray:
        """(A,) bool: the actions that would be delivered now."""
        return self.episodes.action_masks()[0]
