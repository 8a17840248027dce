"""Per-user period panels: the dense, memory-lean arrays every decay model learns from.

A panel cuts time into periods (weeks by default, or days) counted from an ``origin`` date and
holds, per user and period, the count of each event type, the spend, the interventions received,
and the day within the period of the last purchase (so recency is exact to the day, as the
BG/NBD literature measures it). Tenure and calendar features are derived on demand rather than
stored: at 1M users x 78 weeks the stored arrays take about 1.1 GB.

Users are born at their first row of any kind (``first_period``); periods before birth hold zeros
and are never read by the models.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from winback.data.schema import CONTACTS, EventLog
from winback.errors import DataError

Period = Literal["week", "day"]
PERIOD_DAYS: dict[str, int] = {"week": 7, "day": 1}
USER_ARRAYS: tuple[str, ...] = (
    "first_period",
    "first_day",
    "first_purchase_period",
    "first_purchase_day",
    "counts",
    "spend",
    "interventions",
    "last_purchase_day",
)
"""The :class:`PeriodPanel` arrays with one row per user, besides ``user_ids``."""


@dataclass(frozen=True)
class PanelSpec:
    """The layout of a panel; saved with every model so its inputs mean the same thing at load time."""

    period: Period
    origin: str
    """ISO date of the first day of period 0."""
    n_periods: int
    event_types: tuple[str, ...]
    """Event types counted, in order; the purchase event is last."""
    purchase_event: str
    interventions: tuple[str, ...] = CONTACTS
    """Contact kinds counted, in order (``none`` is not a contact)."""

    def __post_init__(self) -> None:
        if self.period not in PERIOD_DAYS:
            raise DataError(f"unknown period '{self.period}'", expected=f"one of {sorted(PERIOD_DAYS)}")
        if self.event_types[-1] != self.purchase_event:
            raise DataError("the purchase event must be the last event type", column="event_type")

    @property
    def period_days(self) -> int:
        return PERIOD_DAYS[self.period]

    @property
    def origin_date(self) -> dt.date:
        return dt.date.fromisoformat(self.origin)

    @property
    def purchase_index(self) -> int:
        return len(self.event_types) - 1

    def period_of(self, date: str | dt.date) -> int:
        """Index of the period that starts at ``date``; the date must fall on a period boundary."""
        day = (pd.Timestamp(date).date() - self.origin_date).days
        if day % self.period_days:
            raise DataError(
                f"date {date} is not on a period boundary",
                expected=f"a date {self.period_days} x k days after the origin {self.origin}",
            )
        return day // self.period_days

    def period_start(self, period: int) -> dt.date:
        return self.origin_date + dt.timedelta(days=int(period) * self.period_days)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PanelSpec:
        fields = dict(data)
        fields["event_types"] = tuple(fields["event_types"])
        fields["interventions"] = tuple(fields["interventions"])
        return cls(**fields)


@dataclass(frozen=True)
class RFMSummary:
    """Repeat-purchase summary at a cut-off, in periods: the inputs of BG/NBD and Pareto/NBD.

    ``x`` repeat purchases after the first, ``t_x`` time of the last purchase and ``T`` time of the
    cut-off's last day, both measured from the first purchase. Users without a purchase before the
    cut-off have ``x = t_x = 0`` and ``T`` measured from their first event.
    """

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray


@dataclass
class PeriodPanel:
    """Dense per-user, per-period activity arrays (see the module docstring)."""

    spec: PanelSpec
    user_ids: np.ndarray
    """(n,) user ids as strings, sorted."""
    first_period: np.ndarray
    """(n,) int32, period of the user's first row (birth)."""
    first_day: np.ndarray
    """(n,) uint8, day within ``first_period`` of the user's first row."""
    first_purchase_period: np.ndarray
    """(n,) int32, period of the first purchase, -1 for users who never purchase."""
    first_purchase_day: np.ndarray
    """(n,) uint8, day within ``first_purchase_period`` of the first purchase."""
    counts: np.ndarray
    """(n, P, E) uint16 events per type, saturating at 65,535 (saturated cells are counted in ``notes``)."""
    spend: np.ndarray
    """(n, P) float32, sum of purchase values."""
    interventions: np.ndarray
    """(n, P, C) uint8 contacts received per kind (each row whose intervention is not ``none`` is
    one contact), saturating at 255."""
    last_purchase_day: np.ndarray
    """(n, P) uint8, day within the period of the last purchase (0 where there was none)."""
    notes: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def purchases(self) -> np.ndarray:
        """(n, P) purchase counts."""
        return self.counts[:, :, self.spec.purchase_index]

    def select(self, users: np.ndarray) -> PeriodPanel:
        """A panel of a subset of users, by boolean mask or index array."""
        selected = {name: getattr(self, name)[users] for name in USER_ARRAYS}
        return PeriodPanel(spec=self.spec, user_ids=self.user_ids[users], notes=self.notes, **selected)

    def truncate(self, end: int) -> PeriodPanel:
        """The first ``end`` periods, users born later dropped (e.g. to validate inside calibration)."""
        born = self.first_period < end
        return dataclasses.replace(
            self.select(born),
            spec=dataclasses.replace(self.spec, n_periods=end),
            counts=self.counts[born, :end],
            spend=self.spend[born, :end],
            interventions=self.interventions[born, :end],
            last_purchase_day=self.last_purchase_day[born, :end],
            first_purchase_period=np.where(
                self.first_purchase_period[born] < end, self.first_purchase_period[born], -1
            ).astype(np.int32),
        )

    def born_before(self, period: int) -> np.ndarray:
        """Boolean mask of users whose first row falls before ``period``."""
        return self.first_period < period

    def tenure(self, periods: np.ndarray) -> np.ndarray:
        """(n, len(periods)) periods since birth (negative before birth)."""
        return np.asarray(periods)[None, :] - self.first_period[:, None]

    def rfm(self, until: int | np.ndarray) -> RFMSummary:
        """Recency-frequency summary from each user's history before period ``until`` (int or (n,) array)."""
        pd_days = self.spec.period_days
        until = np.asarray(until)
        periods = np.arange(int(until.max()))
        within = periods[None, :] < until.reshape(-1, 1)
        purchases = np.where(within, self.purchases[:, : len(periods)], 0).astype(np.int64)
        has_purchase = (self.first_purchase_period >= 0) & (self.first_purchase_period < until)
        total = purchases.sum(axis=1)
        x = np.where(has_purchase, total - 1, 0).astype(np.float64)
        last_period = np.where(purchases > 0, periods[None, :], -1).max(axis=1)
        rows = np.arange(self.n_users)
        last_day = self.last_purchase_day[rows, np.maximum(last_period, 0)]
        first_time = np.where(
            has_purchase,
            self.first_purchase_period + self.first_purchase_day / pd_days,
            self.first_period + self.first_day / pd_days,
        )
        last_time = last_period + last_day / pd_days
        t_x = np.where(has_purchase, last_time - first_time, 0.0)
        T = (until * pd_days - 1) / pd_days - first_time
        return RFMSummary(x=x, t_x=t_x, T=T)


