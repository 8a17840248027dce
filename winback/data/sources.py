"""Where the CLI and pipelines get a panel and its calibration/holdout split: a built-in name or a file."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from winback.data import cdnow
from winback.data.io import read_event_log
from winback.data.panel import PERIOD_DAYS, Period, PeriodPanel, build_panel
from winback.data.schema import EventLog


@dataclass(frozen=True)
class PanelSplit:
    """A panel and the first holdout period; calibration is every period before it."""

    panel: PeriodPanel
    calibration_end: int
    source: str


def load_panel_split(
    data: str,
    *,
    mapping: str | None = None,
    period: Period = "week",
    calibration_end: str | None = None,
) -> PanelSplit:
    """Panel of a built-in dataset (``cdnow``, ``cdnow-sample``) or of an event-log file.

    ``calibration_end`` is the first holdout date. For files the period grid is laid so that it
    starts a period; built-in data use the standard grid of Fader, Hardie & Lee (2005), on which it
    must fall on a week boundary, and default to their standard split. Files default to the middle period.
    """
    if data in cdnow.DATASETS:
        panel = cdnow.load_cdnow_panel(data)
        end = panel.spec.period_of(calibration_end or cdnow.CALIBRATION_END)
        return PanelSplit(panel=panel, calibration_end=end, source=data)
    log = read_event_log(data, mapping=mapping)
    if calibration_end is None:
        panel = build_panel(log, period=period)
        return PanelSplit(panel=panel, calibration_end=panel.spec.n_periods // 2, source=str(data))
    panel = build_panel(log, period=period, origin=_origin_on_grid(log, calibration_end, period))
    return PanelSplit(panel=panel, calibration_end=panel.spec.period_of(calibration_end), source=str(data))


def _origin_on_grid(log: EventLog, calibration_end: str, period: Period) -> dt.date:
    """The latest period start on or before the first event such that ``calibration_end`` starts a period."""
    first = log.events["timestamp"].min().date()
    split = pd.Timestamp(calibration_end).date()
    days = PERIOD_DAYS[period]
    periods_before = -(-(split - first).days // days)
    return split - dt.timedelta(days=periods_before * days)
