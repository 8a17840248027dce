"""Allocation under shared limits: never over a limit, the scores' own choice without one, prices
that clear, hand-checked on a tiny case; and the price search of a price-conditioned policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winback.allocation import PriceInput, allocate, allocate_conditioned
from winback.errors import ConfigError

# none, push (free), coupon (1 coupon), care (1 message): the simulator's actions.
USE = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Random scores (some masked, ties from rounding) and limits for up to 60 users."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 60))
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(0.0, 1.0, (n, 4)), draw(st.sampled_from([1, 3, 8])))
    scores[rng.random((n, 4)) < draw(st.floats(0.0, 0.5))] = -np.inf
    scores[:, 0] = np.round(rng.normal(0.0, 0.3, n), 2)
    limits = np.array([draw(st.sampled_from([0.0, 1.0, 3.0, 7.5, np.inf])) for _ in range(2)])
    return scores, limits


@settings(max_examples=300, deadline=None)
@given(problems())
def test_no_limit_is_ever_exceeded_and_each_user_keeps_an_allowed_action(
    problem: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, limits = problem
    allocation = allocate(scores, USE, limits)
    assert np.all(allocation.used <= limits)
    np.testing.assert_array_equal(allocation.used, USE[:, allocation.actions].sum(axis=1))
    assert np.all(np.isfinite(scores[np.arange(len(scores)), allocation.actions])), (
        "masked actions never chosen"
    )
    assert np.all(allocation.prices >= 0)
    if allocation.exact:  # every user's action is its best at the prices
        net = scores - allocation.prices @ USE
        chosen = net[np.arange(len(scores)), allocation.actions]
        assert np.all(chosen >= net.max(axis=1) - 1e-6 * (1 + np.abs(scores[np.isfinite(scores)]).max()))


@settings(max_examples=200, deadline=None)
@given(problems())
def test_without_a_binding_limit_the_allocation_changes_no_decision(
    problem: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, _ = problem
    allocation = allocate(scores, USE, np.array([np.inf, np.inf]))
    np.testing.assert_array_equal(allocation.actions, np.argmax(scores, axis=1))
    assert allocation.rounds == 0 and np.all(allocation.prices == 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.integers(0, 50), st.sampled_from([1, 2, 16]))
def test_one_scarce_resource_is_used_to_its_limit_by_the_users_who_gain_most(
    seed: int, n: int, coupons: int, decimals: int
) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(0.0, 1.0, (n, 4)), decimals)  # few decimals: many ties
    allocation = allocate(scores, USE, np.array([float(coupons), np.inf]))
    best_without = np.delete(scores, 2, axis=1).max(axis=1)
    gains = scores[:, 2] - best_without
    wanted, indifferent = int((gains > 0).sum()), int((gains == 0).sum())
    assert min(coupons, wanted) <= allocation.used[0] <= min(coupons, wanted + indifferent), (
        "a binding limit is used to the full"
    )
    takers = allocation.actions == 2
    if takers.any() and (~takers).any():
        assert gains[takers].min() >= gains[~takers].max() - 1e-9, "the coupons go to the largest gains"
    assert allocation.exact and allocation.rounds <= 2, "one price clears in one round"


def test_the_price_search_converges_with_two_substitute_resources() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 1.0, (5000, 4))
    scores[:, 2:] += 1.0  # coupon and care both attractive: the prices trade users between them
    allocation = allocate(scores, USE, np.array([300.0, 200.0]))
    assert allocation.exact and allocation.rounds <= 60
    assert np.all(allocation.used <= [300, 200]) and np.all(allocation.used >= [290, 190])
    assert np.all(allocation.prices > 0)


def test_a_tiny_case_by_hand() -> None:
    # Three users; one coupon. Gains of the coupon over each user's best other action: 0.5, 2.0, 1.0.
    scores = np.array(
        [
            [0.0, 1.0, 1.5, -np.inf],
            [0.0, 0.0, 2.0, -np.inf],
            [0.0, -np.inf, 1.0, -np.inf],
        ]
    )
    allocation = allocate(scores, USE, np.array([1.0, np.inf]))
    np.testing.assert_array_equal(allocation.actions, [1, 2, 0])
    assert allocation.prices[0] == pytest.approx(1.0)  # the gain of the first user left out
    assert allocation.prices[1] == 0.0
    np.testing.assert_array_equal(allocation.used, [1, 0])


@pytest.mark.parametrize(
    ("scores", "use", "limits", "match"),
    [
        (np.zeros((2, 4)), USE, np.array([1.0]), "expected"),
        (np.zeros((2, 4)), np.array([[0.0, 0.0, 1.0, 2.0], [0, 0, 0, 1]]), np.array([1.0, 1.0]), "different"),
        (np.zeros((2, 4)), USE, np.array([-1.0, 1.0]), ">= 0"),
        (np.full((2, 4), -np.inf), USE, np.array([1.0, 1.0]), "finite for action 0"),
    ],
)
def test_malformed_input_is_named(
    scores: np.ndarray, use: np.ndarray, limits: np.ndarray, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        allocate(scores, use, limits)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(0, 12), st.integers(0, 12))
def test_the_allocation_reaches_the_best_total_score_the_limits_allow(
    seed: int, n: int, coupons: int, messages: int
) -> None:
    """Against the linear program (its optimum is integral: users choose one action, resources are
    counts), solved by HiGHS."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 1.0, (n, 4))
    scores[rng.random((n, 4)) < 0.2] = -np.inf
    scores[:, 0] = rng.normal(0.0, 0.3, n)
    limits = np.array([float(coupons), float(messages)])
    allocation = allocate(scores, USE, limits)
    allowed = np.isfinite(scores).ravel()
    one_action = np.kron(np.eye(n), np.ones(4))
    per_resource = np.tile(USE, n)
    solved = linprog(
        -np.where(allowed, scores.ravel(), 0.0),
        A_ub=per_resource,
        b_ub=limits,
        A_eq=one_action,
        b_eq=np.ones(n),
        bounds=[(0, 1 if ok else 0) for ok in allowed],
        method="highs",
    )
    assert solved.status == 0
    total = scores[np.arange(n), allocation.actions].sum()
    assert total == pytest.approx(-solved.fun, abs=1e-6)


