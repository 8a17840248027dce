"""Where the CLI and pipelines get a panel and its calibration/holdout split: a built-in name or a file."""

from __future__ import annotations

from dataclasses import dataclass

from winback.data import cdnow
from winback.data.io import read_event_log
from winback.data.panel import Period, PeriodPanel, build_panel


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

    ``calibration_end`` is the first holdout date and must fall on a period boundary. Built-in data
    default to the standard split of Fader, Hardie & Lee (2005); files default to the middle period.
    """
    if data in cdnow.DATASETS:
        panel = cdnow.load_cdnow_panel(data)
        end = panel.spec.period_of(calibration_end or cdnow.CALIBRATION_END)
        return PanelSplit(panel=panel, calibration_end=end, source=data)
    log = read_event_log(data, mapping=mapping)
    panel = build_panel(log, period=period)
    end = panel.spec.period_of(calibration_end) if calibration_end else panel.spec.n_periods // 2
    return PanelSplit(panel=panel, calibration_end=end, source=str(data))
