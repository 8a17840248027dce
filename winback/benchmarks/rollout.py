"""Run a policy over a population for a scenario's horizon and record what every user was worth.

Every policy of a comparison runs on copies of the same users under simulators with the same seed,
so each user meets the same luck under every policy (common random numbers,
:mod:`winback.streams`): differences between policies are paired by user and seed.

A policy is told what a production job knows: its :class:`~winback.agents.base.DecisionContext`,
then each period the observations, the masks and the period's index. Only a reference (the oracle,
the planner) is also bound to the simulator and the live state (:func:`winback.agents.reference.start`).

This is the what-if engine: the contacts a policy requests reach users through the scenario's
operations (:mod:`winback.scenarios.operations`: coupon budget, care team, delivery delays, in
simpy). Without limits, every allowed request is delivered in the period it was made. With
``allocation``, a greedy scoring policy's requests are first fitted to what operations can serve in
the period (:func:`winback.allocation.allocate` under :meth:`OperationsDesk.available`, or for an
agent trained under prices :func:`winback.allocation.allocate_conditioned`), so none is dropped for
the budget or a deadline; the prices are recorded per period.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from winback.agents.base import DecisionContext, Policy, ScoringPolicy
from winback.agents.reference import Reference, TrueWorld, start
from winback.allocation import RESOURCES, Allocation, allocate, allocate_conditioned
from winback.errors import ConfigError
from winback.scenarios.operations import OperationsDesk
from winback.scenarios.scenario import Scenario
from winback.simulator.core import Simulator
from winback.simulator.features import feature_names, observe
from winback.simulator.outcome import StepOutcome
from winback.simulator.state import SimState

ACTIVE_WINDOW = 13
"""A user counts as active while their last purchase is at most this many periods old (a quarter)."""
INTEREST_BINS = np.array([0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0])
"""Bin edges of interest in the action map."""
RECENCY_BINS = np.array([1, 2, 4, 8, 13, 26, 52, np.iinfo(np.int64).max])
"""Bin edges of recency (periods) in the action map; the last bin is a year or more."""

USER_METRICS = (
    "net_value",
    "revenue",
    "margin",
    "discounts",
    "contact_costs",
    "contacts",
    "opted_out",
    "active_at_end",
)
"""Per-user metrics over the horizon; ``net_value`` (margin - discounts - contact costs) is primary."""


class Stepper(Protocol):
    """Where users live during a run: the scenario's simulator, or another world whose periods the
    simulator only tracks (:mod:`winback.benchmarks.ground_truth`)."""

    def step(
        self, state: SimState, actions: np.ndarray, *, min_gap: int, demand_shift: np.ndarray
    ) -> StepOutcome:
        """One period under ``actions`` for the users of ``state``, which it advances in place."""
        ...


@dataclass
class PolicyRun:
    """One policy on one scenario over several seeds, the same users in every seed."""

    policy: str
    category: str
    """``agent`` (trained), ``baseline`` (deployable rules and experiments) or ``reference`` (the oracle)."""
    seeds: np.ndarray
    """(S,) simulator seeds."""
    metrics: dict[str, np.ndarray]
    """Each of :data:`USER_METRICS` and ``contacts_<kind>``: (S, U) per seed and user."""
    retention: np.ndarray
    """(S, T) share of users active (:data:`ACTIVE_WINDOW`) after each period."""
    interest: np.ndarray
    """(S, T) mean interest at the start of each period."""
    action_map: np.ndarray
    """(A, I, R) how often each action was chosen, by interest bin (:data:`INTEREST_BINS`) and
    recency bin (:data:`RECENCY_BINS`), over seeds, users and periods."""
    operations: dict[str, np.ndarray]
    """What operations did (:meth:`~winback.scenarios.operations.OperationsLog.series`): (S, T, K)
    contacts by kind or (S, T) per seed and period; and ``price_<resource>`` (S, T), the allocation's
    price of each of :data:`~winback.allocation.RESOURCES` (0 without an allocation): per unit of
    the policy's scores, or in dollars for a policy that reads prices (the price it was shown)."""
    seconds: float
    """Wall time of the runs."""


def policy_seed(policy: str, seed: int) -> np.random.Generator:
    """The generator a policy draws from in a seed's run (differs by policy name, fixed by both)."""
    return np.random.default_rng([seed, zlib.crc32(policy.encode())])


