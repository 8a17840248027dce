"""One period of the LSTM decay model, defined once: its inputs, and how its head's output is read.

Every path that runs the model reads this module: fitting (numpy over whole sequences, then torch's
``nn.LSTM``), the numpy kernel of :meth:`LSTMDecayModel.advance` / ``forecast`` (the simulator's
composed step), the compiled simulator step (:mod:`winback.simulator.fused`, numba, one user at a
time) and the exported state-update graph (:mod:`winback.export.graphs`, torch traced to ONNX).

The inputs of a period that has happened, in order (a column is present when its setting is on):

==================  =====  ===========================================================  =====================
column              width  value                                                        setting
==================  =====  ===========================================================  =====================
``log_counts``      E      ``log1p`` of each event type's count (purchases last)         always
``log_spend``       1      ``log1p`` of the spend                                        always
``log_contacts``    C      ``log1p`` of the contacts of each kind received               always
``log_tenure``      1      ``log1p(period - first_period)``                              ``tenure``
``calendar``        2      sine and cosine of the day of year at the period's middle    ``calendar``
``birth``           1      1 in the birth period, else 0                                 always
``log_recency``     1      ``log1p(period - last_purchase)``, the period's purchases in  ``recency_frequency``
``log_frequency``   1      ``log1p`` of the purchases so far, the period's included      ``recency_frequency``
``bgnbd``           2      P(alive) and ``log E[rate | alive]`` of the BG/NBD prior      ``bgnbd``
==================  =====  ===========================================================  =====================

The head that forecasts period ``t + 1`` from the state after ``t`` also reads what is known in
advance of ``t + 1``: ``log_contacts`` (the contacts sent in it), ``log_tenure`` and ``calendar``, the
middle block above (:func:`write_known_ahead`).

The formulas are written once, in numpy's vocabulary, and run three ways: numpy evaluates them on
arrays (a column at a time), numba compiles them for one user (``register_jitable``), and
:func:`torch_formulas` re-binds ``np`` to torch so that the exported graph traces the very same
code. Every value is computed in float64 and stored where it is written (float32 arrays).
A writer stores column ``j`` as ``out[j]``: a row of one user in numba, an array of columns (a
transposed view) in numpy, a :class:`ColumnSink` in torch. To add an input, add its column to
:func:`write_step_inputs` (and the table above); every path follows.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any, NamedTuple

import numpy as np
import torch
from numba.extending import overload, register_jitable

# How the head's raw output (3 E + 2 values per user) is read: per event type the logit of
# P(count > 0), log mu and log theta of the count's negative binomial; the spend's log-normal.
LOG_MU_RANGE = (-8.0, 6.0)
LOG_THETA_RANGE = (-4.0, 6.0)
SPEND_MEAN_OFFSET = 3.0
"""Added to the raw spend mean, so an untrained head starts near a typical log spend (~$20)."""
SPEND_LOG_SD_RANGE = (-4.0, 2.0)
_EXP_MAX = 700.0
"""Exponents are capped here (``exp(700)`` is finite in float64; its reciprocal is 0 in float32)."""


Values = Any
"""What a formula takes and gives: a number (numba, one user), a numpy array or a torch tensor."""
Columns = Any
"""Where a writer stores column ``j`` as ``out[j]`` (module docstring)."""


class InputLayout(NamedTuple):
    """Which inputs a fitted model reads and the constants their formulas need (numba-friendly)."""

    n_event_types: int
    n_contact_kinds: int
    tenure: bool
    calendar: bool
    recency_frequency: bool
    bgnbd: bool
    origin_day: float
    """Day of year (0-based) of the panel's origin, for the calendar."""
    period_days: float
    prior_r: float
    """BG/NBD parameters of the prior (0 when ``bgnbd`` is off)."""
    prior_alpha: float
    prior_a: float
    prior_b: float

    @property
    def n_step(self) -> int:
        """Inputs of a period that has happened."""
        return _widths(self)[0]

    @property
    def n_known_ahead(self) -> int:
        """Inputs known before a period happens (read by the head)."""
        return _widths(self)[1]


@functools.cache
def _widths(layout: InputLayout) -> tuple[int, int]:
    """The columns the writers write for ``layout``: (step inputs, known-ahead inputs)."""
    counts, contacts = np.zeros(layout.n_event_types), np.zeros(layout.n_contact_kinds)
    n_step = write_step_inputs(_ColumnCounter(), layout, 0, 0, counts, 0.0, contacts, 0, 0.0)
    return n_step, write_known_ahead(_ColumnCounter(), 0, layout, 0, 0, contacts)


class _ColumnCounter:
    def __setitem__(self, column: int, value: object) -> None:
        pass


# ------------------------------------------------------------------------------------- formulas
def select(condition: Values, if_true: Values, if_false: Values) -> Values:
    """``np.where``; for one user in compiled code a plain conditional, which allocates no array."""
    return np.where(condition, if_true, if_false)


@overload(select, inline="always")
def _select_one(condition, if_true, if_false):  # type: ignore[no-untyped-def]  # numba: same signature as the lambda
    return lambda condition, if_true, if_false: if_true if condition else if_false


@register_jitable(inline="always")
def log1p_amount(amount: Values) -> Values:
    """``log1p`` of a count or an amount of money."""
    return np.log1p(np.float64(amount))


@register_jitable(inline="always")
def log1p_periods(periods: Values) -> Values:
    """``log1p`` of a number of periods, negative ones taken as 0."""
    return np.log1p(np.maximum(np.float64(periods), 0.0))


