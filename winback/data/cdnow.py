"""The built-in CDNOW datasets, read from the files the ``lifetimes==0.11.3`` wheel ships.

``cdnow`` is the master file (23,570 customers who first bought in Jan-Mar 1997, 69,659 rows,
log ends 1998-06-30); ``cdnow-sample`` its 2,357-customer 1/10 sample, with master ids as user ids.
Following Fader, Hardie & Lee (2005), a customer's same-day rows are merged into one transaction
(spend and CD counts summed; the merge is counted in the load report), time is in weeks from
1997-01-01, calibration is the first 39 weeks (to 1997-09-30) and holdout the next 39.
The ``lifetimes`` package itself is never imported (its helpers break on pandas 3).
"""

from __future__ import annotations

import datetime as dt
from importlib import metadata
from pathlib import Path

import pandas as pd

from winback.data.panel import PanelSpec, Period, PeriodPanel, build_panel
from winback.data.schema import INTERVENTIONS, EventLog, LoadReport
from winback.errors import DataError

DATASETS: dict[str, str] = {
    "cdnow": "lifetimes/datasets/CDNOW_master.txt",
    "cdnow-sample": "lifetimes/datasets/CDNOW_sample.txt",
}
ORIGIN = "1997-01-01"
CALIBRATION_END = "1997-10-01"
"""First day of the holdout (calibration covers weeks 0-38)."""
END = "1998-07-01"
"""Day after the last day of the log (holdout covers weeks 39-77)."""
PURCHASE = "purchase"
"""The one event type of the CDNOW logs."""
PANEL_SPEC = PanelSpec(
    period="week",
    origin=ORIGIN,
    n_periods=(dt.date.fromisoformat(END) - dt.date.fromisoformat(ORIGIN)).days // 7,
    event_types=(PURCHASE,),
    purchase_event=PURCHASE,
)
"""The layout of every CDNOW panel (:func:`load_cdnow_panel`), known without reading the data."""


def dataset_path(name: str) -> Path:
    """Path of a built-in dataset's file inside the installed ``lifetimes`` distribution."""
    if name not in DATASETS:
        raise DataError(f"unknown built-in dataset '{name}'", expected=f"one of {sorted(DATASETS)}")
    try:
        distribution = metadata.distribution("lifetimes")
    except metadata.PackageNotFoundError as err:
        raise DataError(
            "the built-in CDNOW data needs the 'lifetimes==0.11.3' distribution, which is not installed",
            expected="'pip install lifetimes==0.11.3' (make quickstart installs it)",
        ) from err
    path = Path(str(distribution.locate_file(DATASETS[name])))
    if not path.is_file():
        raise DataError(f"the installed 'lifetimes' distribution has no file {DATASETS[name]}", path=path)
    return path


def load_cdnow(name: str = "cdnow") -> EventLog:
    """Load a built-in CDNOW dataset as a canonical event log of purchases."""
    path = dataset_path(name)
    columns = ["customer_id", "date", "number_of_cds", "dollar_value"]
    if name == "cdnow-sample":
        columns = ["customer_id", "sample_id", "date", "number_of_cds", "dollar_value"]
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=columns,
        skiprows=1 if name == "cdnow" else 0,
        dtype={"customer_id": str, "sample_id": str, "date": str},
    )
    timestamps = pd.to_datetime(raw["date"], format="%Y%m%d")
    merged = (
        pd.DataFrame(
            {
                "user_id": raw["customer_id"],
                "timestamp": timestamps,
                "value": raw["dollar_value"].astype(float),
                "quantity": raw["number_of_cds"].astype(float),
            }
        )
        .groupby(["user_id", "timestamp"], as_index=False, sort=True)
        .sum()
    )
    events = merged.assign(
        event_type=PURCHASE,
        intervention=pd.Categorical(["none"] * len(merged), categories=list(INTERVENTIONS)),
        arm="",
    )[["user_id", "timestamp", "event_type", "value", "quantity", "intervention", "arm"]]
    report = LoadReport(
        source=f"{name} ({path.name})",
        rows_read=len(raw),
        same_day_rows_merged=len(raw) - len(merged),
        notes=("same-day purchases of a customer merged into one transaction (Fader, Hardie & Lee 2005)",),
    )
    return EventLog(events=events.reset_index(drop=True), report=report, purchase_event=PURCHASE)


def load_cdnow_panel(name: str = "cdnow", *, period: Period = "week") -> PeriodPanel:
    """The panel of a CDNOW dataset over its standard 78-week window, in weeks (the literature's, the
    layout :data:`PANEL_SPEC`) or days."""
    return build_panel(load_cdnow(name), period=period, origin=ORIGIN, end=END)