def operations_seed(seed: int) -> np.random.Generator:
    """The generator ordering requests in operations in a seed's run (the same for every policy)."""
    return np.random.default_rng([seed, zlib.crc32(b"operations")])


def run_policy(
    policy: Policy,
    scenario: Scenario,
    users: SimState,
    seeds: list[int],
    *,
    category: str = "baseline",
    name: str | None = None,
    simulators: dict[int, Simulator] | None = None,
    steppers: Callable[[int, Simulator], Stepper] | None = None,
    allocation: bool = False,
) -> PolicyRun:
    """``policy`` over copies of ``users`` for the scenario's horizon, once per seed.

    With ``allocation``, a greedy :class:`~winback.agents.base.ScoringPolicy` (an agent) decides
    under the scenario's coupon budget and care team through :func:`~winback.allocation.allocate`,
    or, when it reads prices (:attr:`~winback.agents.base.ScoringPolicy.price_input`), shown the
    price at which its requests fit (:func:`~winback.allocation.allocate_conditioned`; such a policy
    is refused without ``allocation`` where users share limits, and shown price 0 where they do not);
    other policies and unlimited operations are unaffected.

    ``simulators`` (e.g. :class:`~winback.benchmarks.suite.SimulatorsBySeed`) holds the simulator of
    each seed, shared between runs; by default each run builds its own. ``steppers`` gives, per seed
    and simulator, where the users live instead of that simulator (which then only observes them);
    by default they live in the simulator.
    """
    name = name or policy.name
    started = time.perf_counter()
    runs = []
    for seed in seeds:
        simulator = scenario.simulator_for(seed) if simulators is None else simulators[seed]
        stepper = simulator if steppers is None else steppers(seed, simulator)
        runs.append(_run_seed(policy, scenario, users, seed, name, simulator, stepper, allocation))
    metrics = {key: np.stack([r[0][key] for r in runs]) for key in runs[0][0]}
    return PolicyRun(
        policy=name,
        category=category,
        seeds=np.asarray(seeds, dtype=np.int64),
        metrics=metrics,
        retention=np.stack([r[1] for r in runs]),
        interest=np.stack([r[2] for r in runs]),
        action_map=np.sum([r[3] for r in runs], axis=0),
        operations={key: np.stack([r[4][key] for r in runs]) for key in runs[0][4]},
        seconds=time.perf_counter() - started,
    )