def build_panel(
    log: EventLog,
    *,
    period: Period = "week",
    origin: str | dt.date | None = None,
    end: str | dt.date | None = None,
) -> PeriodPanel:
    """Aggregate an event log into a :class:`PeriodPanel`.

    ``origin`` defaults to the day of the first event and ``end`` (exclusive) to the day after the
    last, rounded up to a whole period. Every event must fall in ``[origin, end)``: a narrower
    window is an error, not a silent filter (filter the log first if that is what you mean).
    """
    if period not in PERIOD_DAYS:
        raise DataError(f"unknown period '{period}'", expected=f"one of {sorted(PERIOD_DAYS)}")
    events = log.events
    if events.empty:
        raise DataError("the event log has no rows", path=log.report.source)
    pd_days = PERIOD_DAYS[period]
    # Memory at 1M users x 78 weeks (~54M rows): every per-row temporary is int64 (~0.4 GB) or
    # smaller, built in place where possible, and no per-row Python objects are made.
    day_index = events["timestamp"].to_numpy().astype("datetime64[D]").view(np.int64)  # days since epoch
    first_day, last_day = int(day_index.min()), int(day_index.max())
    window = panel_window(first_day, last_day, period, origin, end)
    origin_day, n_periods = window.origin, window.n_periods
    day_index -= int(origin_day.astype(np.int64))
    if not window.covers:
        outside = (day_index < 0) | (day_index >= n_periods * pd_days)
        raise window.outside(f"{int(outside.sum())} events", log.report.source)
    spec = PanelSpec(
        period=period,
        origin=str(origin_day),
        n_periods=n_periods,
        event_types=log.event_types,
        purchase_event=log.purchase_event,
    )
    user_ids, cell, first_row = _factorize_users(events["user_id"])
    n_users = len(user_ids)
    day_in_period = (day_index % pd_days).astype(np.uint8)
    day_index //= pd_days  # now the period of each row
    cell *= n_periods  # in place: user code -> user-period cell
    cell += day_index
    del day_index
    n_cells = n_users * n_periods
    notes: list[str] = []

    event_code = _label_codes(events["event_type"], spec.event_types)
    counts = _count_by_kind(
        cell, event_code, spec.event_types, (n_users, n_periods), np.uint16, "events", notes
    )

    purchase_rows = np.flatnonzero(event_code == spec.purchase_index)
    del event_code
    purchase_cells = cell[purchase_rows]
    purchase_days = day_in_period[purchase_rows]
    spend = (
        np.bincount(purchase_cells, weights=events["value"].to_numpy()[purchase_rows], minlength=n_cells)
        .reshape(n_users, n_periods)
        .astype(np.float32)
    )
    last_purchase_day = np.zeros(n_cells, dtype=np.uint8)
    np.maximum.at(last_purchase_day, purchase_cells, purchase_days)

    intervention_code = _label_codes(events["intervention"], spec.interventions)
    interventions = _count_by_kind(
        cell, intervention_code, spec.interventions, (n_users, n_periods), np.uint8, "contacts", notes
    )
    del intervention_code

    # Events are sorted by (user_id, timestamp), so a user's first row is its first occurrence.
    buyers, first_buy = np.unique(purchase_cells // n_periods, return_index=True)
    first_purchase_period = np.full(n_users, -1, dtype=np.int32)
    first_purchase_day = np.zeros(n_users, dtype=np.uint8)
    first_purchase_period[buyers] = purchase_cells[first_buy] % n_periods
    first_purchase_day[buyers] = purchase_days[first_buy]
    return PeriodPanel(
        spec=spec,
        user_ids=user_ids,
        first_period=(cell[first_row] % n_periods).astype(np.int32),
        first_day=day_in_period[first_row],
        first_purchase_period=first_purchase_period,
        first_purchase_day=first_purchase_day,
        counts=counts,
        spend=spend,
        interventions=interventions,
        last_purchase_day=last_purchase_day.reshape(n_users, n_periods),
        notes=tuple(notes),
    )


class PanelWindow(NamedTuple):
    """The periods of a panel (:func:`panel_window`), and whether they cover the log's days."""

    origin: np.datetime64
    """First day of period 0."""
    n_periods: int
    period: Period
    covers: bool

    def outside(self, what: str, path: str | Path) -> DataError:
        """The error for ``what`` (e.g. ``"3 events"``) outside a window that does not cover the log."""
        return DataError(
            f"{what} fall outside the panel window starting {self.origin} ({self.n_periods} {self.period}s)",
            path=path,
            column="timestamp",
            expected="a window covering every event, or a log filtered to the window first",
        )


def panel_window(
    first_day: int, last_day: int, period: Period, origin: str | dt.date | None, end: str | dt.date | None
) -> PanelWindow:
    """The periods :func:`build_panel` lays over a log whose events fall on days ``first_day`` to
    ``last_day`` (days since the epoch), given its ``origin`` and ``end`` arguments."""
    pd_days = PERIOD_DAYS[period]
    origin_day = (
        np.datetime64(pd.Timestamp(origin).date(), "D")
        if origin is not None
        else np.datetime64(first_day, "D")
    )
    origin_number = int(origin_day.astype(np.int64))
    if end is None:
        span = last_day - origin_number + 1
        n_periods = -(-span // pd_days)
    else:
        span = int((np.datetime64(pd.Timestamp(end).date(), "D") - origin_day).astype(np.int64))
        if span <= 0 or span % pd_days:
            raise DataError(
                f"panel window {origin_day} to {end} is not a positive whole number of {period}s",
                expected=f"end - origin a positive multiple of {pd_days} days",
            )
        n_periods = span // pd_days
    covers = first_day >= origin_number and last_day - origin_number < n_periods * pd_days
    return PanelWindow(origin_day, n_periods, period, covers)


def _count_by_kind(
    cell: np.ndarray,
    kind_code: np.ndarray,
    kinds: tuple[str, ...],
    shape: tuple[int, int],
    dtype: type[np.unsignedinteger],
    unit: str,
    notes: list[str],
) -> np.ndarray:
    """(users, periods, kinds) rows per user-period cell and kind, saturating at ``dtype``'s maximum.

    Saturated cells are counted in ``notes``, never dropped silently.
    """
    cap = int(np.iinfo(dtype).max)
    out = np.zeros((*shape, len(kinds)), dtype=dtype)
    for k, name in enumerate(kinds):
        per_cell = np.bincount(cell[kind_code == k], minlength=shape[0] * shape[1])
        saturated = int(np.count_nonzero(per_cell > cap))
        if saturated:
            notes.append(f"{saturated} user-periods had more than {cap} '{name}' {unit}; capped")
        np.minimum(per_cell, cap, out=per_cell)
        out[:, :, k] = per_cell.reshape(shape)
    return out


def _factorize_users(user_id: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct user ids sorted (object array), each row's index into them (int64, writable), and the
    first row of each user.

    A log sorted by user id (as :class:`EventLog` promises) is coded from its runs in one pass over
    its Arrow strings; any other column is factorized by pandas.
    """
    values = _arrow_values(user_id)
    if values is not None and values.null_count == 0:
        before, after = values.slice(0, len(values) - 1), values.slice(1)
        if not pc.any(pc.less(after, before)).as_py():
            starts = np.empty(len(values), dtype=bool)
            starts[0] = True
            starts[1:] = pc.not_equal(after, before).to_numpy(zero_copy_only=False)
            first_row = np.flatnonzero(starts)
            codes = np.cumsum(starts, dtype=np.int64)
            codes -= 1
            del starts
            uniques = values.take(pa.array(first_row)).to_numpy(zero_copy_only=False)
            return np.asarray(uniques, dtype=object), codes, first_row
    codes, uniques = pd.factorize(user_id, sort=True)
    codes = codes.astype(np.int64)
    _, first_row = np.unique(codes, return_index=True)
    return np.asarray(uniques, dtype=object), codes, first_row


def _arrow_values(column: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow data behind an Arrow-backed column (no copy), or ``None``."""
    if not isinstance(column.array, pd.arrays.ArrowExtensionArray):
        return None
    values = column.array.__arrow_array__()
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _label_codes(column: pd.Series, labels: tuple[str, ...]) -> np.ndarray:
    """int8 index of each row's value in ``labels``, -1 for any other value, without per-row objects
    for categorical and Arrow-backed columns (int32 beyond 127 labels)."""
    dtype = np.int8 if len(labels) < 128 else np.int32
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        lookup = np.array([labels.index(c) if c in labels else -1 for c in categories] + [-1], dtype=dtype)
        return lookup[column.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing -1
    values = _arrow_values(column)
    if values is not None and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        index = pc.index_in(values, value_set=pa.array(labels, values.type))
        return pc.fill_null(index, -1).to_numpy().astype(dtype)
    values = column.to_numpy()
    codes = np.full(len(values), -1, dtype=dtype)
    for k, label in enumerate(labels):
        codes[values == label] = k
    return codes
