"""Bootstrap CIs over users: known answers, coverage, pairing, degenerate data, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from winback.benchmarks import stats as stats_module
from winback.benchmarks.stats import Estimate, mean_ci, paired_difference


def test_ci_of_normal_values_contains_the_mean_with_the_normal_width() -> None:
    rng = np.random.default_rng(1)
    sigma, users = 2.0, 2000
    values = np.broadcast_to(rng.normal(5.0, sigma, users), (3, users))  # one value per user, 3 seeds
    estimate = mean_ci(values, rng=np.random.default_rng(0))
    assert estimate.low < 5.0 < estimate.high
    assert estimate.low < estimate.mean < estimate.high
    assert estimate.high - estimate.low == pytest.approx(2 * 1.96 * sigma / np.sqrt(users), rel=0.15)


def test_ci_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(4)  # over seeds 0-7 coverage is 0.90-0.955 (BCa, 30 users): about 0.93
    covered = [
        (e := mean_ci(rng.normal(0.0, 1.0, (2, 30)), rng=rng, n_resamples=400)).low < 0.0 < e.high
        for _ in range(200)
    ]
    assert 0.90 <= np.mean(covered) <= 0.99


def test_paired_difference_of_a_shifted_copy_is_exact() -> None:
    a = np.random.default_rng(3).integers(0, 100, (4, 50)).astype(np.float64)
    assert paired_difference(a + 1, a, rng=np.random.default_rng(0)) == Estimate(1.0, 1.0, 1.0)


def test_pairing_removes_the_shared_user_effect() -> None:
    rng = np.random.default_rng(4)
    user_effect = rng.normal(0.0, 20.0, 300)  # users differ a lot ...
    a = user_effect + rng.normal(0.5, 1.0, (3, 300))  # ... and a is better than b by 0.5
    b = user_effect + rng.normal(0.0, 1.0, (3, 300))
    paired = paired_difference(a, b, rng=np.random.default_rng(0))
    ci_a, ci_b = mean_ci(a, rng=np.random.default_rng(0)), mean_ci(b, rng=np.random.default_rng(1))
    unpaired_width = np.hypot(ci_a.high - ci_a.low, ci_b.high - ci_b.low)
    assert paired.low < 0.5 < paired.high
    assert paired.low > 0
    assert paired.high - paired.low < unpaired_width / 10


def test_paired_difference_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same"):
        paired_difference(np.zeros((2, 5)), np.zeros((2, 6)), rng=np.random.default_rng(0))


def test_constant_and_nearly_constant_data_do_not_crash() -> None:
    assert mean_ci(np.full((3, 40), 7.5), rng=np.random.default_rng(0)) == Estimate(7.5, 7.5, 7.5)
    rare = np.zeros((2, 40))
    rare[:, 0] = 1.0
    estimate = mean_ci(rare, rng=np.random.default_rng(0))
    assert estimate.low <= estimate.mean <= estimate.high
    assert estimate.to_dict() == {"mean": estimate.mean, "low": estimate.low, "high": estimate.high}


@pytest.mark.parametrize("shape", [(10,), (3, 1)])
def test_mean_ci_needs_seeds_by_users(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="users"):
        mean_ci(np.zeros(shape), rng=np.random.default_rng(0))


def test_same_rng_seed_gives_the_same_ci() -> None:
    values = np.random.default_rng(5).exponential(3.0, (2, 100))
    first = mean_ci(values, rng=np.random.default_rng(7))
    assert mean_ci(values, rng=np.random.default_rng(7)) == first
    assert mean_ci(values, rng=np.random.default_rng(8)) != first


def test_many_users_get_students_t_interval_that_agrees_with_the_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = np.random.default_rng(3).gamma(0.3, 10.0, (2, 4000))
    bootstrap = mean_ci(values, rng=np.random.default_rng(0))
    normal = mean_ci(values, rng=np.random.default_rng(0), bootstrap_max_users=1000)  # 4,000 users: t
    monkeypatch.setattr(stats_module, "BOOTSTRAP_MAX_USERS", 1000)  # the module's default follows
    assert mean_ci(values, rng=np.random.default_rng(0)) == normal
    assert normal.mean == bootstrap.mean
    width = bootstrap.high - bootstrap.low
    assert abs(normal.low - bootstrap.low) < 0.05 * width
    assert abs(normal.high - bootstrap.high) < 0.05 * width
    assert mean_ci(np.full((1, 2000), 2.0), rng=np.random.default_rng(0)) == Estimate(2.0, 2.0, 2.0)
