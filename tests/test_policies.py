"""Every policy through the one Policy interface (the contract, what each is handed, scores), then the
baselines, the oracle and tuning."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, get_args, get_type_hints

import numpy as np
import pytest
import torch
from tiny import TRAINING

from winback.agents.base import DecisionContext, Features, Policy, ScoringPolicy
from winback.agents.baselines import (
    CARE,
    COUPON,
    PUSH,
    FixedCadence,
    InterestThresholdRule,
    NoContact,
    RandomContact,
    RecencyRule,
)
from winback.agents.experiments import ABTestThenRollout, UpliftTargeting
from winback.agents.oracle import Oracle
from winback.agents.reference import Reference, TrueWorld, start
from winback.agents.sb3 import SB3Policy
from winback.agents.training import TrainConfig, train
from winback.agents.tuning import grid_points, tune
from winback.benchmarks.rollout import run_policy
from winback.envs.episodes import Demand
from winback.errors import ConfigError
from winback.export.policy import ExportedPolicy
from winback.scenarios.scenario import Scenario, load_scenario
from winback.simulator.core import Simulator
from winback.simulator.features import feature_names, observe
from winback.simulator.state import SINCE_CAP, SimState

NONE, PUSH_A, COUPON_A, CARE_A = range(4)


@cache
def scenario() -> Scenario:
    torch.set_num_threads(1)
    return dataclasses.replace(load_scenario("default"), horizon=12)


@cache
def users() -> SimState:
    return scenario().eval_users().take(np.arange(300))


def context(n: int, seed: int = 0) -> DecisionContext:
    simulator = scenario().simulator_for(0)
    return DecisionContext(
        feature_names=feature_names(simulator),
        actions=simulator.actions,
        n_users=n,
        rng=np.random.default_rng(seed),
        horizon=scenario().horizon,
        keys=np.arange(n, dtype=np.uint64),
    )


def observations(n: int, **columns: float | np.ndarray) -> np.ndarray:
    """Synthetic observations: never contacted, recency 1, interest 0.5, unless given."""
    names = context(n).feature_names
    obs = np.zeros((n, len(names)), dtype=np.float32)
    obs[:, [i for i, name in enumerate(names) if name.startswith("since_")]] = 1.0
    obs[:, names.index("log_recency")] = np.log1p(1)
    obs[:, names.index("interest")] = 0.5
    for name, value in columns.items():
        obs[:, names.index(name)] = value
    return obs


def decide(policy: Policy, obs: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    policy.reset(context(len(obs)))
    return policy.act(obs, np.ones((len(obs), 4), dtype=bool) if masks is None else masks, 0)


def since(periods: int | np.ndarray) -> np.ndarray:
    return np.asarray(periods, dtype=np.float32) / SINCE_CAP


def recency(periods: int | np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(periods, dtype=np.float32))


def test_features_read_back_the_units_rules_use() -> None:
    obs = observations(3, log_recency=recency(np.array([1, 5, 60])), since_coupon=since(np.array([2, 52, 3])))
    features = Features(context(3).feature_names, obs)
    np.testing.assert_array_equal(features.recency, [1, 5, 60])
    np.testing.assert_array_equal(features.since(COUPON), [2, 52, 3])
    # sent after the last purchase: only the coupon 3 periods ago for a user who last bought 60 ago
    np.testing.assert_array_equal(features.sent_this_lapse(COUPON), [False, False, True])


# ------------------------------------------------------------------------------- the contract

DEPLOYABLE: dict[str, Callable[[pytest.FixtureRequest], Policy]] = {
    "no_contact": lambda _: NoContact(),
    "random": lambda _: RandomContact({PUSH: 0.2, CARE: 0.3}),
    "fixed_cadence": lambda _: FixedCadence(CARE, 2),
    "recency_rule": lambda _: RecencyRule(2, 4, 8, repeat_every=4),
    "interest_threshold": lambda _: InterestThresholdRule(0.05, 2),
    "ab_test": lambda _: ABTestThenRollout(
        {"cadence": FixedCadence(CARE, 2), "recency": RecencyRule(2, 4, 8)}, window=4
    ),
    "uplift": lambda _: UpliftTargeting(window=4, gap=2),
    "maskable_ppo": lambda request: SB3Policy.load(request.getfixturevalue("tiny_run")),
    "dqn": lambda request: SB3Policy.load(request.getfixturevalue("dqn_run")),
    "exported": lambda request: ExportedPolicy.load(request.getfixturevalue("tiny_export")),
}
"""Every deployable policy, by test id (trained ones loaded as they are deployed: from files)."""
REFERENCES: dict[str, Callable[[pytest.FixtureRequest], Policy]] = {
    "oracle": lambda _: Oracle(lookahead=2),
    "planner": lambda _: Oracle(lookahead=2, clairvoyant=False, samples=2),
    "rollout_planner": lambda _: Oracle(
        lookahead=3, clairvoyant=False, samples=2, base=FixedCadence(CARE, 2)
    ),
}
POLICIES = {**DEPLOYABLE, **REFERENCES}
SCORE_KINDS = {
    "uplift": "net_value",
    "maskable_ppo": "log_probability",
    "dqn": "q_value",
    "exported": "log_probability",
}
"""The policies that score actions, and what their scores are."""
HIDDEN = (Simulator, SimState, Demand, TrueWorld, Scenario)
"""What production does not have: the simulator, its state, the scenario and its shifts of demand."""


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DQN run with the :data:`tiny.TRAINING` budget (its scores are Q-values)."""
    out = tmp_path_factory.mktemp("dqn")
    train(TrainConfig(algo="dqn", **TRAINING), out, progress=False)
    return out


