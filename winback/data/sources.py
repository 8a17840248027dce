"""Where the CLI and pipelines get a panel and its calibration/holdout split: a built-in name or a file.

A split is checked when it is made, so a log no model can learn from ends in a :class:`DataError`
saying what was expected rather than deep inside a fit. The minimums are what every model needs
(:data:`MIN_CALIBRATION_PERIODS`, a purchase in calibration, and for an evaluation
:data:`MIN_HOLDOUT_PERIODS` with a purchase in them); a model that needs more checks it in its ``fit``
(BG/NBD needs a repeat buyer, the LSTM users to validate on).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from winback.data import cdnow
from winback.data.io import read_event_log
from winback.data.panel import PERIOD_DAYS, Period, PeriodPanel, build_panel
from winback.data.schema import EventLog
from winback.data.shards import ShardedPanel, is_sharded_panel
from winback.errors import ConfigError, DataError

MIN_CALIBRATION_PERIODS = 2
"""Periods a calibration window must hold. Every model learns how a period follows the ones before
it (the LSTM's first target is a user's second period, the heuristics score the periods after
birth, BG/NBD needs time after a first purchase), so a single period teaches nothing."""
MIN_HOLDOUT_PERIODS = 1
"""Periods an evaluation's holdout must hold (``decay fit`` may use the whole log for calibration)."""


@dataclass(frozen=True)
class PanelSplit:
    """A panel and the first holdout period; calibration is every period before it.

    Checked on construction: the calibration window lies inside the panel, holds at least
    :data:`MIN_CALIBRATION_PERIODS` and a purchase. :meth:`check_holdout` adds what an evaluation needs.
    ``default_split`` says the split was not asked for (files split at mid-log), for the messages.
    """

    panel: PeriodPanel
    calibration_end: int
    source: str
    default_split: bool = False

    def __post_init__(self) -> None:
        spec, end = self.panel.spec, self.calibration_end
        date = spec.period_start(end)
        if end <= 0 and not self.default_split:
            raise DataError(
                f"the calibration end {date} is on or before the log's first event ({self._first_event()})",
                path=self.source,
                expected=f"a date leaving at least {_span(MIN_CALIBRATION_PERIODS, spec.period)} of events "
                "before it",
            )
        if end > spec.n_periods:
            raise DataError(
                f"the calibration end {date} is after the log's last {spec.period}, which starts "
                f"{spec.period_start(spec.n_periods - 1)}",
                path=self.source,
                expected=f"a date on or before {spec.period_start(spec.n_periods)}",
            )
        if end < MIN_CALIBRATION_PERIODS:
            how = (
                f" (the default split at mid-log of a log covering {_span(spec.n_periods, spec.period)})"
                if self.default_split
                else ""
            )
            remedies = ["a longer log"]
            if spec.n_periods >= MIN_CALIBRATION_PERIODS:
                remedies.insert(
                    0, f"a calibration end on or after {spec.period_start(MIN_CALIBRATION_PERIODS)}"
                )
            if spec.period == "week":
                remedies.append("daily periods (--period day)")
            raise DataError(
                f"the calibration window has {_span(end, spec.period)}{how}; at least "
                f"{MIN_CALIBRATION_PERIODS} are needed: every model learns how a {spec.period} follows "
                "the ones before it",
                path=self.source,
                expected=", or ".join(remedies),
            )
        if not self._calibration_users_purchases(slice(0, end)).any():
            raise DataError(
                f"no '{spec.purchase_event}' event before the calibration end {date}: every model learns "
                "purchase rates from the calibration window",
                path=self.source,
                column="event_type",
                expected=f"at least one '{spec.purchase_event}' event before {date}",
            )

    def check_holdout(self) -> None:
        """An evaluation's needs: at least :data:`MIN_HOLDOUT_PERIODS` after calibration, with a
        purchase by a user seen in calibration (forecasts are scored against them)."""
        spec, end = self.panel.spec, self.calibration_end
        date = spec.period_start(end)
        holdout = spec.n_periods - end
        if holdout < MIN_HOLDOUT_PERIODS:
            raise DataError(
                f"the holdout has {_span(holdout, spec.period)}: no event falls on or after the "
                f"calibration end {date}",
                path=self.source,
                expected="a calibration end on or before "
                f"{spec.period_start(spec.n_periods - MIN_HOLDOUT_PERIODS)}",
            )
        if not self._calibration_users_purchases(slice(end, None)).any():
            n_users = int(self.panel.born_before(end).sum())
            raise DataError(
                f"the {n_users:,} users seen before {date} make no '{spec.purchase_event}' in the holdout "
                f"({date} to {spec.period_start(spec.n_periods)}): there is nothing to score forecasts "
                "against",
                path=self.source,
                expected="a holdout with purchases by users first seen in calibration: an earlier "
                "calibration end or a longer log",
            )

    def _calibration_users_purchases(self, periods: slice) -> np.ndarray:
        """Purchases in ``periods`` of the users born before the calibration end, (users, periods)."""
        return self.panel.purchases[self.panel.born_before(self.calibration_end), periods]

    def _first_event(self) -> dt.date:
        panel = self.panel
        first = int(np.argmin(panel.first_period * panel.spec.period_days + panel.first_day))
        return panel.spec.period_start(panel.first_period[first]) + dt.timedelta(
            days=int(panel.first_day[first])
        )


