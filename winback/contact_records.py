"""What a platform records of the contacts each user received, period by period: fatigue, how long a
coupon stays valid, and the periods since the last contact of each kind.

The simulator keeps these records this way (its compiled step does the same arithmetic in one loop,
tested equal), and a batch job keeps them between its runs from the contacts it sent
(:mod:`winback.export.runtime`). numpy only, so deployable code may import it.

In a period, a delivered contact of kind ``k`` first takes effect (:func:`receive`): a coupon's
validity is renewed to ``validity[k]`` periods, fatigue grows by ``fatigue[k]``. At the period's end
(:func:`close_period`): every kind's periods-since counter advances (capped at :data:`SINCE_CAP`) and
the kind received restarts at 1, validity counts down, and fatigue decays by ``fatigue_decay``.
"""

from __future__ import annotations

import numpy as np

SINCE_CAP = 52
"""Periods-since-contact counters stop here: a year or more, or never."""


def receive(
    valid_left: np.ndarray,
    fatigue: np.ndarray,
    contacted: np.ndarray,
    kind: np.ndarray,
    validity: np.ndarray,
    fatigue_per_kind: np.ndarray,
) -> None:
    """The ``contacted`` users' contacts of ``kind`` (one each) take effect, in place: (n, K)
    ``valid_left`` renewed to the kind's ``validity`` (coupons), (n,) ``fatigue`` raised by its
    ``fatigue_per_kind``."""
    valid_left[contacted, kind] = np.maximum(valid_left[contacted, kind], validity[kind])
    fatigue[contacted] += fatigue_per_kind[kind]


def close_period(
    since_contact: np.ndarray,
    valid_left: np.ndarray,
    fatigue: np.ndarray,
    contacted: np.ndarray,
    kind: np.ndarray,
    fatigue_decay: float,
) -> None:
    """The period's end, in place: (n, K) ``since_contact`` advanced (capped at :data:`SINCE_CAP`)
    and 1 for the kind each ``contacted`` user received, (n, K) ``valid_left`` counted down, (n,)
    ``fatigue`` decayed."""
    np.minimum(since_contact + 1, SINCE_CAP, out=since_contact)
    since_contact[contacted, kind] = 1
    np.maximum(valid_left - 1, 0, out=valid_left)
    fatigue *= fatigue_decay
