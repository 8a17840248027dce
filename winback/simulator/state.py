"""The simulated population: per-user arrays, users on the first axis (RecSim's user state, batched)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winback.contact_records import SINCE_CAP
from winback.decay_model.base import BatchArrays, DecayState, Forecast

__all__ = ["SINCE_CAP", "SimState"]


@dataclass
class SimState(BatchArrays):
    """Everything the simulator knows about N users at the start of a period.

    ``take(slice)`` gives views, so a block of users can be stepped in place.
    """

    keys: np.ndarray
    """(n,) uint64 keys of each user's random stream (common random numbers across policies)."""
    decay: DecayState
    """The decay model's state (for the LSTM: hidden and cell states, recency and frequency)."""
    forecast: Forecast
    """The decay model's forecast of the coming period with no contact (the user's raw interest)."""
    birth: np.ndarray
    """(n,) int64 period of birth; tenure is ``period - birth``."""
    recency: np.ndarray
    """(n,) int64 periods since the last purchase (or birth) as of the coming period; 1 = last period."""
    frequency: np.ndarray
    """(n,) int64 purchases since birth."""
    spend_total: np.ndarray
    """(n,) float64 spend since birth, in the calibration data and simulated."""
    fatigue: np.ndarray
    """(n,) float64 contact fatigue (see :mod:`winback.simulator.response`)."""
    opted_out: np.ndarray
    """(n,) bool: the user accepts no more contacts."""
    lift: np.ndarray
    """(n, K) float64 log-odds lift still in force from past contacts of each kind (prior effects)."""
    valid_left: np.ndarray
    """(n, K) int64 periods each coupon-like contact stays valid (0: none valid)."""
    since_contact: np.ndarray
    """(n, K) int64 periods since the last contact of each kind (1 = last period), capped; the cap
    also stands for never."""

    @property
    def n_users(self) -> int:
        return len(self.keys)

    @property
    def period(self) -> np.ndarray:
        """(n,) the absolute period each user is about to live."""
        return self.decay.period

    @property
    def tenure(self) -> np.ndarray:
        """(n,) periods since birth."""
        return self.period - self.birth

    @property
    def monetary(self) -> np.ndarray:
        """(n,) mean spend per purchase (0 before the first purchase)."""
        return self.spend_total / np.maximum(self.frequency, 1)

    def copy(self) -> SimState:
        """An independent copy (``step`` changes a state in place)."""
        return self.take(np.arange(self.n_users))
