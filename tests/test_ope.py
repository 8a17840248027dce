"""Off-policy estimators against values computed by hand on tiny logs (one period, and two users over
two periods), and their diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winback.benchmarks.ope import (
    MIN_ESS_SHARE,
    Trajectories,
    doubly_robust,
    doubly_robust_difference,
    ips,
    per_decision_weighted_is,
    snips,
    weighted_doubly_robust,
)
from winback.errors import ConfigError

# Four logged decisions among two actions.
ACTIONS = np.array([0, 1, 1, 0])
PROPENSITIES = np.array([0.5, 0.25, 0.5, 1.0])
REWARDS = np.array([1.0, 2.0, 3.0, 4.0])
TARGET = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5]])  # the candidate's distribution
PREDICTED = np.array([[1.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 5.0]])  # a reward model's predictions
ON_LOGGED = TARGET[np.arange(4), ACTIONS]  # 1.0, 0.5, 0.0, 0.5: weights 2, 2, 0, 0.5


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_ips_and_snips_by_hand() -> None:
    estimate = ips(REWARDS, PROPENSITIES, ON_LOGGED, rng=rng())
    assert estimate.value == pytest.approx((2 * 1 + 2 * 2 + 0 * 3 + 0.5 * 4) / 4)  # 2.0
    assert estimate.ess == pytest.approx(4.5**2 / (4 + 4 + 0 + 0.25))  # 2.4545...
    assert estimate.max_weight == 2.0 and estimate.n == 4
    normalised = snips(REWARDS, PROPENSITIES, ON_LOGGED, rng=rng())
    assert normalised.value == pytest.approx(8.0 / 4.5)
    assert normalised.low <= normalised.value <= normalised.high


def test_doubly_robust_by_hand() -> None:
    # Per decision: sum_a pi q + w (r - q(a_i)) = 1 + 0, 1 + 2, 2 + 0, 4 + 0.5.
    estimate = doubly_robust(REWARDS, PROPENSITIES, ACTIONS, TARGET, PREDICTED, rng=rng())
    assert estimate.value == pytest.approx((1 + 3 + 2 + 4.5) / 4)
    assert estimate.low <= estimate.value <= estimate.high


def test_a_launch_gate_pairs_two_policies_on_one_log_by_hand() -> None:
    """The four decisions as two users over two periods: the difference is the two DR values'."""
    current = np.eye(2)[ACTIONS]  # the logged actions: terms 1 + 0, 1 + 4, 2 + 2, 3 + 1
    grid = [
        a.reshape(2, 2, *a.shape[1:]) for a in (REWARDS, PROPENSITIES, ACTIONS, TARGET, current, PREDICTED)
    ]
    gate = doubly_robust_difference(*grid, rng=rng())
    # Per decision 0, -2, -2, 0.5; user 0 holds decisions 0 and 2 (-1), user 1 decisions 1 and 3 (-0.75).
    assert gate.mean == pytest.approx(-0.875)
    both = [
        doubly_robust(REWARDS, PROPENSITIES, ACTIONS, pi, PREDICTED, rng=rng()).value
        for pi in (TARGET, current)
    ]
    assert gate.mean == pytest.approx(both[0] - both[1])
    assert gate.low <= gate.mean <= gate.high
    with pytest.raises(ConfigError, match="periods, users"):
        doubly_robust_difference(REWARDS, PROPENSITIES, ACTIONS, TARGET, current, PREDICTED, rng=rng())


def test_the_logging_policy_itself_is_estimated_at_its_mean_reward() -> None:
    assert ips(REWARDS, PROPENSITIES, PROPENSITIES, rng=rng()).value == pytest.approx(REWARDS.mean())
    assert snips(REWARDS, PROPENSITIES, PROPENSITIES, rng=rng()).ess == pytest.approx(4.0)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(200, 2000))