@register_jitable(inline="always")
def calendar_phase(period: Values, origin_day: float, period_days: float) -> Values:
    """The day of year at the middle of ``period`` as an angle (a year of 365.25 days is 2 pi)."""
    return 2.0 * np.pi * (origin_day + (np.float64(period) * period_days + period_days / 2.0)) / 365.25


@register_jitable(inline="always")
def bgnbd_p_alive(x: Values, t_x: Values, T: Values, r: float, alpha: float, a: float, b: float) -> Values:
    """P(alive at T | x, t_x, T) of BG/NBD: ``1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) /
    (alpha + t_x))^(r + x))``, the factor of Fader, Hardie & Lee (2005) eq. (10)."""
    log_odds = (
        math.log(a)
        - np.log(b + np.maximum(x, 1.0) - 1.0)
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return select(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_odds, _EXP_MAX))), 1.0)


@register_jitable(inline="always")
def bgnbd_log_rate(x: Values, T: Values, r: float, alpha: float) -> Values:
    """log E[purchase rate | alive, x, T] of BG/NBD: the posterior mean of ``Gamma(r + x, alpha + T)``."""
    return np.log(r + x) - np.log(alpha + T)


# -------------------------------------------------------------------------------------- writers
@register_jitable
def write_known_ahead(
    out: Columns, start: int, layout: InputLayout, period: Values, first: Values, contacts: Values
) -> int:
    """Writes the inputs known before ``period`` happens from column ``start``; returns the next column.

    ``contacts`` is indexed by kind first (``contacts[k]``).
    """
    j = start
    for k in range(layout.n_contact_kinds):
        out[j] = log1p_amount(contacts[k])
        j += 1
    if layout.tenure:
        out[j] = log1p_periods(period - first)
        j += 1
    if layout.calendar:
        phase = calendar_phase(period, layout.origin_day, layout.period_days)
        out[j] = np.sin(phase)
        out[j + 1] = np.cos(phase)
        j += 2
    return j


@register_jitable(inline="always")
def write_step_inputs(
    out: Columns,
    layout: InputLayout,
    period: Values,
    first: Values,
    counts: Values,
    spend: Values,
    contacts: Values,
    last_purchase: Values,
    frequency: Values,
) -> int:
    """Writes the inputs of ``period``, which has happened (module docstring); returns their number.

    ``counts`` and ``contacts`` are indexed by type first; ``last_purchase`` and ``frequency`` already
    include the period's purchases. Purchases are placed mid-period for BG/NBD and birth stands in
    for the first purchase (exact when, as in CDNOW, users are born with a purchase): ``x =
    frequency - 1``, ``t_x = last_purchase - first`` and ``T = period + 0.5 - first``, in periods.
    """
    j = 0
    for e in range(layout.n_event_types):
        out[j] = log1p_amount(counts[e])
        j += 1
    out[j] = log1p_amount(spend)
    j = write_known_ahead(out, j + 1, layout, period, first, contacts)
    out[j] = np.float64(period == first)
    j += 1
    if layout.recency_frequency:
        out[j] = log1p_periods(period - last_purchase)
        out[j + 1] = log1p_amount(frequency)
        j += 2
    if layout.bgnbd:
        x = np.maximum(np.float64(frequency) - 1.0, 0.0)
        t_x = np.float64(last_purchase - first)
        T = np.float64(period - first) + 0.5
        r, alpha = layout.prior_r, layout.prior_alpha
        out[j] = bgnbd_p_alive(x, t_x, T, r, alpha, layout.prior_a, layout.prior_b)
        out[j + 1] = bgnbd_log_rate(x, T, r, alpha)
        j += 2
    return j


_FORMULAS = (
    "select",
    "log1p_amount",
    "log1p_periods",
    "calendar_phase",
    "bgnbd_p_alive",
    "bgnbd_log_rate",
    "write_known_ahead",
    "write_step_inputs",
)


class ColumnSink:
    """The ``out`` of a writer in torch: collects the columns, :meth:`stack` gives (n, columns) float32."""

    def __init__(self) -> None:
        self.columns: dict[int, torch.Tensor] = {}

    def __setitem__(self, column: int, value: torch.Tensor) -> None:
        self.columns[column] = value

    def stack(self) -> torch.Tensor:
        return torch.stack([self.columns[j] for j in range(len(self.columns))], dim=-1).float()


def torch_formulas() -> types.SimpleNamespace:
    """This module's formulas and writers with torch standing in for numpy (for traced graphs).

    The functions' code is the code above; only the name ``np`` resolves to :class:`_TorchAsNumpy`,
    which offers the few numpy functions the formulas use, on tensors.
    """
    namespace = {**globals(), "np": _TorchAsNumpy}
    for name in _FORMULAS:
        function = globals()[name]
        namespace[name] = types.FunctionType(function.__code__, namespace, name, function.__defaults__)
    return types.SimpleNamespace(**{name: namespace[name] for name in _FORMULAS})


class _TorchAsNumpy:
    """The numpy functions the formulas use, on torch tensors (float64 where numpy computes float64)."""

    pi = math.pi
    log1p = staticmethod(torch.log1p)
    log = staticmethod(torch.log)
    exp = staticmethod(torch.exp)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    where = staticmethod(torch.where)

    @staticmethod
    def float64(x: torch.Tensor) -> torch.Tensor:
        return x.double()

    @staticmethod
    def maximum(x: torch.Tensor, floor: float) -> torch.Tensor:
        return x.clamp(min=floor)

    @staticmethod
    def minimum(x: torch.Tensor, ceiling: float) -> torch.Tensor:
        return x.clamp(max=ceiling)
