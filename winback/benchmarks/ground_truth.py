"""Policies run in a ground-truth world (:mod:`winback.data.synthetic.world`), as a platform runs them.

The learned simulator is winback's model of a shop; the world is the shop. Here users live in the
world: each period the policy decides from what the platform sees of them (their state under the
scenario's decay model, kept current by :meth:`winback.simulator.core.Simulator.track` from the
contacts delivered, the activity observed and the opt-outs), the world plays the period, and its
margin, discounts and contact costs are what the policy earned. The same harness
(:func:`winback.benchmarks.rollout.run_policy`) runs the policy in the learned simulator, so the
two verdicts are computed the same way on the same users.

:class:`BatchWorld` keeps the users as the production loop does instead: a batch job's users table
(stored state and the period that ended) read by an export's decay model and rules, for the
decisions ``winback decide`` would log and the policies an off-policy evaluation weighs.
"""

from __future__ import annotations

import copy

import numpy as np

from winback.agents.base import Policy
from winback.benchmarks.rollout import PolicyRun, run_policy
from winback.data.synthetic import EVENT_TYPES, GroundTruthWorld, WorldState
from winback.decay_model.base import PeriodActivity
from winback.errors import ConfigError
from winback.export.runtime import ExportedArtifact
from winback.export.runtime.batch import Observed, TableSpec, Users, observe_users
from winback.export.runtime.records import ContactRecords, ContactRules
from winback.export.runtime.state import UserStates
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


class BatchWorld:
    """Users of a ground-truth world decided as a batch job decides them (:mod:`winback.export.runtime
    .batch`): each period, the stored state and the period that ended give what the policy sees
    (:func:`~winback.export.runtime.batch.observe_users`, the export's decay model and rules), a
    decision is taken, and the world plays the period from what was sent. ``users`` (a scenario's,
    where the world's log ended) are found among the world's by their keys; the world first plays a
    quiet week (no contact), the period that ended before the first decision."""

    def __init__(
        self, world: GroundTruthWorld, world_state: WorldState, artifact: ExportedArtifact, users: SimState
    ) -> None:
        self.world, self.state, self.index = (
            world,
            world_state.copy(),
            _world_index(world, users, world_state),
        )
        self.artifact, self.spec = artifact, TableSpec.of(artifact)
        self.rules = ContactRules.from_card(artifact.card)
        if missing := [name for name in self.spec.event_types if name not in EVENT_TYPES]:
            raise ConfigError(f"the export's decay model counts {missing}, which the world does not have")
        if tuple(artifact.actions) != tuple(world.actions):
            raise ConfigError(f"the export's actions {artifact.actions} are not the world's {world.actions}")
        d = users.decay
        ids = np.asarray(world.user_ids[self.index]).astype(str).astype(object)
        states = UserStates(d.hidden, d.cell, d.period, d.first_period, d.last_purchase, d.frequency,
                            users.spend_total)  # fmt: skip
        records = ContactRecords(users.fatigue, users.opted_out, users.valid_left, users.since_contact)
        counts, spend, delivered, self.quiet_net = self._play(np.zeros(users.n_users, dtype=np.int64))
        self.users = Users(ids, states, records, counts, spend, delivered)
        """The users' stored state and the period that ended, as a users table holds them."""

    def fork(self, luck: int | None = None) -> BatchWorld:
        """An independent copy of where the users stand, in the same world or one of another ``luck``
        (:meth:`GroundTruthWorld.with_luck`)."""
        other = copy.copy(self)
        other.state = self.state.copy()
        if luck is not None:
            other.world = self.world.with_luck(luck)
        return other

    def observe(self) -> Observed:
        """What the policy sees of the users for the coming period (their state updated by the last)."""
        return observe_users(self.artifact, self.spec, self.rules, self.users)

    def play(self, observed: Observed, actions: np.ndarray) -> np.ndarray:
        """(n,) each user's net value of the world's period under ``actions`` ((n,) action indices,
        decided on ``observed``); the users then stand after it."""
        counts, spend, delivered, net = self._play(actions)
        self.users = Users(self.users.ids, observed.states, observed.records, counts, spend, delivered)
        return net

    def _play(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        everyone = np.zeros(self.world.n_users, dtype=np.int64)
        everyone[self.index] = actions
        period = self.world.step(self.state, everyone)
        counts = {"view": period.views, "cart": period.carts, "purchase": period.purchases}
        activity = np.stack([counts[name][self.index] for name in self.spec.event_types], axis=1)
        return (activity.astype(np.int64), period.spend[self.index], period.delivered[self.index],
                period.net[self.index])  # fmt: skip


def _world_index(world: GroundTruthWorld, users: SimState, world_state: WorldState) -> np.ndarray:
    """(n,) the place of each of ``users`` among the world's, checked: all found, at the world's week."""
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
    return index


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
    index = _world_index(world, users, world_state)
    return run_policy(
        policy,
        scenario,
        users,
        [seed],
        category=category,
        name=name,
        steppers=lambda _, simulator: WorldStepper(world, world_state.copy(), simulator, index),
    )