def load_panel_split(
    data: str,
    *,
    mapping: str | None = None,
    period: Period = "week",
    calibration_end: str | None = None,
) -> PanelSplit:
    """Panel of a built-in dataset (``cdnow``, ``cdnow-sample``) or of an event-log file.

    ``calibration_end`` is the first holdout date (ISO ``YYYY-MM-DD``). For files the period grid is
    laid so that it starts a period; built-in data use the standard grid of Fader, Hardie & Lee (2005),
    on which it must fall on a period boundary, and default to their standard split. Files default to
    the middle period. The split is checked (see :class:`PanelSplit`).
    """
    if period not in PERIOD_DAYS:
        raise ConfigError(f"period '{period}' (allowed: {', '.join(PERIOD_DAYS)})")
    split_date = None if calibration_end is None else _parse_date(calibration_end)
    if data in cdnow.DATASETS:
        panel = cdnow.load_cdnow_panel(data, period=period)
        end = panel.spec.period_of(split_date or cdnow.CALIBRATION_END)
        return PanelSplit(panel=panel, calibration_end=end, source=data)
    if is_sharded_panel(data):
        raise DataError(
            "a panel in shards (winback data panel) is read only by `winback decay fit`",
            path=data,
            expected="the event log itself here",
        )
    log = read_event_log(data, mapping=mapping)
    if split_date is None:
        panel = build_panel(log, period=period)
        return PanelSplit(
            panel=panel, calibration_end=panel.spec.n_periods // 2, source=str(data), default_split=True
        )
    panel = build_panel(log, period=period, origin=_origin_on_grid(log, split_date, period))
    return PanelSplit(panel=panel, calibration_end=panel.spec.period_of(split_date), source=str(data))


def sharded_calibration_end(panel: ShardedPanel, calibration_end: str | None, period: Period) -> int:
    """The first holdout period of a panel stored in shards (``calibration_end`` as in
    :func:`load_panel_split`, on the panel's period grid; default: the middle period)."""
    spec = panel.spec
    if period != spec.period:
        raise ConfigError(
            f"the panel in {panel.path} has {spec.period} periods, not {period}s "
            f"(pass --period {spec.period})"
        )
    end = spec.n_periods // 2 if calibration_end is None else spec.period_of(_parse_date(calibration_end))
    if not MIN_CALIBRATION_PERIODS <= end <= spec.n_periods:
        raise DataError(
            f"the calibration end {spec.period_start(end)} leaves {_span(max(end, 0), spec.period)} of "
            f"calibration in a panel of {_span(spec.n_periods, spec.period)} from {spec.origin}",
            path=panel.path,
            expected=f"a date from {spec.period_start(MIN_CALIBRATION_PERIODS)} to "
            f"{spec.period_start(spec.n_periods)}",
        )
    return end


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"calibration end '{text}' is not a date (expected YYYY-MM-DD)") from None


def _origin_on_grid(log: EventLog, split: dt.date, period: Period) -> dt.date:
    """The latest period start on or before the first event such that ``split`` starts a period."""
    first = log.events["timestamp"].min().date()
    days = PERIOD_DAYS[period]
    periods_before = -(-(split - first).days // days)
    return split - dt.timedelta(days=periods_before * days)


def _span(n: int, period: Period) -> str:
    """``n`` periods in words: ``1 week``, ``3 days``."""
    return f"{n} {period}{'' if n == 1 else 's'}"
