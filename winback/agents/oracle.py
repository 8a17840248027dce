"""The oracle: an upper reference that looks ahead in the true simulator from each user's true state.

Each period, for every valid action, the oracle simulates the next ``lookahead`` periods of each
user (that action now, then nothing, or the ``base`` policy) from a copy of the live state (the true
decay-model state, lifts, fatigue and coupons, which no deployed policy observes in full) and picks
the action with the largest net value over that window. With a ``base`` policy and a window to the
horizon's end this is one step of policy improvement over ``base`` (a rollout algorithm): in
expectation it does at least as well as ``base`` itself.

By default (``clairvoyant=True``) the look-ahead replays the run's own random numbers (common random
numbers): the oracle sees exactly which contacts tip which users into buying, which no policy can
know. With ``clairvoyant=False`` it is a *planner* instead: it knows the model but not the luck, and
averages ``samples`` futures drawn from its own streams, with the same sampled luck for every action
so that the comparison between actions is not noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from winback.agents.base import DecisionContext, Policy
from winback.errors import ConfigError
from winback.simulator.features import observe
from winback.simulator.state import SimState
from winback.streams import draw_keys


@dataclass
class Oracle(Policy):
    lookahead: int = 4
    """Periods each action is judged over (the action's period included, capped at the horizon)."""
    clairvoyant: bool = True
    """Replay the run's own luck (``False``: average sampled futures)."""
    samples: int = 8
    """Simulated futures averaged per action when not clairvoyant."""
    base: Policy | None = None
    """The policy followed after the first action in the look-ahead (``None``: nothing is sent). It
    must decide from observations alone (a rule, a feed-forward agent): it is reset for every
    look-ahead."""
    name: str = "oracle"

    def __post_init__(self) -> None:
        if self.lookahead < 1 or self.samples < 1:
            raise ConfigError(
                f"Oracle lookahead = {self.lookahead}, samples = {self.samples} (allowed: >= 1)"
            )

    def reset(self, context: DecisionContext) -> None:
        if context.simulator is None or context.state is None:
            raise ConfigError("the oracle needs the simulator and the live state (run it in the harness)")
        super().reset(context)
        self.period = 0
        self._salt = np.uint64(context.rng.integers(2**63))
        self._base_seed = int(context.rng.integers(2**63))

    def _futures(self, state: SimState) -> SimState:
        """Copies of every user (user-major) to simulate from, with the luck they will meet."""
        if self.clairvoyant:
            return state.copy()
        copies = state.repeat(self.samples)
        copies.keys = draw_keys(state.keys ^ self._salt, self.samples)
        return copies

    def act(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        simulator, state, gap = self.context.simulator, self.context.state, self.context.min_gap
        assert simulator is not None and state is not None  # checked in reset
        now = self.period
        window = min(self.lookahead, self.context.horizon - now)
        self.period += 1
        copies = 1 if self.clairvoyant else self.samples
        demand, periods = self.context.demand, np.full(state.n_users * copies, now)
        values = np.full(masks.shape, -np.inf)
        for action in range(masks.shape[1]):
            valid = masks[:, action]
            if not valid.any():
                continue
            future = self._futures(state)
            first = np.repeat(np.where(valid, action, 0), copies)
            shift = demand.shift(periods, future.recency)
            value = simulator.step(future, first, min_gap=gap, demand_shift=shift).reward.total
            follow = self._follower(future.n_users, window)
            for ahead in range(1, window):
                shift = demand.shift(periods + ahead, future.recency)
                value += simulator.step(future, follow(future), min_gap=gap, demand_shift=shift).reward.total
            values[valid, action] = value.reshape(-1, copies).mean(axis=1)[valid]
        return np.argmax(values, axis=1).astype(np.int64)  # ties go to the lowest action: none first

    def _follower(self, n_users: int, window: int) -> Callable[[SimState], np.ndarray]:
        """The actions taken after the first one in a look-ahead of ``n_users`` simulated users."""
        if self.base is None:
            idle = np.zeros(n_users, dtype=np.int64)
            return lambda _: idle
        simulator, base = self.context.simulator, self.base
        assert simulator is not None
        base.reset(
            dataclasses.replace(
                self.context,
                n_users=n_users,
                rng=np.random.default_rng(self._base_seed),
                horizon=max(window - 1, 1),
                simulator=None,
                state=None,
            )
        )
        gap = self.context.min_gap
        return lambda future: base.act(observe(simulator, future), simulator.action_masks(future, gap))
