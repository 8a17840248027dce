"""Allocation under shared limits: never over a limit, the scores' own choice without one, prices
that clear, hand-checked on a tiny case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winback.allocation import allocate
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
