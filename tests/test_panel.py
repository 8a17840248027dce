"""Period panels: aggregation on a hand-made log, window errors, and CDNOW's standard summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback.data.cdnow import dataset_path, load_cdnow, load_cdnow_panel
from winback.data.panel import build_panel
from winback.data.schema import INTERVENTIONS, EventLog, LoadReport
from winback.errors import DataError


def make_log(rows: list[tuple[str, str, str, float, str]]) -> EventLog:
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "event_type", "value", "intervention"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["quantity"] = 0.0
    frame["intervention"] = pd.Categorical(frame["intervention"], categories=list(INTERVENTIONS))
    frame["arm"] = ""
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    columns = ["user_id", "timestamp", "event_type", "value", "quantity", "intervention", "arm"]
    return EventLog(events=frame[columns], report=LoadReport(source="test", rows_read=len(frame)))


@pytest.fixture
def log() -> EventLog:
    return make_log(
        [
            ("a", "2024-01-01", "view", 0.0, "none"),
            ("a", "2024-01-03", "purchase", 10.0, "none"),
            ("a", "2024-01-05", "purchase", 5.0, "none"),
            ("a", "2024-01-15", "", 0.0, "coupon"),
            ("a", "2024-01-16", "purchase", 7.5, "none"),
            ("b", "2024-01-09", "view", 0.0, "none"),
            ("b", "2024-01-10", "view", 0.0, "none"),
            ("b", "2024-01-20", "", 0.0, "care_message"),
        ]
    )


def test_weekly_panel_counts_every_event(log: EventLog) -> None:
    panel = build_panel(log, period="week")
    assert panel.spec.origin == "2024-01-01" and panel.spec.n_periods == 3
    assert panel.spec.event_types == ("view", "purchase")
    assert list(panel.user_ids) == ["a", "b"]
    np.testing.assert_array_equal(panel.counts[0, :, 1], [2, 0, 1])
    np.testing.assert_array_equal(panel.counts[1, :, 0], [0, 2, 0])
    np.testing.assert_allclose(panel.spend[0], [15.0, 0.0, 7.5])
    coupon = panel.spec.interventions.index("coupon")
    care = panel.spec.interventions.index("care_message")
    assert panel.interventions[0, 2, coupon] == 1 and panel.interventions[1, 2, care] == 1
    assert panel.interventions.sum() == 2
    np.testing.assert_array_equal(panel.first_period, [0, 1])
    np.testing.assert_array_equal(panel.tenure(np.array([0, 2])), [[0, 2], [-1, 1]])
    np.testing.assert_array_equal(panel.first_day, [0, 1])
    np.testing.assert_array_equal(panel.first_purchase_period, [0, -1])
    np.testing.assert_array_equal(panel.first_purchase_day, [2, 0])
    assert panel.last_purchase_day[0, 0] == 4 and panel.last_purchase_day[0, 2] == 1


def test_daily_panel_and_rfm(log: EventLog) -> None:
    panel = build_panel(log, period="day")
    assert panel.spec.n_periods == 20
    rfm = panel.rfm(until=17)
    # a: first purchase day 2, repeats on days 4 and 15; cut-off's last day is 16.
    assert rfm.x[0] == 2 and rfm.t_x[0] == 13 and rfm.T[0] == 14
    # b never purchased: measured from its first event on day 8.
    assert rfm.x[1] == 0 and rfm.t_x[1] == 0 and rfm.T[1] == 8


def test_events_outside_the_window_are_an_error(log: EventLog) -> None:
    with pytest.raises(DataError, match="3 events fall outside the panel window"):
        build_panel(log, period="week", origin="2024-01-01", end="2024-01-15")


def test_window_must_be_whole_periods(log: EventLog) -> None:
    with pytest.raises(DataError, match="not a positive whole number of weeks"):
        build_panel(log, period="week", origin="2024-01-01", end="2024-01-24")


def test_period_of_needs_a_boundary(log: EventLog) -> None:
    spec = build_panel(log).spec
    assert spec.period_of("2024-01-15") == 2
    with pytest.raises(DataError, match="not on a period boundary"):
        spec.period_of("2024-01-16")


def test_cdnow_master_counts() -> None:
    log = load_cdnow("cdnow")
    assert log.report.rows_read == 69_659
    assert log.n_users == 23_570
    assert len(log.events) == log.report.rows_read - log.report.same_day_rows_merged
    panel = load_cdnow_panel("cdnow")
    assert panel.spec.n_periods == 78 and panel.purchases.sum() == len(log.events)
    assert panel.first_period.max() < 12  # every first purchase in Jan-Mar 1997


def test_cdnow_sample_rfm_matches_the_published_summary() -> None:
    """x, t_x, T at the standard split equal lifetimes' cdnow_customers_summary.csv (rounded to 0.01)."""
    panel = load_cdnow_panel("cdnow-sample")
    raw = pd.read_csv(dataset_path("cdnow-sample"), sep=r"\s+", header=None, dtype=str)
    sample_id = dict(zip(raw[0], raw[1].astype(int), strict=False))
    summary = pd.read_csv(dataset_path("cdnow").parent / "cdnow_customers_summary.csv").set_index("ID")
    summary = summary.loc[[sample_id[u] for u in panel.user_ids]]
    rfm = panel.rfm(39)
    np.testing.assert_array_equal(rfm.x, summary["frequency"].to_numpy())
    np.testing.assert_allclose(rfm.t_x, summary["recency"].to_numpy(), atol=0.006)
    np.testing.assert_allclose(rfm.T, summary["T"].to_numpy(), atol=0.006)
