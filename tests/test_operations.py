"""The what-if engine's operations: equal to the Gymnasium environment without limits, and each limit
doing what its scenario says."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import winback.envs
from winback.agents.base import DecisionContext, Policy
from winback.agents.baselines import FixedCadence
from winback.benchmarks.rollout import PolicyRun, policy_seed, run_policy
from winback.errors import ConfigError
from winback.scenarios.operations import DROPS, OperationsDesk, resource_takers
from winback.scenarios.scenario import Scenario, load_scenario
from winback.scenarios.schema import Campaign, Operations
from winback.simulator.features import feature_names
from winback.simulator.response import CARE, COUPON, PUSH

HORIZON = 10
SEED = 3


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    torch.set_num_threads(1)
    return dataclasses.replace(load_scenario("default"), horizon=HORIZON)


@pytest.fixture(scope="module")
def users(scenario: Scenario) -> winback.simulator.state.SimState:
    return scenario.eval_users().take(np.arange(300))


@dataclass
class Unmasked(Policy):
    """Draws any action with the given probabilities, masks or not (masked requests are refused)."""

    probabilities: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    name: str = "unmasked"

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return self.context.rng.choice(len(self.probabilities), len(observations), p=self.probabilities)


@dataclass
class Scripted(Policy):
    """Requests ``script[t]`` for every user in period ``t`` (``none`` past its end)."""

    script: tuple[int, ...]
    name: str = "scripted"

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        action = self.script[period] if period < len(self.script) else 0
        return np.full(len(observations), action, dtype=np.int64)


def with_operations(scenario: Scenario, **limits: object) -> Scenario:
    return dataclasses.replace(scenario, operations=Operations(**limits))  # type: ignore[arg-type]


def check_accounting(run: PolicyRun) -> None:
    """Every requested contact is served, dropped for one reason, or still in flight at the end."""
    ops = run.operations
    requested, served = ops["requested"].sum(axis=(1, 2)), ops["served"].sum(axis=(1, 2))
    dropped = sum(ops[f"dropped_{reason}"].sum(axis=(1, 2)) for reason in DROPS)
    np.testing.assert_array_equal(requested, served + dropped + ops["in_flight"][:, -1])
    pushes = run.metrics["contacts_push_new_items"].sum(axis=1)
    np.testing.assert_array_equal(ops["served"].sum(axis=1)[:, 0], pushes)


def test_without_limits_the_engine_equals_the_gymnasium_env(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    simulator = scenario.simulator_for(SEED)
    vector = gym.make_vec(
        winback.envs.ACTIVATION_ID,
        num_envs=64,
        scenario=scenario,
        simulator=simulator,
        population=users,
    )
    observations, _ = vector.reset(seed=5)
    start = vector.unwrapped.episodes.state.copy()
    policy = Unmasked()
    policy.reset(
        DecisionContext(
            feature_names(simulator),
            simulator.actions,
            64,
            policy_seed(policy.name, SEED),
            HORIZON,
            start.keys,
        )
    )
    rewards, contacts = np.zeros(64), np.zeros(64)
    for period in range(HORIZON):
        masks = vector.unwrapped.action_masks()
        actions = policy.act(observations, masks, period)
        contacts += masks[np.arange(64), actions] & (actions > 0)
        observations, reward, _, _, _ = vector.step(actions)
        rewards += reward
    run = run_policy(Unmasked(), scenario, start, [SEED])
    # The same numbers, summed in another order (per part over periods, not per period).
    np.testing.assert_allclose(run.metrics["net_value"][0], rewards, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(run.metrics["contacts"][0], contacts)
    assert run.operations["dropped_masked"].sum() > 0, "the policy asked for masked contacts"
    assert run.operations["dropped_masked"].sum() == run.operations["requested"].sum() - contacts.sum()
    check_accounting(run)


@pytest.mark.parametrize(
    ("capacity", "service_time", "per_period"), [(1, 0.25, 4), (2, 0.02, 100), (1, 0.1, 10)]
)
def test_the_care_team_writes_capacity_over_service_time_messages_a_period(
    scenario: Scenario,
    users: winback.simulator.state.SimState,
    capacity: int,
    service_time: float,
    per_period: int,
) -> None:
    # No waiting past the period a message is sent in: the rest are dropped at once.
    limited = with_operations(scenario, care_capacity=capacity, care_service_time=service_time)
    run = run_policy(FixedCadence(CARE, 1), limited, users, [SEED])
    written = run.operations["served"][0, :, 2] + run.operations["dropped_refused"][0, :, 2]
    np.testing.assert_array_equal(written, per_period)
    assert run.operations["dropped_deadline"][0, 0, 2] == users.n_users - per_period
    assert run.operations["care_queue"].max() == 0, "nothing waits past its period"
    check_accounting(run)


def test_care_messages_wait_until_their_deadline(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    patient = with_operations(scenario, care_capacity=1, care_service_time=0.25, care_deadline=2)
    late = run_policy(FixedCadence(CARE, 1), patient, users, [SEED])
    assert late.operations["care_queue"][0].min() > 0
    written = late.operations["served"][0, :, 2] + late.operations["dropped_refused"][0, :, 2]
    np.testing.assert_array_equal(written, 4)
    assert late.operations["dropped_deadline"][0, :2].sum() == 0, "the first drops come after two periods"
    check_accounting(late)


def test_the_coupon_budget_caps_coupons_per_period(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    budgeted = with_operations(scenario, coupon_budget_per_period=7)
    run = run_policy(FixedCadence(COUPON, 1), budgeted, users, [SEED])
    ops = run.operations
    assert ops["coupons_used"][0].max() == 7 and (ops["served"][0, :, 1] <= 7).all()
    assert ops["dropped_budget"][0, 0, 1] == users.n_users - 7
    arrived = ops["served"][0, :, 1] + ops["dropped_refused"][0, :, 1]
    np.testing.assert_array_equal(ops["coupons_used"][0], arrived)
    check_accounting(run)
    unlimited = run_policy(FixedCadence(COUPON, 1), scenario, users, [SEED])
    assert unlimited.metrics["contacts_coupon"].sum() > 5 * run.metrics["contacts_coupon"].sum()


def test_delivery_delays_move_contacts_later_and_collisions_are_dropped(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    n = users.n_users
    delayed = with_operations(scenario, delivery_delay={PUSH: 2})
    # A push to everyone in period 0 arrives in period 2, where care sent in period 2 collides with it.
    run = run_policy(Scripted((1, 0, 3)), delayed, users, [SEED])
    ops = run.operations
    assert ops["served"][0, :2].sum() == 0
    assert ops["in_flight"][0, 0] == ops["in_flight"][0, 1] == n
    assert ops["served"][0, 2, 0] + ops["dropped_refused"][0, 2, 0] == n
    assert ops["dropped_collision"][0, 2, 2] == n, "the care message arrives after the push"
    check_accounting(run)
    direct = run_policy(Scripted((0, 0, 1)), scenario, users, [SEED])
    np.testing.assert_array_equal(run.metrics["net_value"], direct.metrics["net_value"])


def test_operations_are_deterministic_and_the_same_for_every_policy_name(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    limited = with_operations(scenario, care_capacity=1, care_service_time=0.1, care_deadline=1)
    first = run_policy(FixedCadence(CARE, 2), limited, users, [SEED, SEED + 1])
    again = run_policy(FixedCadence(CARE, 2, name="renamed"), limited, users, [SEED, SEED + 1])
    for key, values in first.metrics.items():
        np.testing.assert_array_equal(values, again.metrics[key], err_msg=key)
    served = first.metrics["contacts_care_message"]
    assert not np.array_equal(served[0] > 0, served[1] > 0), "who gets served depends on the seed"


def test_the_care_team_needs_a_care_kind(scenario: Scenario) -> None:
    response = dataclasses.replace(
        scenario.simulator.response, contacts={PUSH: scenario.simulator.response.contacts[PUSH]}
    )
    with pytest.raises(ConfigError, match=r"operations\.care_capacity = 2: the care team writes"):
        dataclasses.replace(
            scenario,
            operations=Operations(care_capacity=2, delivery_delay={}),
            simulator=dataclasses.replace(scenario.simulator, response=response),
        )


def test_a_campaign_reaches_everyone_the_policy_leaves_alone(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    campaign = dataclasses.replace(scenario, campaigns=(Campaign(period=2, kind=PUSH),))
    # The policy sends care to everyone in period 2 and coupons in period 1 (still valid in 2).
    run = run_policy(Scripted((0, 2, 3)), campaign, users, [SEED])
    ops = run.operations
    assert ops["campaign"][0].sum() == 0, "the policy contacts everyone the campaign could reach"
    alone = run_policy(Scripted((0, 2)), campaign, users, [SEED])
    n_pushed = alone.operations["campaign"][0, 2, 0]
    assert n_pushed == alone.operations["requested"][0, 2, 0] == alone.operations["served"][0, 2, 0]
    # Everyone who did not opt out over the coupons of period 1 gets the push (a valid coupon does
    # not mask other kinds).
    before = run_policy(Scripted((0, 2)), dataclasses.replace(scenario, horizon=2), users, [SEED])
    assert n_pushed == users.n_users - before.metrics["opted_out"][0].sum()
    check_accounting(alone)


def test_the_care_team_does_not_work_before_a_message_is_sent(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    # Care for everyone in periods 0 and 5 only: the team's clock must not lag behind the periods.
    limited = with_operations(scenario, care_capacity=1, care_service_time=0.25)
    run = run_policy(Scripted((3, 0, 0, 0, 0, 3)), limited, users, [SEED])
    written = run.operations["served"][0, :, 2] + run.operations["dropped_refused"][0, :, 2]
    np.testing.assert_array_equal(written[:6], [4, 0, 0, 0, 0, 4])
    check_accounting(run)


@settings(max_examples=25, deadline=None)
@given(
    capacity=st.integers(0, 3),
    service_time=st.sampled_from([0.02, 0.1, 0.25, 0.3, 0.7, 1.5]),
    deadline=st.integers(0, 2),
    budget=st.integers(0, 8),
    delays=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    probabilities=st.sampled_from([(0.4, 0.2, 0.2, 0.2), (0.1, 0.1, 0.1, 0.7), (0.7, 0.0, 0.3, 0.0)]),
)
def test_operations_account_for_every_request_under_any_limits(
    scenario: Scenario,
    users: winback.simulator.state.SimState,
    capacity: int,
    service_time: float,
    deadline: int,
    budget: int,
    delays: tuple[int, int, int],
    probabilities: tuple[float, ...],
) -> None:
    limits = Operations(
        coupon_budget_per_period=budget,
        care_capacity=capacity,
        care_service_time=service_time,
        care_deadline=deadline,
        delivery_delay=dict(zip((PUSH, COUPON, CARE), delays, strict=True)),
    )
    run = run_policy(Unmasked(probabilities), dataclasses.replace(scenario, operations=limits), users, [SEED])
    check_accounting(run)
    ops = run.operations
    if budget:
        assert (ops["coupons_used"] <= budget).all()
    if capacity:  # a period's messages: written in it by `capacity` agents, ending within it
        written = ops["served"][0, :, 2] + ops["dropped_refused"][0, :, 2] + ops["dropped_collision"][0, :, 2]
        assert (written <= capacity * (1 // service_time + 1)).all()
    if delays[0]:
        assert ops["served"][0, : delays[0], 0].sum() == 0, "no push arrives before its delay"
    assert (ops["coupons_redeemed"] <= ops["coupons_expired"]).all()
    assert ops["coupons_expired"].sum() <= ops["served"][:, :, 1].sum()


def test_coupons_are_followed_to_their_expiry(
    scenario: Scenario, users: winback.simulator.state.SimState
) -> None:
    run = run_policy(Scripted((2,)), scenario, users, [SEED])  # a coupon to everyone in period 0
    ops = run.operations
    validity = scenario.simulator.response.contacts[COUPON].validity
    expired = np.zeros(HORIZON, dtype=np.int64)
    expired[validity - 1] = ops["served"][0, 0, 1]
    np.testing.assert_array_equal(ops["coupons_expired"][0], expired)
    # Redeemed: the user bought while the coupon was valid, so a discount was paid.
    assert ops["coupons_redeemed"][0].sum() == (run.metrics["discounts"][0] > 0).sum() > 0


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(1, 3),
    service_time=st.sampled_from([0.1, 0.25, 0.4, 1.0, 1.5]),
    deadline=st.integers(0, 2),
    budget=st.integers(0, 6),
    extra=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_what_operations_say_is_available_is_served_and_no_more(
    capacity: int, service_time: float, deadline: int, budget: int, extra: bool, seed: int
) -> None:
    """Requests cut to :meth:`OperationsDesk.available` lose nothing to the budget or a deadline and,
    when a message takes at most a period, reach their users in the period they were sent for; one
    care message more than available (``extra``) is written late: after its period, or past its
    deadline."""
    kinds, n, horizon = (PUSH, COUPON, CARE), 200, 8
    limits = Operations(
        coupon_budget_per_period=budget,
        care_capacity=capacity,
        care_service_time=service_time,
        care_deadline=deadline,
    )
    desk = OperationsDesk(limits, kinds, np.array([0, 2, 0]), n, horizon, np.random.default_rng(seed))
    np.testing.assert_array_equal(desk.resource_use(), [[0, 0, int(budget > 0), 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(resource_takers(kinds, np.array([0, 2, 0])), [[0, 0, 1, 0], [0, 0, 0, 1]])
    rng, masks, requested = np.random.default_rng(seed), np.ones((n, 4), dtype=bool), []
    for period in range(horizon):
        coupons, messages = desk.available(period)
        assert coupons == (np.inf if budget == 0 else budget)
        wanting = rng.permutation(n)
        actions = np.zeros(n, dtype=np.int64)
        care = int(messages) + (1 if extra and period == 0 else 0)
        actions[wanting[:care]] = 3
        actions[wanting[care : care + int(min(coupons, 20))]] = 2
        requested.append(care)
        desk.dispatch(period, actions, masks)
        arriving = desk.deliveries(period)
        desk.settle(period, arriving, arriving, np.zeros(n, dtype=bool))
    dropped = desk.log.dropped
    served = (
        desk.log.served[:, 2] + dropped["collision"][:, 2]
    )  # written and arrived (a late one may collide)
    assert dropped["budget"].sum() == 0
    late = 1 if extra else 0
    if service_time <= 1:
        assert served[0] == requested[0] - late, "what is available is written within its period"
        np.testing.assert_array_equal(
            served[1:] - (late if deadline else 0) * (np.arange(1, horizon) == 1), requested[1:]
        )
        assert dropped["deadline"].sum() == (late if deadline == 0 else 0)
        assert served.sum() >= capacity * int(1 / service_time + 1e-9) * (horizon - 1), (
            "no agent idles a period"
        )
    else:
        assert dropped["deadline"].sum() == late, "available care is what the team can write in time"
        if service_time > 1 + deadline:  # no message can be written by its deadline
            assert served.sum() == 0
