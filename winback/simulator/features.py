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

import numpy as np

from winback.simulator.core import SINCE_CAP, Simulator
from winback.simulator.state import SimState

LOG_MAX = 10.0
FATIGUE_MAX = 100.0


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


def feature_bounds(simulator: Simulator) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 arrays of the feature box."""
    names = feature_names(simulator)
    high = np.array(
        [LOG_MAX if n.startswith("log_") else FATIGUE_MAX if n == "fatigue" else 1.0 for n in names],
        dtype=np.float32,
    )
    return np.zeros(len(names), dtype=np.float32), high


def observe(simulator: Simulator, state: SimState) -> np.ndarray:
    """(n, F) float32 features of every user (see the module docstring)."""
    coupons = simulator.tables.validity > 0
    columns = [
        simulator.interest(state),
        np.log1p(state.recency),
        np.log1p(state.frequency),
        np.log1p(state.monetary),
        np.log1p(state.tenure),
        state.tenure < simulator.config.response.new_user_periods,
        state.fatigue,
        state.opted_out,
    ]
    features = np.column_stack(
        [*columns, state.valid_left[:, coupons] > 0, state.since_contact / SINCE_CAP]
    ).astype(np.float32)
    low, high = feature_bounds(simulator)
    return np.clip(features, low, high, out=features)