def adversarial_masks(rng: np.random.Generator, n: int, period: int) -> np.ndarray:
    """Each contact allowed with probability 1/2, and every contact masked for a third of the users."""
    masks = rng.random((n, 4)) < 0.5
    masks[:, NONE] = True
    masks[period % 3 :: 3, 1:] = False
    return masks


PeriodCheck = Callable[[np.ndarray, np.ndarray, int, np.ndarray], None]


def drive(policy: Policy, seed: int, check: PeriodCheck | None = None) -> list[np.ndarray]:
    """``policy``'s actions over the horizon on the simulator's users, by hand under adversarial
    masks, each checked to be (n,) int64, in range and allowed (then by ``check`` if given, with
    the period's observations, masks and period)."""
    simulator, state, n = scenario().simulator_for(seed), users().copy(), users().n_users
    rng = np.random.default_rng(seed)
    context = DecisionContext(
        feature_names(simulator),
        simulator.actions,
        n,
        np.random.default_rng(seed),
        scenario().horizon,
        state.keys,
    )
    start(policy, context, TrueWorld(simulator, state, 0, scenario().demand))
    chosen = []
    for period in range(scenario().horizon):
        observations, masks = observe(simulator, state), adversarial_masks(rng, n, period)
        actions = policy.act(observations, masks, period)
        assert actions.dtype == np.int64 and actions.shape == (n,)
        assert ((actions >= 0) & (actions < 4)).all() and masks[np.arange(n), actions].all()
        if check is not None:
            check(observations, masks, period, actions)
        policy.update(simulator.step(state, actions).reward.total)
        chosen.append(actions)
    return chosen


@pytest.fixture(params=list(POLICIES))
def named_policy(request: pytest.FixtureRequest) -> tuple[str, Policy]:
    """Each policy, new, with its test id."""
    return request.param, POLICIES[request.param](request)


def test_every_policy_acts_in_range_never_masked_and_the_same_for_a_seed(
    named_policy: tuple[str, Policy],
) -> None:
    name, policy = named_policy
    assert isinstance(policy, ScoringPolicy) == (name in SCORE_KINDS)
    assert isinstance(policy, Reference) == (name in REFERENCES)
    run = run_policy(policy, scenario(), users(), [0])
    assert run.metrics["net_value"].shape == (1, users().n_users)
    first = drive(policy, seed=1)
    np.testing.assert_array_equal(first, drive(policy, seed=1))
    assert len(np.unique(first)) > 1 or name == "no_contact"


def reachable(*roots: object) -> Iterator[object]:
    """Every object reachable from ``roots`` through attributes, containers and closures (not
    through classes, modules or the globals of functions)."""
    seen, stack = set(), list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, FunctionType):
            stack.extend(cell.cell_contents for cell in obj.__closure__ or ())
            stack.extend(obj.__defaults__ or ())
        else:
            stack.extend(gc.get_referents(obj))


def record_arguments(policy: Policy) -> list[object]:
    """Every argument passed to ``policy``'s reset, act and update from now on."""
    handed: list[object] = []

    def recording(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: object) -> Any:
            handed.extend(args)
            return method(*args)

        return call

    for name in ("reset", "act", "update"):
        setattr(policy, name, recording(getattr(policy, name)))
    return handed


