"""Keeping each user's state from raw period activity with ``state_update.onnx``, and the features it gives.

A user's stored state is the decay model's (LSTM hidden and cell, the period about to be lived, birth,
last purchase, purchases so far) plus the spend since birth. A user born in period ``b`` starts, before
their birth period is fed, with zero hidden and cell, ``period = first_period = last_purchase = b``
and no purchases or spend. Each period that ends is fed with its event counts (the decay model's
event types, purchases last), spend and contacts received (the model's intervention kinds); the
state then stands at the next period, with that period's interest.

The features the state determines (:data:`DERIVED_FEATURES`) follow; the contact-side ones (fatigue,
opt-out, coupon validity, periods since each contact) are the platform's own records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from winback.export.runtime.session import STATE_INPUTS, STATE_OUTPUTS, inference_session

DERIVED_FEATURES = ("interest", "log_recency", "log_frequency", "log_monetary", "log_tenure", "new_user")
"""Observation features computed from the stored state and its interest; the others are given."""


@dataclass
class UserStates:
    """Stored state of ``n`` users (module docstring)."""

    hidden: np.ndarray
    """(n, H) float32 LSTM hidden state."""
    cell: np.ndarray
    """(n, H) float32 LSTM cell state."""
    period: np.ndarray
    """(n,) int64 period the user is about to live."""
    first_period: np.ndarray
    """(n,) int64 birth period."""
    last_purchase: np.ndarray
    """(n,) int64 period of the last purchase (birth if none)."""
    frequency: np.ndarray
    """(n,) float64 purchases since birth."""
    spend_total: np.ndarray
    """(n,) float64 spend since birth."""

    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per user."""
        columns = {f.name: getattr(self, f.name).tolist() for f in fields(self)}
        return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


class StateUpdate:
    """``state_update.onnx`` in onnxruntime."""

    def __init__(self, model: bytes) -> None:
        self.session = inference_session(model)

    def step(
        self, states: UserStates, counts: np.ndarray, spend: np.ndarray, contacts: np.ndarray
    ) -> tuple[UserStates, np.ndarray]:
        """The states after one period of activity ((n, E) counts, (n,) spend, (n, C) contacts) and the
        (n,) float32 interest of the period that follows."""
        feeds = {
            "hidden": np.asarray(states.hidden, dtype=np.float32),
            "cell": np.asarray(states.cell, dtype=np.float32),
            "period": np.asarray(states.period, dtype=np.int64),
            "first_period": np.asarray(states.first_period, dtype=np.int64),
            "last_purchase": np.asarray(states.last_purchase, dtype=np.int64),
            "frequency": np.asarray(states.frequency, dtype=np.float64),
            "counts": np.asarray(counts, dtype=np.int64),
            "spend": np.asarray(spend, dtype=np.float64),
            "contacts": np.asarray(contacts, dtype=np.int64),
        }
        out = dict(
            zip(STATE_OUTPUTS, self.session.run(None, {k: feeds[k] for k in STATE_INPUTS}), strict=True)
        )
        following = UserStates(
            hidden=out["next_hidden"],
            cell=out["next_cell"],
            period=out["next_period"],
            first_period=feeds["first_period"],
            last_purchase=out["next_last_purchase"],
            frequency=out["next_frequency"],
            spend_total=np.asarray(states.spend_total, dtype=np.float64) + feeds["spend"],
        )
        return following, out["interest"]


def derived_features(
    states: UserStates, interest: np.ndarray, new_user_periods: int
) -> dict[str, np.ndarray]:
    """Each of :data:`DERIVED_FEATURES` ((n,) float32, unclipped) as the simulator computes it from
    the same state (``winback.simulator.features``)."""
    tenure = states.period - states.first_period
    return {
        "interest": np.asarray(interest, dtype=np.float32),
        "log_recency": np.log1p(states.period - states.last_purchase).astype(np.float32),
        "log_frequency": np.log1p(states.frequency).astype(np.float32),
        "log_monetary": np.log1p(states.spend_total / np.maximum(states.frequency, 1)).astype(np.float32),
        "log_tenure": np.log1p(tenure).astype(np.float32),
        "new_user": (tenure < new_user_periods).astype(np.float32),
    }
