"""Policies run in a ground-truth world (:mod:`winback.data.synthetic.world`), as a platform runs them.

The learned simulator is winback's model of a shop; the world is the shop. Here users live in the
world: each period the policy decides from what the platform sees of them (their state under the
scenario's decay model, kept current by :meth:`winback.simulator.core.Simulator.track` from the
contacts delivered, the activity observed and the opt-outs), the world plays the period, and its
margin, discounts and contact costs are what the policy earned. The same harness
(:func:`winback.benchmarks.rollout.run_policy`) runs the policy in the learned simulator, so the
two verdicts are computed the same way on the same users.
"""

from __future__ import annotations

import numpy as np

from winback.agents.base import Policy
from winback.benchmarks.rollout import PolicyRun, run_policy
from winback.data.synthetic import EVENT_TYPES, GroundTruthWorld, WorldState
from winback.decay_model.base import PeriodActivity
from winback.errors import ConfigError
from winback.scenarios.scenario import Scenario
from winback.simulator.core import Simulator
from winback.simulator.outcome import StepOutcome
from winback.simulator.rewards import RewardComponents
from winback.simulator.state import SimState


class WorldStepper:
    """A :class:`~winback.benchmarks.rollout.Stepper` whose users live in ``world`` from ``state``
    (changed in place), tracked by ``simulator``. ``index`` places the tracked users among the
    world's; the world's other users are sent nothing and not reported."""

    def __init__(
        self, world: GroundTruthWorld, state: WorldState, simulator: Simulator, index: np.ndarray
    ) -> None:
        spec = simulator.model._require_fitted()
        if missing := [name for name in spec.event_types if name not in EVENT_TYPES]:
            raise ConfigError(
                f"the decay model counts event types {list(spec.event_types)}; the world has "
                f"{list(EVENT_TYPES)} (missing {missing})"
            )
        if tuple(simulator.actions) != tuple(world.actions):
            raise ConfigError(
                f"the scenario's actions {simulator.actions} are not the world's {world.actions}"
            )
        self.world, self.state, self.simulator, self.index = world, state, simulator, index
        self._event_types = spec.event_types

    def step(
        self, state: SimState, actions: np.ndarray, *, min_gap: int, demand_shift: np.ndarray
    ) -> StepOutcome:
        """The world's period under the actions the simulator's masks allow, then tracked in ``state``."""
        if np.any(demand_shift):
            raise ConfigError("a ground-truth world has its own demand: run it without demand shocks")
        masks = self.simulator.action_masks(state, min_gap)
        everyone = np.zeros(self.world.n_users, dtype=np.int64)
        everyone[self.index] = np.where(masks[np.arange(state.n_users), actions], actions, 0)
        period = self.world.step(self.state, everyone)
        counts = {"view": period.views, "cart": period.carts, "purchase": period.purchases}
        activity = PeriodActivity(
            counts=np.stack([counts[name][self.index] for name in self._event_types], axis=1).astype(
                np.int64
            ),
            spend=period.spend[self.index],
        )
        delivered, opted_out = period.delivered[self.index], period.opted_out[self.index]
        self.simulator.track(state, delivered, activity, opted_out)
        return StepOutcome(
            activity=activity,
            reward=RewardComponents(
                margin=period.margin[self.index],
                discount=period.discount[self.index],
                contact_cost=period.contact_cost[self.index],
            ),
            delivered=delivered,
            refused=(actions > 0) & (delivered == 0),
            opted_out=opted_out,
        )


def run_in_world(
    policy: Policy,
    scenario: Scenario,
    users: SimState,
    world: GroundTruthWorld,
    world_state: WorldState,
    *,
    seed: int = 0,
    category: str = "baseline",
    name: str | None = None,
) -> PolicyRun:
    """``policy`` over the scenario's horizon with ``users`` living in ``world`` from a copy of
    ``world_state``, tracked by the scenario's simulator of ``seed`` (the policy draws as it would in
    that seed's run in the learned simulator). ``users`` are found among the world's by their keys."""
    order = np.argsort(world.keys)
    found = np.minimum(np.searchsorted(world.keys, users.keys, sorter=order), len(order) - 1)
    index = order[found]
    if not np.array_equal(world.keys[index], users.keys):
        raise ConfigError(f"{int(np.sum(world.keys[index] != users.keys))} of the users are not the world's")
    if np.any(users.decay.period != world_state.period):
        raise ConfigError(
            f"the users stand at periods {np.unique(users.decay.period)[:3].tolist()}; the world at "
            f"week {world_state.period} (warm-start the population where the world's log ends)"
        )
    return run_policy(
        policy,
        scenario,
        users,
        [seed],
        category=category,
        name=name,
        steppers=lambda _, simulator: WorldStepper(world, world_state.copy(), simulator, index),
    )
