"""Common random numbers: determinism, batch invariance, and the statistics of the uniforms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from winback.streams import RandomStreams, user_keys


def test_same_coordinates_same_numbers() -> None:
    keys = user_keys([f"u{i}" for i in range(1000)])
    first = RandomStreams(7).uniforms(keys, 3, 4)
    second = RandomStreams(7).uniforms(keys, 3, 4)
    np.testing.assert_array_equal(first, second)


def test_a_user_sees_the_same_luck_in_any_batch() -> None:
    keys = user_keys([f"u{i}" for i in range(500)])
    streams = RandomStreams(1)
    full = streams.uniforms(keys, 10, 3)
    order = np.random.default_rng(0).permutation(500)[:123]
    np.testing.assert_array_equal(streams.uniforms(keys[order], 10, 3), full[order])


def test_per_user_periods_match_common_period() -> None:
    keys = user_keys(["a", "b", "c"])
    streams = RandomStreams(2)
    mixed = streams.uniforms(keys, np.array([4, 5, 4]), 2)
    np.testing.assert_array_equal(mixed[[0, 2]], streams.uniforms(keys[[0, 2]], 4, 2))
    np.testing.assert_array_equal(mixed[1], streams.uniforms(keys[[1]], 5, 2)[0])


def test_seed_period_and_slot_each_change_the_numbers() -> None:
    keys = user_keys([f"u{i}" for i in range(2000)])
    base = RandomStreams(0).uniforms(keys, 0, 2)
    for other in (RandomStreams(1).uniforms(keys, 0, 2), RandomStreams(0).uniforms(keys, 1, 2)):
        assert abs(np.corrcoef(base[:, 0], other[:, 0])[0, 1]) < 0.1
        assert not np.any(base == other)
    assert abs(np.corrcoef(base[:, 0], base[:, 1])[0, 1]) < 0.1


def test_uniforms_are_uniform_and_inside_the_open_interval() -> None:
    keys = user_keys([f"user-{i}" for i in range(50_000)])
    u = RandomStreams(3).uniforms(keys, 12, 2)
    assert u.min() > 0 and u.max() < 1
    for column in u.T:
        assert stats.kstest(column, "uniform").pvalue > 1e-3
    # consecutive periods of one user are not correlated either
    later = RandomStreams(3).uniforms(keys, 13, 1)[:, 0]
    assert abs(stats.pearsonr(u[:, 0], later).statistic) < 0.02


def test_user_keys_are_stable_and_distinct() -> None:
    keys = user_keys(["00001", "00002", "00001"])
    assert keys[0] == keys[2] != keys[1]
    assert keys[0] == np.uint64(user_keys(["00001"])[0])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="seed"):
        RandomStreams(-1)
    with pytest.raises(ValueError, match="n_slots"):
        RandomStreams(0).uniforms(user_keys(["a"]), 0, 0)