def test_estimates_converge_to_the_truth_on_a_bandit(seed: int, n: int) -> None:
    """A logging policy uniform over three actions, a deterministic candidate: IPS and DR (with a
    perfect reward model) land within a few standard errors of the candidate's true value."""
    generator = np.random.default_rng(seed)
    means = np.array([1.0, 2.0, 3.0])
    actions = generator.integers(0, 3, n)
    rewards = means[actions] + generator.normal(0.0, 1.0, n)
    propensities = np.full(n, 1 / 3)
    candidate = np.tile([0.0, 0.0, 1.0], (n, 1))
    exact = doubly_robust(rewards, propensities, actions, candidate, np.tile(means, (n, 1)), rng=rng())
    assert exact.value == pytest.approx(3.0, abs=6 / np.sqrt(n))
    plain = ips(rewards, propensities, candidate[np.arange(n), actions], rng=rng())
    assert plain.value == pytest.approx(3.0, abs=15 / np.sqrt(n))


def test_degenerate_weights_are_flagged() -> None:
    n = 10_000
    propensities = np.full(n, 0.5)
    target = np.zeros(n)
    target[:5] = 1.0  # the candidate agrees with the log on 5 decisions of 10,000
    estimate = ips(np.ones(n), propensities, target, rng=rng())
    assert estimate.ess == pytest.approx(5.0) and not estimate.trusted
    assert ips(np.ones(n), propensities, propensities, rng=rng()).trusted
    assert MIN_ESS_SHARE * n > 5


@pytest.mark.parametrize(
    ("propensities", "target", "match"),
    [
        (np.array([0.0, 0.5]), np.array([1.0, 0.0]), r"propensities must be in \(0, 1\]"),
        (np.array([0.5, 0.5]), np.array([1.5, 0.0]), r"target probabilities must be in \[0, 1\]"),
        (np.array([0.5]), np.array([1.0, 0.0]), "expected"),
    ],
)
def test_bad_logs_are_refused(propensities: np.ndarray, target: np.ndarray, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ips(np.ones(len(propensities)), propensities, target, rng=rng())


# Two users over two periods: weights 2, 1 and 1, 1; cumulative 2, 2 and 1, 1.
TRAJECTORIES = Trajectories(
    rewards=np.array([[1.0, 2.0], [3.0, 4.0]]),
    propensities=np.array([[0.5, 0.5], [0.5, 1.0]]),
    target=np.array([[1.0, 0.5], [0.5, 1.0]]),
    predicted=np.array([[1.0, 1.0], [2.0, 2.0]]),
    state_values=np.array([[1.5, 1.0], [2.0, 3.0]]),
)


def test_per_decision_weighted_is_by_hand() -> None:
    # Each period's normalised weights are 2/3, 1/3: period 0 gives 5/3, period 1 gives 8/3.
    estimate = per_decision_weighted_is(TRAJECTORIES, rng=rng())
    assert estimate.value == pytest.approx(13 / 3)
    assert per_decision_weighted_is(TRAJECTORIES, gamma=0.5, rng=rng()).value == pytest.approx(5 / 3 + 4 / 3)
    assert estimate.ess == pytest.approx(9 / 5) and estimate.max_weight == 2.0
    assert estimate.low <= estimate.value <= estimate.high


def test_weighted_doubly_robust_by_hand() -> None:
    # Period 0: 0.75 + 4/3 (the previous weights 1/2 each); period 1: 4/3 + 5/3.
    assert weighted_doubly_robust(TRAJECTORIES, rng=rng()).value == pytest.approx(0.75 + 4 / 3 + 3.0)
    with pytest.raises(ConfigError, match="needs the model"):
        weighted_doubly_robust(
            Trajectories(TRAJECTORIES.rewards, TRAJECTORIES.propensities, TRAJECTORIES.target), rng=rng()
        )


def test_on_policy_trajectories_are_estimated_at_their_mean_return() -> None:
    log = Trajectories(TRAJECTORIES.rewards, TRAJECTORIES.propensities, TRAJECTORIES.propensities)
    assert per_decision_weighted_is(log, rng=rng()).value == pytest.approx(
        TRAJECTORIES.rewards.sum(axis=1).mean()
    )
