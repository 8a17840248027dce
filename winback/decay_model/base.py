"""The interface every decay model implements, and the arrays that flow through it.

A decay model is a sequential, generative model of a user's per-period activity:

1. ``fit(panel, until=...)`` learns from every user's periods before ``until`` (calibration);
2. ``initial_state(panel, until=...)`` summarises each user's history into a state;
3. ``forecast(state, contacts)`` gives the next period's distribution (probability of being
   active, expected purchases and spend) given the contacts the user receives in that period;
4. ``sample(forecast, uniforms)`` draws the period's activity from it, by inverse transforms of
   ``uniforms_per_user()`` given uniforms per user: with uniforms from
   :class:`winback.streams.RandomStreams` a user's draw depends only on that user's
   coordinates (common random numbers across policies, independent of the batch);
5. ``advance(state, activity, contacts)`` folds what happened into the state.

Between 3 and 4, ``lift(forecast, logit_shift)`` raises the odds of buying: how the simulator
applies an intervention effect that the model did not learn (its response priors).

Rolling 3-5 forward is how forecasts are made and how the simulator runs users. A user's
*interest* is ``forecast(state).p_active``: the probability of at least one purchase next period
when nothing is sent. All arrays are batched over users (first axis); states are dataclasses of
such arrays, so they can be indexed, repeated and concatenated without knowing the model.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
from scipy.special import expit, logit

from winback.data.panel import PanelSpec, PeriodPanel


@dataclass
class BatchArrays:
    """A dataclass whose array fields (and nested ``BatchArrays``) share the user axis first.

    Supports ``take``, ``repeat`` and in-place ``assign`` of a block of rows, without knowing the fields.
    """

    def take(self, users: np.ndarray | slice) -> Self:
        """The rows ``users`` (index array, boolean mask, or a slice: views, not copies)."""
        return dataclasses.replace(
            self, **{name: _take(value, users) for name, value in self._arrays().items()}
        )

    def repeat(self, times: int) -> Self:
        """Each user repeated ``times`` times in a row (user 0 draw 0, user 0 draw 1, ...)."""
        return dataclasses.replace(
            self, **{name: _repeat(value, times) for name, value in self._arrays().items()}
        )

    def assign(self, rows: slice | np.ndarray, values: Self) -> None:
        """Overwrite the rows ``rows`` in place with ``values`` (same fields, ``len(rows)`` users)."""
        for name, value in self._arrays().items():
            if isinstance(value, BatchArrays):
                value.assign(rows, getattr(values, name))
            else:
                value[rows] = getattr(values, name)

    @classmethod
    def concatenate(cls, parts: Sequence[Self]) -> Self:
        """The users of ``parts`` one after another (same class and fields)."""
        first = parts[0]
        return dataclasses.replace(
            first,
            **{
                name: type(value).concatenate([getattr(p, name) for p in parts])
                if isinstance(value, BatchArrays)
                else np.concatenate([getattr(p, name) for p in parts])
                for name, value in first._arrays().items()
            },
        )

    def _arrays(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray | BatchArrays)
        }


def _take(value: np.ndarray | BatchArrays, users: np.ndarray | slice) -> np.ndarray | BatchArrays:
    return value.take(users) if isinstance(value, BatchArrays) else value[users]


def _repeat(value: np.ndarray | BatchArrays, times: int) -> np.ndarray | BatchArrays:
    return value.repeat(times) if isinstance(value, BatchArrays) else np.repeat(value, times, axis=0)


@dataclass
class DecayState(BatchArrays):
    """Base of every model state. ``period`` is the absolute period the next forecast is for."""

    period: np.ndarray


@dataclass
class PeriodActivity(BatchArrays):
    """What each user did in one period."""

    counts: np.ndarray
    """(n, E) events per type, in the panel spec's order (purchases last)."""
    spend: np.ndarray
    """(n,) sum of purchase values."""

    @property
    def purchases(self) -> np.ndarray:
        return self.counts[:, -1]

    @classmethod
    def from_panel(cls, panel: PeriodPanel, period: np.ndarray) -> PeriodActivity:
        """Each user's observed activity in ``period`` (an (n,) array of period indices)."""
        rows = np.arange(panel.n_users)
        return cls(
            counts=panel.counts[rows, period].astype(np.int64),
            spend=panel.spend[rows, period].astype(np.float64),
        )


@dataclass
class Forecast(BatchArrays):
    """A model's distribution of next period's activity for each user."""

    p_active: np.ndarray
    """(n,) probability of at least one purchase: the user's interest."""
    expected_purchases: np.ndarray
    """(n,) mean purchase count."""
    expected_spend: np.ndarray
    """(n,) mean spend."""
    params: dict[str, np.ndarray] = field(default_factory=dict)
    """Model-specific distribution parameters, (n, ...) arrays, used by ``sample`` and ``log_prob``."""

    def take(self, users: np.ndarray | slice) -> Self:
        taken = super().take(users)
        taken.params = {k: v[users] for k, v in self.params.items()}
        return taken

    def repeat(self, times: int) -> Self:
        repeated = super().repeat(times)
        repeated.params = {k: np.repeat(v, times, axis=0) for k, v in self.params.items()}
        return repeated

    def assign(self, rows: slice | np.ndarray, values: Self) -> None:
        super().assign(rows, values)
        for k, v in self.params.items():
            v[rows] = values.params[k]

    @classmethod
    def concatenate(cls, parts: Sequence[Self]) -> Self:
        joined = super().concatenate(parts)
        joined.params = {k: np.concatenate([p.params[k] for p in parts]) for k in parts[0].params}
        return joined


