"""Experiment-driven baselines: an A/B test then rollout, and uplift targeting from a randomised test."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
import torch

from winback.agents.base import DecisionContext, Policy
from winback.agents.baselines import FixedCadence, InterestThresholdRule, RecencyRule
from winback.agents.experiments import ABTestThenRollout, UpliftTargeting
from winback.benchmarks.rollout import run_policy
from winback.errors import ConfigError
from winback.scenarios.scenario import Scenario, load_scenario

ACTIONS = ("none", "push_new_items", "coupon", "care_message")
FEATURES = ("interest", "since_push_new_items", "since_coupon", "since_care_message")
NONE, PUSH_A, COUPON_A, CARE_A = range(4)


@cache
def scenario() -> Scenario:
    torch.set_num_threads(1)
    return dataclasses.replace(load_scenario("default"), horizon=16)


def context(n: int, seed: int = 0, horizon: int = 16) -> DecisionContext:
    keys = np.arange(n, dtype=np.uint64)
    return DecisionContext(FEATURES, ACTIONS, n, np.random.default_rng(seed), horizon, keys)


def observations(interest: np.ndarray, since: float | np.ndarray = 1.0) -> np.ndarray:
    """Synthetic observations: ``interest`` and the same periods-since (over the cap) for every kind."""
    obs = np.empty((len(interest), len(FEATURES)), dtype=np.float32)
    obs[:, 0] = interest
    obs[:, 1:] = np.asarray(since, dtype=np.float32).reshape(-1, 1)
    return obs


@dataclasses.dataclass
class Always(Policy):
    """Sends ``action`` to everyone."""

    action: int
    name: str = "always"

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return np.full(len(observations), self.action, dtype=np.int64)


def drive(policy: Policy, n: int, effects: np.ndarray, seed: int = 0, periods: int = 6) -> list[np.ndarray]:
    """Runs ``policy`` by hand: each period a user is worth N(0, 1) plus ``effects`` of the action got."""
    policy.reset(context(n, seed))
    rng, obs, masks = np.random.default_rng(seed + 100), observations(np.full(n, 0.5)), np.ones((n, 4), bool)
    history = []
    for period in range(periods):
        actions = policy.act(obs, masks, period)
        policy.update(rng.normal(size=n) + effects[actions])
        history.append(actions)
    return history


def ab_test(**kwargs: object) -> ABTestThenRollout:
    return ABTestThenRollout({"push": Always(PUSH_A), "coupon": Always(COUPON_A)}, window=4, **kwargs)


# ---------------------------------------------------------------------------------------------- A/B


def test_ab_test_rolls_out_a_clear_winner_to_everyone() -> None:
    policy = ab_test(test_share=0.3)
    history = drive(policy, 2000, effects=np.array([0.0, 0.1, 1.0, 0.0]))
    assert policy.decision is not None
    assert policy.decision.winner == policy.decision.challenger == "coupon"
    assert policy.decision.p_value < 1e-6
    assert (
        policy.decision.means["coupon"] > policy.decision.means["push"] > policy.decision.means["control"] - 1
    )
    assert all((actions == COUPON_A).all() for actions in history[4:])


def test_ab_test_keeps_the_control_on_a_tiny_noisy_difference() -> None:
    policy = ab_test(test_share=0.3)
    history = drive(policy, 2000, effects=np.array([0.0, 0.0, 0.01, 0.0]))
    assert policy.decision is not None
    assert policy.decision.winner == "control" and policy.decision.p_value >= 0.05
    assert all((actions == NONE).all() for actions in history[4:])


def test_ab_test_splits_the_test_evenly_and_leaves_everyone_else_alone() -> None:
    policy = ab_test(test_share=0.3)
    assert policy.decision is None
    history = drive(policy, 1001, effects=np.zeros(4), periods=4)
    assert policy.decision is not None
    users = policy.decision.users
    assert sum(users.values()) == round(0.3 * 1001) and max(users.values()) - min(users.values()) <= 1
    for actions in history:  # the control arm and the users outside the test get nothing
        assert (actions == PUSH_A).sum() == users["push"] and (actions == COUPON_A).sum() == users["coupon"]
        assert (actions == NONE).sum() == 1001 - users["push"] - users["coupon"]


def test_ab_test_is_deterministic_for_a_seed() -> None:
    effects = np.array([0.0, 0.2, 0.1, 0.0])
    runs = [ab_test(test_share=0.3) for _ in range(3)]
    first, again, other = (
        drive(runs[0], 500, effects),
        drive(runs[1], 500, effects),
        drive(runs[2], 500, effects, 1),
    )
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert runs[0].decision == runs[1].decision
    assert any((a != b).any() for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 0}, "window"),
        ({"test_share": 0.0}, "test_share"),
        ({"test_share": 1.5}, "test_share"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"candidates": {}}, "candidates"),
        ({"candidates": {"control": Always(PUSH_A)}}, "candidates"),
    ],
)
def test_ab_test_rejects_bad_parameters(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"ABTestThenRollout.{field}"):
        ABTestThenRollout(**{"candidates": {"push": Always(PUSH_A)}, **kwargs})


@pytest.mark.parametrize(("kwargs", "n", "field"), [({"window": 16}, 100, "window"), ({}, 15, "test_share")])
def test_ab_test_checks_the_design_against_the_batch(kwargs: dict, n: int, field: str) -> None:
    policy = ABTestThenRollout({"push": Always(PUSH_A)}, **kwargs)
    with pytest.raises(ConfigError, match=f"ABTestThenRollout.{field}"):
        policy.reset(context(n))


# ------------------------------------------------------------------------------------------- uplift


def fitted_uplift(n: int = 4000, seed: int = 0) -> UpliftTargeting:
    """Uplift targeting after a window in which a coupon pays +1 to users with interest above 0.5.

    Every contact costs 0.1; a quarter of the users have a valid coupon in the first period (masked).
    """
    policy = UpliftTargeting(window=3, test_share=0.5)
    policy.reset(context(n, seed))
    rng = np.random.default_rng(seed + 100)
    interest = rng.random(n)
    masks = np.ones((n, 4), bool)
    masks[: n // 4, COUPON_A] = False
    actions = policy.act(observations(interest), masks, 0)
    assert not (actions[: n // 4] == COUPON_A).any()
    value = np.where(actions > 0, -0.1, 0.0) + np.where((actions == COUPON_A) & (interest > 0.5), 1.0, 0.0)
    policy.update(value + rng.normal(scale=0.05, size=n))
    for period in (1, 2):
        assert (policy.act(observations(interest, 2 / 52), masks, period) == NONE).all()
        policy.update(rng.normal(scale=0.05, size=n))
    return policy


def test_uplift_targets_the_action_where_it_pays() -> None:
    policy = fitted_uplift()
    assert set(policy.models) == set(ACTIONS)
    assert sum(policy.fitted_on.values()) == 2000
    assert policy.fitted_on["none"] > policy.fitted_on["coupon"]  # masked coupons were recorded as none
    interest = np.linspace(0, 1, 201)
    actions = policy.act(observations(interest), np.ones((201, 4), bool), 3)
    assert (actions[interest > 0.6] == COUPON_A).all() and (actions[interest < 0.4] == NONE).all()


def test_uplift_respects_the_gap_and_the_masks() -> None:
    policy = fitted_uplift()
    interest = np.full(4, 0.9)
    since = np.array([3, 4, 10, 10]) / 52
    masks = np.ones((4, 4), bool)
    masks[3, COUPON_A] = False
    assert policy.act(observations(interest, since), masks, 3).tolist() == [NONE, COUPON_A, COUPON_A, NONE]


def test_uplift_is_deterministic_for_a_seed() -> None:
    interest = np.linspace(0, 1, 101)
    predict = [
        fitted_uplift(1000, seed).act(observations(interest), np.ones((101, 4), bool), 3) for seed in (0, 0)
    ]
    assert (predict[0] == predict[1]).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"window": 0}, "window"), ({"test_share": 0.0}, "test_share"), ({"gap": 0}, "gap")],
)
def test_uplift_rejects_bad_parameters(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"UpliftTargeting.{field}"):
        UpliftTargeting(**kwargs)


# --------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("kind", ["ab_test", "uplift"])
def test_experiments_run_on_the_simulator(kind: str) -> None:
    users = scenario().train_users().take(np.arange(600))
    if kind == "ab_test":
        candidates = {
            "care": FixedCadence("care_message", 4),
            "recency": RecencyRule(2, 4, 8),
            "interest": InterestThresholdRule(0.05, 4),
        }
        policy: Policy = ABTestThenRollout(candidates, window=4)
    else:
        policy = UpliftTargeting(window=4)
    run = run_policy(policy, scenario(), users, [0])
    assert run.metrics["net_value"].shape == (1, 600) and np.isfinite(run.metrics["net_value"]).all()
    if isinstance(policy, ABTestThenRollout):
        assert policy.decision is not None and sum(policy.decision.users.values()) == 120
    else:
        assert isinstance(policy, UpliftTargeting) and sum(policy.fitted_on.values()) == 120
        assert run.metrics["contacts"].sum() > 0
