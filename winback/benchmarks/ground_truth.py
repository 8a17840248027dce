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
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from winback.agents.base import Policy
from winback.benchmarks.rollout import PolicyRun, run_policy
from winback.data.synthetic import EVENT_TYPES, GroundTruthWorld, WorldState, WorldStep
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
from winback.streams import key_positions


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


@dataclass(frozen=True)
class Ended:
    """The period that ended for a batch world's users: what a users table records of it."""

    counts: dict[str, np.ndarray]
    """(n,) int64 events of each of the world's event types."""
    spend: np.ndarray
    delivered: np.ndarray
    """(n,) int64 action index delivered (0: none)."""


@dataclass(frozen=True)
class UsersTable:
    """What a batch job's users table holds under one export: each user's stored decay-model state
    and contact records (:mod:`winback.export.runtime.batch`), as the export's decay model and rules
    keep them. Two exports of different decay models keep two tables of the same users."""

    artifact: ExportedArtifact
    ids: np.ndarray
    """(n,) object: the user ids, as strings."""
    states: UserStates
    records: ContactRecords

    @classmethod
    def of(cls, artifact: ExportedArtifact, ids: np.ndarray, users: SimState) -> UsersTable:
        """The table of ``users`` (a population under the export's decay model) of ids ``ids``."""
        d = users.decay
        states = UserStates(d.hidden, d.cell, d.period, d.first_period, d.last_purchase, d.frequency,
                            users.spend_total)  # fmt: skip
        records = ContactRecords(users.fatigue, users.opted_out, users.valid_left, users.since_contact)
        return cls(artifact, ids, states, records)

    def observe(self, ended: Ended) -> Observed:
        """What the export sees of the users for the coming period, its table updated by ``ended``."""
        spec = TableSpec.of(self.artifact)
        if missing := [name for name in spec.event_types if name not in ended.counts]:
            raise ConfigError(f"the export's decay model counts {missing}, which the world does not have")
        counts = np.stack([ended.counts[name] for name in spec.event_types], axis=1).astype(np.int64)
        users = Users(self.ids, self.states, self.records, counts, ended.spend, ended.delivered)
        return observe_users(self.artifact, spec, ContactRules.from_card(self.artifact.card), users)

    def moved(self, observed: Observed) -> UsersTable:
        """The table once ``observed`` (its :meth:`observe`) is stored."""
        return dataclasses.replace(self, states=observed.states, records=observed.records)


class BatchWorld:
    """Users of a ground-truth world decided as a batch job decides them (:mod:`winback.export.runtime
    .batch`): each period, the stored state and the period that ended give what the policy sees
    (:meth:`UsersTable.observe`, the export's decay model and rules), a decision is taken, and the
    world plays the period from what was sent. ``users`` (a scenario's, where the world's log ended)
    are found among the world's by their keys; the world first plays a quiet week (no contact), the
    period that ended before the first decision. ``record`` (optional) is handed every week the world
    plays, all of its users' (:class:`~winback.data.synthetic.EventRecorder` writes them as a log)."""

    def __init__(
        self,
        world: GroundTruthWorld,
        world_state: WorldState,
        artifact: ExportedArtifact,
        users: SimState,
        *,
        record: Callable[[WorldStep], None] | None = None,
    ) -> None:
        self.world, self.state, self.record = world, world_state.copy(), record
        self.index = _world_index(world, users, world_state)
        if tuple(artifact.actions) != tuple(world.actions):
            raise ConfigError(f"the export's actions {artifact.actions} are not the world's {world.actions}")
        ids = np.asarray(world.user_ids[self.index]).astype(str).astype(object)
        self.table = UsersTable.of(artifact, ids, users)
        """The users table of the deployed export (:meth:`deploy` replaces it)."""
        self.ended, self.quiet_net = self._play(np.zeros(users.n_users, dtype=np.int64))

    @property
    def n_users(self) -> int:
        return len(self.index)

    def fork(self, luck: int | None = None) -> BatchWorld:
        """An independent copy of where the users stand, in the same world or one of another ``luck``
        (:meth:`GroundTruthWorld.with_luck`), recording nothing."""
        other = copy.copy(self)
        other.state, other.record = self.state.copy(), None
        if luck is not None:
            other.world = self.world.with_luck(luck)
        return other

    def table_of(self, artifact: ExportedArtifact, users: SimState) -> UsersTable:
        """The users table of another export: ``users`` (a population under its decay model) found by
        the batch's users' keys."""
        found, there = key_positions(users.keys, self.world.keys[self.index])
        if not there.all():
            raise ConfigError(f"{int(np.sum(~there))} of the batch's users are missing")
        return UsersTable.of(artifact, self.table.ids, users.take(found))

    def deploy(self, table: UsersTable) -> None:
        """Decide from now on by ``table``'s export (a table of the same users, kept to this period)."""
        if not np.array_equal(table.ids, self.table.ids):
            raise ConfigError("the table is not of the batch's users")
        if np.any(table.states.period != self.table.states.period):
            raise ConfigError(
                f"the table stores periods {np.unique(table.states.period)[:3].tolist()}; the deployed one "
                f"{np.unique(self.table.states.period)[:3].tolist()}"
            )
        if tuple(table.artifact.actions) != tuple(self.world.actions):
            raise ConfigError(f"the export's actions {table.artifact.actions} are not the world's")
        self.table = table

    def observe(self) -> Observed:
        """What the deployed policy sees of the users for the coming period."""
        return self.table.observe(self.ended)

    def play(self, observed: Observed, actions: np.ndarray) -> np.ndarray:
        """(n,) each user's net value of the world's period under ``actions`` ((n,) action indices,
        decided on ``observed``, the deployed table's); the users then stand after it."""
        self.ended, net = self._play(actions)
        self.table = self.table.moved(observed)
        return net

    def _play(self, actions: np.ndarray) -> tuple[Ended, np.ndarray]:
        everyone = np.zeros(self.world.n_users, dtype=np.int64)
        everyone[self.index] = actions
        period = self.world.step(self.state, everyone)
        if self.record is not None:
            self.record(period)
        counts = {"view": period.views, "cart": period.carts, "purchase": period.purchases}
        if self.world.config.fav_per_view:
            counts["fav"] = period.favs
        ended = Ended(
            {name: value[self.index] for name, value in counts.items()},
            period.spend[self.index],
            period.delivered[self.index],
        )
        return ended, period.net[self.index]


def _world_index(world: GroundTruthWorld, users: SimState, world_state: WorldState) -> np.ndarray:
    """(n,) the place of each of ``users`` among the world's, checked: all found, at the world's week."""
    index, there = key_positions(world.keys, users.keys)
    if not there.all():
        raise ConfigError(f"{int(np.sum(~there))} of the users are not the world's")
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