def test_only_references_can_reach_the_simulator_from_what_the_harness_hands_them(
    named_policy: tuple[str, Policy],
) -> None:
    name, policy = named_policy
    handed = record_arguments(policy)
    run_policy(policy, scenario(), users(), [0])
    assert any(isinstance(arg, DecisionContext) for arg in handed)
    reached = {type(obj).__name__ for obj in reachable(policy, handed) if isinstance(obj, HIDDEN)}
    if name in REFERENCES:
        assert {"Simulator", "SimState", "Demand", "TrueWorld"} <= reached  # the walk finds a way in
    else:
        assert reached == set(), f"{name} can reach {reached}"


def test_the_decision_context_has_no_field_that_could_hold_the_simulator() -> None:
    def types_in(hint: object) -> Iterator[object]:
        yield hint
        for arg in get_args(hint):
            yield from types_in(arg)

    for field, hint in get_type_hints(DecisionContext).items():
        hidden = [t for t in types_in(hint) if isinstance(t, type) and issubclass(t, HIDDEN)]
        assert not hidden, f"DecisionContext.{field} can hold {hidden}"


@pytest.mark.parametrize("name", SCORE_KINDS)
def test_scoring_policies_score_every_action_and_act_on_the_best(
    name: str, request: pytest.FixtureRequest
) -> None:
    policy = POLICIES[name](request)
    assert isinstance(policy, ScoringPolicy) and policy.score_kind == SCORE_KINDS[name]
    greedy_from = 1 if name == "uplift" else 0  # uplift's first period is its test's random draws

    def check(observations: np.ndarray, masks: np.ndarray, period: int, actions: np.ndarray) -> None:
        scores = policy.scores(observations, masks, period)
        assert scores.shape == masks.shape and np.isneginf(scores[~masks]).all()
        if period >= greedy_from:
            np.testing.assert_array_equal(actions, np.argmax(scores, axis=1))
        if policy.score_kind == "log_probability":
            unmasked = policy.scores(observations, np.ones_like(masks), period)
            np.testing.assert_allclose(np.exp(unmasked.astype(np.float64)).sum(axis=1), 1, rtol=1e-5)

    drive(policy, seed=2, check=check)
    if name == "uplift":  # the value models are fitted: scores are predictions, some of them contacts
        observations = observe(scenario().simulator_for(2), users())
        scores = policy.scores(observations, np.ones((users().n_users, 4), dtype=bool), scenario().horizon)
        assert np.isfinite(scores[:, NONE]).all() and np.isfinite(scores[:, 1:]).any()


def test_a_reference_starts_only_bound_to_the_world_of_its_batch() -> None:
    oracle, simulator = Oracle(), scenario().simulator_for(0)
    with pytest.raises(ConfigError, match="bind it to the true world"):
        oracle.reset(context(3))
    oracle.bind(TrueWorld(simulator, users().copy(), 0, Demand()))
    with pytest.raises(ConfigError, match="300 users, reset for 3"):
        oracle.reset(context(3))
    start(oracle, context(300), TrueWorld(simulator, users().copy(), 0, Demand()))
    with pytest.raises(ConfigError, match="bind it to the true world"):
        oracle.reset(context(300))  # a world serves one reset: never a stale one


def test_fixed_cadence_sends_its_kind_every_k_periods() -> None:
    chosen = decide(FixedCadence(COUPON, 4), observations(4, since_coupon=since(np.array([1, 3, 4, 52]))))
    np.testing.assert_array_equal(chosen, [NONE, NONE, COUPON_A, COUPON_A])


def test_recency_rule_sends_the_stage_contact_once_per_lapse() -> None:
    rule = RecencyRule(care_at=2, push_at=4, coupon_at=8)
    rec = np.array([1, 2, 3, 4, 9, 9])
    sent_push = np.array([52, 52, 52, 52, 52, 52])
    sent_coupon = np.array([52, 52, 52, 52, 52, 5])  # the last user got the coupon in this lapse
    obs = observations(6, log_recency=recency(rec), since_push_new_items=since(sent_push))
    obs[:, context(6).feature_names.index("since_coupon")] = since(sent_coupon)
    np.testing.assert_array_equal(decide(rule, obs), [NONE, CARE_A, CARE_A, PUSH_A, COUPON_A, NONE])
    repeating = RecencyRule(care_at=2, push_at=4, coupon_at=8, repeat_every=5)
    assert decide(repeating, obs)[-1] == COUPON_A
    assert np.all(decide(RecencyRule(0, 0, 0), obs) == NONE)


