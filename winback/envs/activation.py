"""One user, one year: each week push new items, send a coupon, a care message, or nothing."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from winback.envs.defaults import default_population, default_simulator
from winback.envs.episodes import EpisodeBatch, EpisodeConfig, step_infos
from winback.simulator.core import Simulator
from winback.simulator.state import SimState


class ActivationEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    An episode follows one user drawn from a population, by default CDNOW's 23,570 customers as they
    stood at the end of calibration (week 39), simulated by :class:`winback.simulator.core.Simulator`
    with the packaged decay model (``winback.envs.defaults``). Each step is one week: the agent
    chooses a contact or nothing; the user's interest decays as the learned model says, contacts
    lift it by the response priors of :mod:`winback.simulator.response`, fatigue accumulates, and
    the user may opt out of contacts for good.

    ## Action Space

    ``Discrete(4)``: ``0`` none, ``1`` push_new_items, ``2`` coupon, ``3`` care_message (the
    simulator's ``actions``; a custom response config may add kinds, the space grows with them).
    :meth:`action_masks` gives the valid actions for sb3-contrib's ``MaskablePPO``: no coupon while
    one is valid, no contact after an opt-out, and with ``min_contact_gap`` a frequency cap. A
    masked action is refused: it costs nothing and counts as ``none`` (``info["refused"]``).

    ## Observation Space

    ``Box(low, high, (F,), float32)`` with the features of :mod:`winback.simulator.features`, in
    order: interest (the decay model's probability of a purchase this week with no new contact),
    log recency, log frequency, log monetary, log tenure, new-user flag, fatigue, opted-out flag,
    coupon valid, and the periods since each contact kind over 52 (1: a year or more, or never).

    ## Rewards

    ``margin x spend - discounts paid - contact costs`` for the week
    (:mod:`winback.simulator.rewards`); the three parts are in ``info`` (``margin``, ``discount``,
    ``contact_cost``, which add up to the reward) with ``purchases``, ``spend``, ``delivered``,
    ``refused`` and ``opted_out``.

    ## Starting State

    A user of the population drawn by the environment's generator, with a drawn luck: the same seed
    gives the same user and the same random stream (common random numbers).

    ## Episode End

    Never terminates (users do not leave the store, they only stop buying); truncated after 52
    weeks by the ``TimeLimit`` registered with ``winback/Activation-v0``.

    ## Arguments

    ``gymnasium.make("winback/Activation-v0", simulator=None, population=None, min_contact_gap=0)``:
    a :class:`Simulator` (default: the packaged CDNOW model with the documented priors), a
    population :class:`SimState` to draw users from (default: CDNOW at week 39), and the frequency cap.

    ## Version History

    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        simulator: Simulator | None = None,
        population: SimState | None = None,
        min_contact_gap: int = 0,
    ) -> None:
        self.simulator = simulator or default_simulator()
        pool = population if population is not None else default_population()
        self.episodes = EpisodeBatch(self.simulator, pool, 1, EpisodeConfig(min_contact_gap=min_contact_gap))
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
        return self.episodes.observe()[0], float(reward[0]), False, False, info

    def action_masks(self) -> np.ndarray:
        """(A,) bool: the actions that would be delivered now."""
        return self.episodes.action_masks()[0]