def conditioned(values: np.ndarray) -> object:
    """A price-conditioned policy that has learned its lesson exactly: its scores at prices p are
    ``values - p @ USE`` (the net value of each action after paying for what it uses)."""
    return lambda prices: values - np.asarray(prices) @ USE


@settings(max_examples=200, deadline=None)
@given(problems(), st.sampled_from([0.5, 2.0, 8.0]))
def test_a_price_conditioned_policy_never_exceeds_a_limit(
    problem: tuple[np.ndarray, np.ndarray], ceiling: float
) -> None:
    scores, limits = problem
    ceilings = np.array([ceiling, ceiling])
    allocation = allocate_conditioned(conditioned(scores), USE, limits, ceilings)
    assert np.all(allocation.used <= limits)
    assert np.all(np.isfinite(scores[np.arange(len(scores)), allocation.actions]))
    assert np.all((allocation.prices >= 0) & (allocation.prices <= ceilings))
    unlimited = allocate_conditioned(conditioned(scores), USE, np.array([np.inf, np.inf]), ceilings)
    np.testing.assert_array_equal(unlimited.actions, np.argmax(scores, axis=1))
    assert np.all(unlimited.prices == 0) and unlimited.exact


def test_the_price_shown_converges_to_the_clearing_price() -> None:
    """For the exact policy above, the price it is shown converges to the Lagrange price of its
    values, within a bisection step, and the limit is used to within the users that step spans."""
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 1.0, (20_000, 4))
    limits = np.array([np.inf, 500.0])
    plain = allocate(values, USE, limits)
    shown = allocate_conditioned(conditioned(values), USE, limits, np.array([0.0, 8.0]))
    assert shown.exact and shown.prices[0] == 0
    assert shown.prices[1] == pytest.approx(plain.prices[1], abs=8.0 / 2**13)
    assert 490 <= shown.used[1] <= 500
    assert np.mean(shown.actions == plain.actions) > 0.999


def test_past_its_ceiling_the_rest_is_cleared_on_the_scores() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0.0, 1.0, (2000, 4)) + np.array([0.0, 0.0, 0.0, 3.0])  # care worth 3 more
    shown = allocate_conditioned(conditioned(values), USE, np.array([np.inf, 50.0]), np.array([0.0, 1.0]))
    assert shown.prices[1] == 1.0 and not shown.exact, "the ceiling does not clear: the allocation cuts"
    assert shown.used[1] == 50


def test_a_price_input_names_its_columns_and_refuses_what_it_cannot_read() -> None:
    prices = PriceInput(("care_messages",), 5.0)
    assert prices.columns == ("price_care_messages",)
    np.testing.assert_array_equal(prices.ceilings, [0.0, 5.0])
    observed = prices.append(np.zeros((3, 2), dtype=np.float32), np.array([1.0, 2.5]))
    np.testing.assert_array_equal(observed, [[0, 0, 2.5]] * 3)
    assert PriceInput.from_dict(prices.to_dict(), "x") == prices
    for resources, ceiling, match in [
        (("vouchers",), 1.0, "allowed"),
        (("care_messages", "coupons"), 1.0, "order"),
        (("coupons",), 0.0, "ceiling"),
    ]:
        with pytest.raises(ConfigError, match=match):
            PriceInput(resources, ceiling)
    with pytest.raises(ConfigError, match=r"prices\.json: not a price input"):
        PriceInput.from_dict({"ceiling": 1.0}, "prices.json")