_P_FLOOR = 1e-9
"""Probabilities are kept this far from 0 and 1 before taking log-odds."""


def scale_expectations(forecast: Forecast, p_active: np.ndarray, **params: np.ndarray) -> Forecast:
    """A forecast with ``p_active`` and the expectations scaled by the change of P(any purchase)."""
    ratio = p_active / np.maximum(forecast.p_active, _P_FLOOR)
    return Forecast(
        p_active=p_active,
        expected_purchases=forecast.expected_purchases * ratio,
        expected_spend=forecast.expected_spend * ratio,
        params={**forecast.params, **params},
    )


def no_contacts(n_users: int, spec: PanelSpec) -> np.ndarray:
    """(n, C) zero contact counts."""
    return np.zeros((n_users, len(spec.interventions)), dtype=np.int64)


class DecayModel(ABC):
    """A sequential generative model of per-period user activity (see the module docstring).

    Subclasses set ``name`` and implement the abstract methods; ``uses_contacts`` says whether
    the contacts passed to ``forecast`` change the forecast (baselines ignore them).
    """

    name: ClassVar[str]
    uses_contacts: ClassVar[bool] = False
    spec: PanelSpec | None = None
    """The layout of the panel the model was fitted on; ``None`` before ``fit``."""

    @abstractmethod
    def fit(self, panel: PeriodPanel, *, until: int, seed: int = 0, progress: bool = False) -> Self:
        """Learn from every user's periods before ``until``; users born at or after it are ignored."""

    @abstractmethod
    def initial_state(self, panel: PeriodPanel, *, until: int | np.ndarray) -> DecayState:
        """Each user's state after their periods ``[first_period, until)``; every user must be born by then.

        ``until`` may differ per user (an (n,) array), e.g. ``first_period + 1`` to start from birth.
        """

    @abstractmethod
    def forecast(self, state: DecayState, contacts: np.ndarray | None = None) -> Forecast:
        """Next period's distribution given (n, C) contacts received in it (``None``: no contact)."""

    @abstractmethod
    def uniforms_per_user(self) -> int:
        """How many uniforms ``sample`` consumes per user and period."""

    @abstractmethod
    def sample(self, forecast: Forecast, uniforms: np.ndarray) -> PeriodActivity:
        """Draw one period's activity per user from ``forecast``, given (n, uniforms_per_user()) uniforms."""

    @abstractmethod
    def log_prob(self, forecast: Forecast, purchases: np.ndarray) -> np.ndarray:
        """(n,) log probability of the observed purchase counts under ``forecast``."""

    @abstractmethod
    def advance(
        self, state: DecayState, activity: PeriodActivity, contacts: np.ndarray | None = None
    ) -> DecayState:
        """The state after one period in which users did ``activity`` and received ``contacts``."""

    def lift(self, forecast: Forecast, logit_shift: np.ndarray) -> Forecast:
        """``forecast`` with the log-odds of any purchase raised by ``logit_shift`` (n,).

        Given a purchase, counts and spend keep their distribution. Sampling stays monotone in the
        purchase uniform, so under common random numbers a user who buys without a positive shift
        also buys with it: the shift only adds buyers. Users with a zero shift are left untouched.
        """
        p_active = np.clip(forecast.p_active, _P_FLOOR, 1.0 - _P_FLOOR)
        lifted = np.where(logit_shift == 0, forecast.p_active, expit(logit(p_active) + logit_shift))
        return self._with_p_active(forecast, lifted)

    @abstractmethod
    def _with_p_active(self, forecast: Forecast, p_active: np.ndarray) -> Forecast:
        """``forecast`` with P(any purchase) replaced by ``p_active``, the rest conditional on it kept."""

    def learned_contacts(self) -> tuple[str, ...]:
        """Contact kinds whose effect the model learned from its fitting data (none for the baselines)."""
        return ()

    def fit_notes(self) -> tuple[str, ...]:
        """Sentences a report should carry about how the fit was made (none for most models)."""
        return ()

    def interest(self, state: DecayState) -> np.ndarray:
        """(n,) probability of at least one purchase next period if nothing is sent."""
        return self.forecast(state).p_active

    # Serialisation: the artifact module writes these as JSON + safetensors.
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable hyperparameters and fitted scalars."""

    def tensors(self) -> dict[str, np.ndarray]:
        """Fitted arrays to store as safetensors (empty for models with scalar parameters only)."""
        return {}

    @classmethod
    @abstractmethod
    def from_artifact(cls, config: dict[str, Any], tensors: dict[str, np.ndarray], spec: PanelSpec) -> Self:
        """Rebuild a fitted model from what ``config`` and ``tensors`` returned."""

    def _require_fitted(self) -> PanelSpec:
        if self.spec is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load an artifact first")
        return self.spec


def check_born(panel: PeriodPanel, until: int | np.ndarray) -> np.ndarray:
    """``until`` as an (n,) int array, after checking every user is born before it."""
    until_array = np.broadcast_to(np.asarray(until, dtype=np.int64), (panel.n_users,)).copy()
    unborn = panel.first_period >= until_array
    if unborn.any():
        raise ValueError(
            f"{int(unborn.sum())} users are not born before the requested period "
            f"(first: {panel.user_ids[unborn][0]!r}); select born users with panel.born_before() first"
        )
    if (until_array > panel.spec.n_periods).any():
        raise ValueError(f"until exceeds the panel's {panel.spec.n_periods} periods")
    return until_array
