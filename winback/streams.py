"""Common random numbers: uniforms that depend only on (seed, user, period, slot).

Paired comparisons of policies need every simulated user to meet the same luck under every
policy: the same draw decides whether the user would have bought anyway, whatever else happened
in the batch. Per-user ``numpy.random.Generator`` objects give that but cost a Python call per
user per step. Here every uniform is a keyed hash of its coordinates instead (a counter-based
generator in the manner of Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"),
computed for a whole batch in a few vectorised integer operations, and unchanged by which other
users share the batch or in which order they come.

The mixer is the SplitMix64 finaliser (Steele, Lea & Flood 2014), a bijection on 64-bit words with
full avalanche, applied in a chain over (seed, user key, period, slot). Written here because no
library in the stack offers a vectorised keyed generator (numpy's Philox is one stream per object).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_MAX_SLOTS = 1 << 16
"""Slots per user and period (distinct uses of randomness within one step)."""


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of a uint64 array (wrapping arithmetic), into a new array."""
    z = z + _GOLDEN
    z ^= z >> np.uint64(30)
    z *= _MIX_1
    z ^= z >> np.uint64(27)
    z *= _MIX_2
    z ^= z >> np.uint64(31)
    return z


def user_keys(user_ids: Iterable[str]) -> np.ndarray:
    """Stable 64-bit keys of user ids (BLAKE2b of the UTF-8 id), the same on every machine and run."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little")
            for u in user_ids
        ),
        dtype=np.uint64,
    )


def key_positions(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m,) the position in ``keys`` (n,) of each of ``wanted`` (m,), and (m,) whether it is there (a
    missing key's position is arbitrary)."""
    order = np.argsort(keys)
    positions = order[np.minimum(np.searchsorted(keys, wanted, sorter=order), len(order) - 1)]
    return positions, keys[positions] == wanted


def draw_keys(keys: np.ndarray, draws: int) -> np.ndarray:
    """Keys of ``draws`` independent copies of each user, user-major (user 0 draw 0, user 0 draw 1, ...)."""
    with np.errstate(over="ignore"):
        return _mix(
            np.asarray(keys, dtype=np.uint64)[:, None] ^ _mix(np.arange(draws, dtype=np.uint64))
        ).ravel()


class RandomStreams:
    """Uniforms in (0, 1) addressed by (user key, period, slot) under one seed."""

    def __init__(self, seed: int) -> None:
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        self.seed = seed
        self._seed_word = _mix(np.array([seed], dtype=np.uint64))

    @property
    def seed_word(self) -> np.uint64:
        """The mixed seed every key is combined with first (for compiled re-implementations)."""
        return self._seed_word[0]

    def uniforms(self, keys: np.ndarray, period: int | np.ndarray, n_slots: int) -> np.ndarray:
        """(n, n_slots) uniforms for users ``keys`` (uint64) in ``period`` (common or per user)."""
        if not 0 < n_slots <= _MAX_SLOTS:
            raise ValueError(f"n_slots must be in [1, {_MAX_SLOTS}], got {n_slots}")
        keys = np.asarray(keys, dtype=np.uint64)
        periods = np.broadcast_to(np.asarray(period, dtype=np.int64), keys.shape).astype(np.uint64)
        with np.errstate(over="ignore"):
            user_word = _mix(self._seed_word ^ keys)
            step_word = _mix(user_word ^ _mix(periods))
            bits = _mix(step_word[:, None] ^ np.arange(n_slots, dtype=np.uint64)[None, :])
        bits >>= np.uint64(11)
        out = bits.astype(np.float64)
        out += 0.5
        out *= 1.0 / float(1 << 53)
        return out
