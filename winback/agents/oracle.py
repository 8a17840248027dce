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

Both are :class:`~winback.agents.reference.Reference` policies: the harness binds them to the true
world (the simulator, the live state it steps, the scenario's demand) that no deployable policy sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from winback.agents.base import DecisionContext, Policy
from winback.agents.reference import Reference
from winback.errors import ConfigError
from winback.simulator.features import observe
from winback.simulator.state import SimState
from winback.streams import draw_keys


@dataclass
class Oracle(Reference):
    lookahead: int = 4
    """Periods each action is judged over (the action's period included, capped at the horizon)."""
    clairvoyant: bool = True
    """Replay the run's own luck (``False``: average sampled futures)."""
    samples: int = 8
    """Simulated futures averaged per action when not clairvoyant."""
    base: Policy | None = None
    """The policy followed after the first action in the look-ahead (``None``: nothing is sent). It
    must decide from observations alone (a rule, a feed-forward agent, not a reference): it is reset
    for every look-ahead, whose second period is its period 0."""
    name: str = "oracle"

    def __post_init__(self) -> None:
        if self.lookahead < 1 or self.samples < 1:
            raise ConfigError(
                f"Oracle lookahead = {self.lookahead}, samples = {self.samples} (allowed: >= 1)"
            )
        if isinstance(self.base, Reference):
            raise ConfigError(
                f"Oracle.base = {self.base.name} reads the simulator (allowed: a policy that decides "
                "from observations)"
            )

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self._salt = np.uint64(context.rng.integers(2**63))
        self._base_seed = int(context.rng.integers(2**63))

    def _futures(self, state: SimState) -> SimState:
        """Copies of every user (user-major) to simulate from, with the luck they will meet."""
        if self.clairvoyant:
            return state.copy()
        copies = state.repeat(self.samples)
        copies.keys = draw_keys(state.keys ^ self._salt, self.samples)
        return copies

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        world = self.world
        simulator, state, gap, demand = world.simulator, world.state, world.min_gap, world.demand
        window = min(self.lookahead, self.context.horizon - period)
        copies = 1 if self.clairvoyant else self.samples
        periods = np.full(state.n_users * copies, period)
        values = np.full(masks.shape, -np.inf)
        for action in range(masks.shape[1]):
            valid = masks[:, action]
            if not valid.any():
                continue
            future = self._futures(state)
            first = np.repeat(np.where(valid, action, 0), copies)
            shift = demand.shift(periods, future.recency)
            value = simulator.step(future, first, min_gap=gap, demand_shift=shift).reward.total
            follow = self._follower(future.keys, window)
            for ahead in range(1, window):
                shift = demand.shift(periods + ahead, future.recency)
                actions = follow(future, ahead - 1)
                value += simulator.step(future, actions, min_gap=gap, demand_shift=shift).reward.total
            values[valid, action] = value.reshape(-1, copies).mean(axis=1)[valid]
        return np.argmax(values, axis=1).astype(np.int64)  # ties go to the lowest action: none first

    def _follower(self, keys: np.ndarray, window: int) -> Callable[[SimState, int], np.ndarray]:
        """The actions taken after the first one in a look-ahead of the simulated users ``keys``, by
        the state and the period of the ``base`` policy's run (which starts after the first action)."""
        if self.base is None:
            idle = np.zeros(len(keys), dtype=np.int64)
            return lambda future, period: idle
        simulator, gap, base = self.world.simulator, self.world.min_gap, self.base
        base.reset(
            dataclasses.replace(
                self.context,
                n_users=len(keys),
                rng=np.random.default_rng(self._base_seed),
                keys=keys,
                horizon=max(window - 1, 1),
            )
        )
        return lambda future, period: base.act(
            observe(simulator, future), simulator.action_masks(future, gap), period
        )