def _run_seed(
    policy: Policy,
    scenario: Scenario,
    users: SimState,
    seed: int,
    name: str,
    simulator: Simulator,
    stepper: Stepper,
    allocation: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    if stepper is not simulator and isinstance(policy, Reference):
        raise ConfigError(f"{name} reads the simulator's true state; it cannot run in another world")
    state, horizon, gap = users.copy(), scenario.horizon, scenario.min_contact_gap
    n, kinds = state.n_users, simulator.kinds
    desk = OperationsDesk(
        scenario.operations,
        kinds,
        simulator.tables.validity,
        n,
        horizon,
        operations_seed(seed),
        scenario.campaigns,
    )
    start(
        policy,
        DecisionContext(
            feature_names(simulator), simulator.actions, n, policy_seed(name, seed), horizon, state.keys
        ),
        TrueWorld(simulator, state, gap, scenario.demand),
    )
    totals = {key: np.zeros(n) for key in ("margin", "discounts", "contact_costs", "revenue")}
    contacts = np.zeros((n, len(kinds)))
    retention, interest = np.zeros(horizon), np.zeros(horizon)
    price_input = policy.price_input if isinstance(policy, ScoringPolicy) else None
    if price_input is not None and desk.limited and not allocation:
        raise ConfigError(
            f"{name} was trained under prices of {', '.join(price_input.resources)} and reads them: "
            "run it with the allocation (--allocation), which sets the price each period"
        )
    allocating = allocation and desk.limited and isinstance(policy, ScoringPolicy) and policy.greedy
    use, prices = desk.resource_use(), np.zeros((horizon, len(RESOURCES)))
    action_map = np.zeros((len(simulator.actions), len(INTEREST_BINS) - 1, len(RECENCY_BINS) - 1))
    for t in range(horizon):
        observations = observe(simulator, state)
        masks = simulator.action_masks(state, gap)
        if allocating:
            assert isinstance(policy, ScoringPolicy)
            chosen = _allocate(policy, observations, masks, t, use, desk.available(t))
            actions, prices[t] = chosen.actions, chosen.prices
        else:
            shown = observations if price_input is None else price_input.append(observations, prices[t])
            actions = np.asarray(policy.act(shown, masks, t), dtype=np.int64)
        desk.dispatch(t, actions, masks)
        user_interest = observations[:, 0]
        interest[t] = user_interest.mean()
        i_bin = np.clip(
            np.searchsorted(INTEREST_BINS, user_interest, side="right") - 1, 0, len(INTEREST_BINS) - 2
        )
        r_bin = np.searchsorted(RECENCY_BINS, state.recency, side="right") - 1
        np.add.at(action_map, (actions, i_bin, r_bin), 1)
        shift = scenario.demand.shift(np.full(n, t), state.recency)
        arriving = desk.deliveries(t)
        outcome = stepper.step(state, arriving, min_gap=gap, demand_shift=shift)
        desk.settle(t, arriving, outcome.delivered, outcome.activity.purchases > 0)
        policy.update(outcome.reward.total)
        reward = outcome.reward
        totals["margin"] += reward.margin
        totals["discounts"] += reward.discount
        totals["contact_costs"] += reward.contact_cost
        totals["revenue"] += outcome.activity.spend
        contacted = np.flatnonzero(outcome.delivered)
        np.add.at(contacts, (contacted, outcome.delivered[contacted] - 1), 1)
        retention[t] = (state.recency <= ACTIVE_WINDOW).mean()
    metrics = {
        "net_value": totals["margin"] - totals["discounts"] - totals["contact_costs"],
        **totals,
        "contacts": contacts.sum(axis=1),
        "opted_out": state.opted_out.astype(np.float64),
        "active_at_end": (state.recency <= ACTIVE_WINDOW).astype(np.float64),
        **{f"contacts_{kind}": contacts[:, k] for k, kind in enumerate(kinds)},
    }
    priced = {f"price_{resource}": prices[:, r] for r, resource in enumerate(RESOURCES)}
    return metrics, retention, interest, action_map, desk.log.series() | priced


def _allocate(
    policy: ScoringPolicy,
    observations: np.ndarray,
    masks: np.ndarray,
    t: int,
    use: np.ndarray,
    limits: np.ndarray,
) -> Allocation:
    """The policy's actions in period ``t`` fitted to the ``limits`` operations can serve: by the price
    it is shown when it reads prices (:func:`allocate_conditioned`), else by its scores."""
    price_input = policy.price_input
    if price_input is None:
        return allocate(policy.scores(observations, masks, t), use, limits)
    return allocate_conditioned(
        lambda prices: policy.scores(price_input.append(observations, prices), masks, t),
        use,
        limits,
        price_input.ceilings,
    )


def concatenate_runs(parts: Sequence[PolicyRun]) -> PolicyRun:
    """One policy's runs on consecutive shards of users (same seeds) as one run on all of them, in
    the shards' order: per-user metrics side by side, the per-period means weighted by each shard's
    users, the counts of the action map and of operations summed, wall times summed."""
    first = parts[0]
    if any(p.policy != first.policy or not np.array_equal(p.seeds, first.seeds) for p in parts):
        raise ValueError("the runs to concatenate must be of one policy under the same seeds")
    users = np.array([p.metrics["net_value"].shape[1] for p in parts], dtype=np.float64)
    weights = users / users.sum()

    def weighted(field: str) -> np.ndarray:
        return np.sum([w * getattr(p, field) for w, p in zip(weights, parts, strict=True)], axis=0)

    return PolicyRun(
        policy=first.policy,
        category=first.category,
        seeds=first.seeds,
        metrics={key: np.concatenate([p.metrics[key] for p in parts], axis=1) for key in first.metrics},
        retention=weighted("retention"),
        interest=weighted("interest"),
        action_map=np.sum([p.action_map for p in parts], axis=0),
        operations={key: np.sum([p.operations[key] for p in parts], axis=0) for key in first.operations},
        seconds=float(sum(p.seconds for p in parts)),
    )