def test_interest_threshold_rule_escalates_within_a_lapse() -> None:
    rule = InterestThresholdRule(threshold=0.1, gap=2)
    rec = recency(np.full(5, 10))
    obs = observations(5, interest=np.array([0.5, 0.05, 0.05, 0.05, 0.05]), log_recency=rec)
    names = context(5).feature_names
    obs[2, names.index("since_care_message")] = since(3)  # care already sent in this lapse -> push
    obs[3, names.index("since_care_message")] = since(4)
    obs[3, names.index("since_push_new_items")] = since(2)  # care and push sent -> coupon
    obs[4, names.index("since_care_message")] = since(1)  # contacted last period: wait for the gap
    np.testing.assert_array_equal(decide(rule, obs), [NONE, CARE_A, PUSH_A, COUPON_A, NONE])
    assert decide(InterestThresholdRule(0.1, 2, top=PUSH), obs)[3] == PUSH_A  # the ladder stops at push


def test_random_contact_sends_at_its_rates_from_its_own_generator() -> None:
    policy = RandomContact.matched({PUSH: 5.2, COUPON: 0.0, CARE: 10.4}, horizon=52)
    np.testing.assert_allclose([policy.rates[PUSH], policy.rates[CARE]], [0.1, 0.2])
    chosen = decide(policy, observations(20_000))
    shares = np.bincount(chosen, minlength=4) / len(chosen)
    np.testing.assert_allclose(shares[[PUSH_A, COUPON_A, CARE_A]], [0.1, 0.0, 0.2], atol=0.01)
    np.testing.assert_array_equal(chosen, decide(policy, observations(20_000)))  # same seed, same draws


def test_bad_parameters_are_refused_with_the_field() -> None:
    for make, field in (
        (lambda: FixedCadence(CARE, 0), "every"),
        (lambda: RecencyRule(-1, 2, 3), "care_at"),
        (lambda: InterestThresholdRule(1.5, 2), "threshold"),
        (lambda: InterestThresholdRule(0.1, 2, top="letter"), "top"),
        (lambda: RandomContact({CARE: 0.7, PUSH: 0.6}), "rates"),
        (lambda: Oracle(lookahead=0), "lookahead"),
        (lambda: Oracle(base=Oracle()), "base"),
    ):
        with pytest.raises(ConfigError, match=field):
            make()


def test_the_oracle_beats_every_rule_and_the_planner_beats_doing_nothing() -> None:
    values = {
        name: run_policy(policy, scenario(), users(), [0, 1]).metrics["net_value"].mean()
        for name, policy in {
            "none": NoContact(),
            "cadence": FixedCadence(CARE, 2),
            "recency": RecencyRule(2, 4, 8),
            "threshold": InterestThresholdRule(0.05, 2),
            "oracle": Oracle(lookahead=2),
            "planner": Oracle(lookahead=2, clairvoyant=False, samples=4),
        }.items()
    }
    assert values["oracle"] > max(values[k] for k in ("none", "cadence", "recency", "threshold", "planner"))
    assert values["planner"] > values["none"]


def test_a_rollout_planner_improves_on_the_policy_it_rolls_out() -> None:
    def value(policy: Policy) -> float:
        return run_policy(policy, scenario(), users(), [0, 1]).metrics["net_value"].mean()

    planner = Oracle(lookahead=2, clairvoyant=False, samples=4)
    assert value(dataclasses.replace(planner, base=NoContact())) == value(planner)  # nothing after: the same
    cadence = FixedCadence(CARE, 2)
    # 16 sampled futures: with 4, the estimate's noise outweighs the improvement on 300 users.
    rollout = Oracle(lookahead=scenario().horizon, clairvoyant=False, samples=16, base=FixedCadence(CARE, 2))
    assert value(rollout) > value(cadence)


def test_tuning_picks_the_best_grid_point_on_the_users_it_is_given() -> None:
    grid = {"kind": [CARE, COUPON], "every": [2, 6]}
    result = tune("fixed_cadence", FixedCadence, grid, scenario(), users(), [7], progress=False)
    assert [t.params for t in result.trials] == grid_points(grid)
    assert result.best.net_value == max(t.net_value for t in result.trials)
    direct = run_policy(FixedCadence(**result.best.params), scenario(), users(), [7])
    assert direct.metrics["net_value"].mean() == pytest.approx(result.best.net_value)
    again = tune("fixed_cadence", FixedCadence, grid, scenario(), users(), [7], progress=False)
    assert again == result
