"""Means and paired differences of per-user benchmark metrics, with bootstrap confidence intervals.

A benchmark records a metric for every (seed, user) pair: an (S, U) array. The seeds of one user are
not independent draws — they share the user's type, history and interest — while distinct users are
(the population is a sample of users). So users are the resampling unit (a cluster bootstrap): each user
is averaged over seeds first, then the mean over users is bootstrapped. Resampling the S x U values as if
they were independent would understate the uncertainty of every comparison.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_ELEMENTS = 2**21
"""Resampled values held in memory at once (batches of resamples; also bounds BCa's jackknife)."""
BOOTSTRAP_MAX_USERS = 20_000
"""Above this many users the interval is Student's t on the users' means instead of the bootstrap:
BCa's jackknife is quadratic in users (1.2 s an interval at 20,000 users on this machine, 6.6 s at
50,000, hours at a million). At 20,000 users of a benchmark the two intervals' bounds differ by a few
percent of their width, less beyond (a mean's skewness falls as one over the root of the users):
benchmarks/RESULTS.md, "Benchmarks of a million users"."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with the bounds of its confidence interval."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """``{"mean": ..., "low": ..., "high": ...}`` as plain floats."""
        return asdict(self)


def mean_ci(
    values: np.ndarray,
    *,
    rng: np.random.Generator,
    level: float = 0.95,
    n_resamples: int = 2000,
    bootstrap_max_users: int | None = None,
) -> Estimate:
    """Mean of (S, U) per-seed-per-user ``values`` and its bootstrap CI over users.

    Each user is averaged over the S seeds (a user's seeds are correlated; users are the independent
    draws), then the mean over the U users is bootstrapped with BCa, or with percentiles where BCa is
    degenerate (e.g. constant data, where the interval has zero width); above
    ``bootstrap_max_users`` users (default :data:`BOOTSTRAP_MAX_USERS`), Student's t interval of the
    users' means.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (seeds, users), got shape {values.shape}")
    if values.shape[0] < 1 or values.shape[1] < 2:
        raise ValueError(f"need at least one seed and two users for a CI over users, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values contain NaN or infinity")
    per_user = values.mean(axis=0)
    if per_user.size > (BOOTSTRAP_MAX_USERS if bootstrap_max_users is None else bootstrap_max_users):
        mean, error = float(values.mean()), float(stats.sem(per_user))
        half = float(stats.t.ppf((1 + level) / 2, per_user.size - 1)) * error
        return Estimate(mean, mean - half, mean + half)
    options = {
        "n_resamples": n_resamples,
        "batch": max(1, BOOTSTRAP_ELEMENTS // per_user.size),
        "confidence_level": level,
        "rng": rng,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error", stats.DegenerateDataWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            interval = stats.bootstrap((per_user,), np.mean, method="BCa", **options).confidence_interval
        except (stats.DegenerateDataWarning, RuntimeWarning):
            interval = None
    if interval is None or not np.all(np.isfinite(interval)):
        interval = stats.bootstrap((per_user,), np.mean, method="percentile", **options).confidence_interval
    return Estimate(float(values.mean()), float(interval.low), float(interval.high))


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    rng: np.random.Generator,
    level: float = 0.95,
    n_resamples: int = 2000,
) -> Estimate:
    """Mean of ``a - b`` and its CI over users (:func:`mean_ci`), paired by seed and user.

    Under common random numbers a user meets the same luck in ``a`` and ``b``, so the user's own level
    cancels in the difference and the paired CI is far narrower than one from two separate means.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"paired values must have the same (seeds, users) shape, got {a.shape} and {b.shape}"
        )
    return mean_ci(a - b, rng=rng, level=level, n_resamples=n_resamples)
