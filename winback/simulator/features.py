"""What a policy sees of each user: a fixed-length float32 feature vector, the same in training and serving.

========================  =================================================  ===========
feature                   meaning                                            range
========================  =================================================  ===========
``interest``              P(purchase in the coming period) with no new       [0, 1]
                          contact: the decay model's forecast with the
                          lifts still in force
``log_recency``           ``log1p`` periods since the last purchase (birth)  [0, 10]
``log_frequency``         ``log1p`` purchases since birth                    [0, 10]
``log_monetary``          ``log1p`` mean spend per purchase                  [0, 10]
``log_tenure``            ``log1p`` periods since birth                      [0, 10]
``new_user``              1 while tenure < ``new_user_periods``              {0, 1}
``fatigue``               contact fatigue                                    [0, 100]
``opted_out``             1 once the user accepts no more contacts           {0, 1}
``<kind>_valid``          1 while a coupon-like contact of the kind is valid {0, 1}
                          (one per kind with a validity)
``since_<kind>``          periods since the last contact of the kind over    [0, 1]
                          the cap (52): 1 means a year or more, or never
========================  =================================================  ===========

Values beyond a range are clipped to it, so observations always lie in the declared box.
"""

from __future__ import annotations

import math
from functools import cache

import numba as nb
import numpy as np

from winback.simulator.core import Simulator
from winback.simulator.state import SINCE_CAP, SimState

LOG_MAX = 10.0
FATIGUE_MAX = 100.0
_P_FLOOR = 1e-9


def feature_names(simulator: Simulator) -> tuple[str, ...]:
    coupons = [k for k, v in simulator.config.response.contacts.items() if v.validity > 0]
    return (
        "interest",
        "log_recency",
        "log_frequency",
        "log_monetary",
        "log_tenure",
        "new_user",
        "fatigue",
        "opted_out",
        *(f"{k}_valid" for k in coupons),
        *(f"since_{k}" for k in simulator.kinds),
    )


@cache
def feature_bounds(simulator: Simulator) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 arrays of the feature box (shared: do not modify)."""
    names = feature_names(simulator)
    high = np.array(
        [LOG_MAX if n.startswith("log_") else FATIGUE_MAX if n == "fatigue" else 1.0 for n in names],
        dtype=np.float32,
    )
    return np.zeros(len(names), dtype=np.float32), high


def observe(simulator: Simulator, state: SimState) -> np.ndarray:
    """(n, F) float32 features of every user (see the module docstring)."""
    low, high = feature_bounds(simulator)
    out = np.empty((state.n_users, len(low)), dtype=np.float32)
    _features(
        state.forecast.p_active, state.lift, state.recency, state.frequency, state.spend_total,
        state.period, state.birth, state.fatigue, state.opted_out, state.valid_left, state.since_contact,
        simulator.is_coupon, simulator.config.response.new_user_periods, low, high, out,
    )  # fmt: skip
    return out


@nb.njit(cache=True)
def _features(
    p_active, lift, recency, frequency, spend_total, period, birth, fatigue, opted_out, valid_left,
    since_contact, is_coupon, new_user_periods, low, high, out,
):  # fmt: skip
    """Fills ``out`` (n, F); one compiled loop, since a single-user environment calls it every step."""
    n, n_kinds = lift.shape
    for i in range(n):
        p, shift = float(p_active[i]), 0.0
        for k in range(n_kinds):
            shift += lift[i, k]
        if shift != 0.0:  # as DecayModel.lift
            clipped = min(max(p, _P_FLOOR), 1.0 - _P_FLOOR)
            p = 1.0 / (1.0 + math.exp(-(math.log(clipped / (1.0 - clipped)) + shift)))
        tenure = period[i] - birth[i]
        row = (
            p,
            math.log1p(recency[i]),
            math.log1p(frequency[i]),
            math.log1p(spend_total[i] / max(frequency[i], 1)),
            math.log1p(tenure),
            1.0 if tenure < new_user_periods else 0.0,
            fatigue[i],
            1.0 if opted_out[i] else 0.0,
        )
        column = 0
        for value in row:
            out[i, column] = value
            column += 1
        for k in range(n_kinds):
            if is_coupon[k]:
                out[i, column] = 1.0 if valid_left[i, k] > 0 else 0.0
                column += 1
        for k in range(n_kinds):
            out[i, column] = since_contact[i, k] / SINCE_CAP
            column += 1
        for j in range(column):
            out[i, j] = min(max(out[i, j], low[j]), high[j])
