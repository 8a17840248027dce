"""The two interest heuristics growth teams use, fitted by maximum likelihood.

Both model the probability that a user is active (buys at least once) next period; how much an
active user buys comes from :class:`~winback.decay_model.marks.PurchaseMarks`. Neither reacts to
contacts. A user's birth counts as activity.

- :class:`ExponentialDecayModel`: ``I(r) = I0 * exp(-k (r - 1))`` where ``r`` is the number of
  periods since the last active period (``r = 1`` right after activity): interest resets on activity.
- :class:`RecurrenceDecayModel`: ``I_t = a I_{t-1} + b * active_t`` with ``I`` before birth 0,
  the recurrence of the seed documents (``a = 0.9, b = 0.1`` is their default and the starting
  point of the fit); ``b <= 1 - a`` keeps ``I`` a probability.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from winback.data.panel import PanelSpec, PeriodPanel
from winback.decay_model.base import (
    DecayModel,
    DecayState,
    Forecast,
    PeriodActivity,
    check_born,
    scale_expectations,
)
from winback.decay_model.marks import PurchaseMarks

_EPS = 1e-9


class ActiveProbabilityModel(DecayModel):
    """A model of ``P(active next period)``; purchase sizes come from fitted :class:`PurchaseMarks`."""

    marks: PurchaseMarks

    @abstractmethod
    def _p_active(self, state: DecayState) -> np.ndarray: ...

    def forecast(self, state: DecayState, contacts: np.ndarray | None = None) -> Forecast:
        self._require_fitted()
        p = np.clip(self._p_active(state), _EPS, 1 - _EPS)
        purchases = p * self.marks.mean_count_if_active
        return Forecast(
            p_active=p,
            expected_purchases=purchases,
            expected_spend=purchases * self.marks.mean_spend_per_purchase,
        )

    def _with_p_active(self, forecast: Forecast, p_active: np.ndarray) -> Forecast:
        return scale_expectations(forecast, p_active)

    def uniforms_per_user(self) -> int:
        return 3

    def sample(self, forecast: Forecast, uniforms: np.ndarray) -> PeriodActivity:
        spec = self._require_fitted()
        purchases = self.marks.sample_counts(forecast.p_active, uniforms[:, 0], uniforms[:, 1])
        counts = np.zeros((len(purchases), len(spec.event_types)), dtype=np.int64)
        counts[:, -1] = purchases
        return PeriodActivity(counts=counts, spend=self.marks.sample_spend(purchases, uniforms[:, 2]))

    def log_prob(self, forecast: Forecast, purchases: np.ndarray) -> np.ndarray:
        return self.marks.count_log_prob(forecast.p_active, purchases)


def _activity_matrix(panel: PeriodPanel, until: int) -> tuple[np.ndarray, np.ndarray]:
    """(active, alive): (n, until) booleans; birth counts as activity, ``alive`` from birth on."""
    periods = np.arange(until)
    born = periods[None, :] >= panel.first_period[:, None]
    birth = periods[None, :] == panel.first_period[:, None]
    active = ((panel.purchases[:, :until] > 0) | birth) & born
    return active, born


@dataclass
class ExponentialState(DecayState):
    last_active: np.ndarray
    """(n,) the last period with activity."""


class ExponentialDecayModel(ActiveProbabilityModel):
    """Interest ``I0 * exp(-k (r - 1))``, reset by activity (see the module docstring)."""

    name: ClassVar[str] = "exponential"

    def __init__(self, initial_interest: float = 0.5, decay_rate: float = 0.1) -> None:
        self.initial_interest = initial_interest
        self.decay_rate = decay_rate

    def fit(self, panel: PeriodPanel, *, until: int, seed: int = 0, progress: bool = False) -> Self:
        panel = panel.select(panel.born_before(until))
        active, born = _activity_matrix(panel, until)
        periods = np.arange(until)
        last = np.maximum.accumulate(np.where(active, periods[None, :], -1), axis=1)
        # Targets are periods after birth; their predictor is the gap since the previous activity.
        target = born[:, 1:] & (periods[None, 1:] > panel.first_period[:, None])
        gap = (periods[None, 1:] - last[:, :-1])[target].astype(np.float64)
        outcome = active[:, 1:][target]

        def negative_log_likelihood(theta: np.ndarray) -> float:
            p = np.clip(expit(theta[0]) * np.exp(-np.exp(theta[1]) * (gap - 1)), _EPS, 1 - _EPS)
            return -float(np.sum(np.where(outcome, np.log(p), np.log1p(-p))))

        start = np.array([logit(self.initial_interest), np.log(self.decay_rate)])
        result = minimize(negative_log_likelihood, start, method="Nelder-Mead", options={"xatol": 1e-6})
        self.initial_interest = float(expit(result.x[0]))
        self.decay_rate = float(np.exp(result.x[1]))
        self.marks = PurchaseMarks.fit(panel, until)
        self.spec = panel.spec
        return self

    def initial_state(self, panel: PeriodPanel, *, until: int | np.ndarray) -> ExponentialState:
        until_array = check_born(panel, until)
        active, _ = _activity_matrix(panel, int(until_array.max()))
        periods = np.arange(active.shape[1])
        seen = active & (periods[None, :] < until_array[:, None])
        return ExponentialState(period=until_array, last_active=np.where(seen, periods, -1).max(axis=1))

    def _p_active(self, state: ExponentialState) -> np.ndarray:
        gap = state.period - state.last_active
        return self.initial_interest * np.exp(-self.decay_rate * (gap - 1))

    def advance(
        self, state: ExponentialState, activity: PeriodActivity, contacts: np.ndarray | None = None
    ) -> ExponentialState:
        active = activity.purchases > 0
        return ExponentialState(
            period=state.period + 1, last_active=np.where(active, state.period, state.last_active)
        )

    def config(self) -> dict[str, Any]:
        return {
            "initial_interest": self.initial_interest,
            "decay_rate": self.decay_rate,
            "marks": self.marks.to_json(),
        }

    @classmethod
    def from_artifact(cls, config: dict[str, Any], tensors: dict[str, np.ndarray], spec: PanelSpec) -> Self:
        model = cls(config["initial_interest"], config["decay_rate"])
        model.marks = PurchaseMarks(**config["marks"])
        model.spec = spec
        return model


@dataclass
class RecurrenceState(DecayState):
    interest: np.ndarray


class RecurrenceDecayModel(ActiveProbabilityModel):
    """Interest ``I_t = a I_{t-1} + b active_t`` (see the module docstring)."""

    name: ClassVar[str] = "recurrence"

    def __init__(self, a: float = 0.9, b: float = 0.1) -> None:
        self.a = a
        self.b = b

    def fit(self, panel: PeriodPanel, *, until: int, seed: int = 0, progress: bool = False) -> Self:
        panel = panel.select(panel.born_before(until))
        active, born = _activity_matrix(panel, until)
        after_birth = born & (np.arange(until)[None, :] > panel.first_period[:, None])

        def negative_log_likelihood(theta: np.ndarray) -> float:
            a = expit(theta[0])
            b = expit(theta[1]) * (1 - a)
            interest = np.zeros(panel.n_users)
            total = 0.0
            for t in range(until):
                p = np.clip(interest, _EPS, 1 - _EPS)
                log_lik = np.where(active[:, t], np.log(p), np.log1p(-p))
                total += float(log_lik[after_birth[:, t]].sum())
                interest = np.where(born[:, t], a * interest + b * active[:, t], 0.0)
            return -total

        start = np.array([logit(self.a), logit(min(self.b / (1 - self.a), 1 - 1e-3))])
        result = minimize(negative_log_likelihood, start, method="Nelder-Mead", options={"xatol": 1e-6})
        self.a = float(expit(result.x[0]))
        self.b = float(expit(result.x[1]) * (1 - self.a))
        self.marks = PurchaseMarks.fit(panel, until)
        self.spec = panel.spec
        return self

    def initial_state(self, panel: PeriodPanel, *, until: int | np.ndarray) -> RecurrenceState:
        until_array = check_born(panel, until)
        active, born = _activity_matrix(panel, int(until_array.max()))
        interest = np.zeros(panel.n_users)
        for t in range(active.shape[1]):
            update = born[:, t] & (t < until_array)
            interest = np.where(update, self.a * interest + self.b * active[:, t], interest)
        return RecurrenceState(period=until_array, interest=interest)

    def _p_active(self, state: RecurrenceState) -> np.ndarray:
        return state.interest

    def advance(
        self, state: RecurrenceState, activity: PeriodActivity, contacts: np.ndarray | None = None
    ) -> RecurrenceState:
        return RecurrenceState(
            period=state.period + 1, interest=self.a * state.interest + self.b * (activity.purchases > 0)
        )

    def config(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "marks": self.marks.to_json()}

    @classmethod
    def from_artifact(cls, config: dict[str, Any], tensors: dict[str, np.ndarray], spec: PanelSpec) -> Self:
        model = cls(config["a"], config["b"])
        model.marks = PurchaseMarks(**config["marks"])
        model.spec = spec
        return model
