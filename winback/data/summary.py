"""What is in an event log, at a glance: sizes, event and contact counts, dates, purchases per user."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from winback.data.schema import CONTACTS, EventLog, LoadReport

PURCHASE_BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-5", 3, 5),
    ("6-10", 6, 10),
    ("11+", 11, np.inf),
)
"""Histogram buckets of purchases per user: label, smallest and largest count."""
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)


def shape_figures(report: LoadReport | LogSummary) -> list[tuple[str, str]]:
    """What reading a transaction log or a contacts file did, as (figure, value) pairs; only the
    figures that apply (none for a plain event log)."""
    figures: list[tuple[str, str]] = []
    if report.rows_without_user:
        figures.append(("rows without a user id, left out", f"{report.rows_without_user:,}"))
    if report.order_lines:
        figures.append(("order lines into orders", f"{report.order_lines:,} into {report.orders:,}"))
    if report.cancelled_lines:
        figures.append(
            (
                "cancellation lines (orders, value)",
                f"{report.cancelled_lines:,} ({report.cancelled_orders:,}, {report.cancelled_value:,.2f})",
            )
        )
    if report.cancelled_value_unmatched:
        figures.append(
            ("cancelled value without a purchase to net", f"{report.cancelled_value_unmatched:,.2f}")
        )
    if report.contact_rows:
        figures.append(("contacts file rows", f"{report.contact_rows:,}"))
        figures.append(("contacts of users not in the log", f"{report.contacts_of_unknown_users:,}"))
    return figures


@dataclass(frozen=True)
class PurchaseDistribution:
    """Purchase-event rows per user, over every user of the log (users without purchases count as 0)."""

    mean: float
    quantiles: dict[str, float]
    """Quantile (``p50``, ``p90``, ``p99``) -> purchases."""
    max: int
    histogram: dict[str, int]
    """Bucket label (see :data:`PURCHASE_BUCKETS`) -> number of users."""


@dataclass(frozen=True)
class LogSummary:
    """Figures describing an event log, and what its loader did to the rows it read (every field of
    its :class:`LoadReport`)."""

    source: str
    rows: int
    users: int
    first_date: str | None
    """ISO date of the first event (``None`` for an empty log)."""
    last_date: str | None
    purchase_event: str
    events_per_type: dict[str, int]
    """Rows per event type, in :attr:`EventLog.event_types` order (zero for declared types not seen)."""
    intervention_only_rows: int
    """Rows with an intervention and no event type."""
    contacts_per_intervention: dict[str, int]
    """Rows per contact kind (every kind of :data:`CONTACTS`, zero if absent)."""
    purchases_per_user: PurchaseDistribution
    rows_read: int
    duplicate_rows_dropped: int
    out_of_order_rows: int
    same_day_rows_merged: int
    rows_without_user: int
    order_lines: int
    orders: int
    cancelled_lines: int
    cancelled_orders: int
    cancelled_value: float
    cancelled_value_unmatched: float
    contact_rows: int
    contacts_of_unknown_users: int
    """Counts of reading a transaction log or a contacts file (see :class:`LoadReport`)."""
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable dictionary of every figure."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data

    def to_markdown(self) -> str:
        """The summary as Markdown: a figures table, then the purchases-per-user histogram."""
        dist = self.purchases_per_user
        quantiles = ", ".join(f"{name} {value:g}" for name, value in dist.quantiles.items())
        figures = [
            ("source", self.source),
            ("rows", f"{self.rows:,}"),
            ("users", f"{self.users:,}"),
            ("dates", f"{self.first_date} to {self.last_date}"),
            *((f"'{name}' events", f"{count:,}") for name, count in self.events_per_type.items()),
            ("intervention-only rows", f"{self.intervention_only_rows:,}"),
            *((f"'{name}' contacts", f"{count:,}") for name, count in self.contacts_per_intervention.items()),
            (f"'{self.purchase_event}' per user", f"mean {dist.mean:.3f}; {quantiles}; max {dist.max}"),
            ("rows read", f"{self.rows_read:,}"),
            ("duplicate rows dropped", f"{self.duplicate_rows_dropped:,}"),
            ("out-of-order rows sorted", f"{self.out_of_order_rows:,}"),
            ("same-day rows merged", f"{self.same_day_rows_merged:,}"),
            *shape_figures(self),
        ]
        lines = ["| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in figures)]
        lines += ["", "| purchases per user | users |", "|---|---|"]
        lines += [f"| {bucket} | {users:,} |" for bucket, users in dist.histogram.items()]
        lines += [f"\nnote: {note}" for note in self.notes]
        return "\n".join(lines)


def summarize(log: EventLog) -> LogSummary:
    """Count what ``log`` holds (see :class:`LogSummary`)."""
    events = log.events
    event_type = events["event_type"]
    type_counts = event_type[event_type != ""].value_counts()
    contact_counts = events["intervention"].value_counts()
    user_index, users = pd.factorize(events["user_id"])
    n_users = len(users)
    purchases = np.bincount(user_index[(event_type == log.purchase_event).to_numpy()], minlength=n_users)
    report = log.report
    return LogSummary(
        rows=len(events),
        users=n_users,
        first_date=events["timestamp"].min().date().isoformat() if len(events) else None,
        last_date=events["timestamp"].max().date().isoformat() if len(events) else None,
        purchase_event=log.purchase_event,
        events_per_type={name: int(type_counts.get(name, 0)) for name in log.event_types},
        intervention_only_rows=int((event_type == "").sum()),
        contacts_per_intervention={name: int(contact_counts.get(name, 0)) for name in CONTACTS},
        purchases_per_user=_distribution(purchases),
        **{field.name: getattr(report, field.name) for field in fields(LoadReport)},
    )


def _distribution(purchases: np.ndarray) -> PurchaseDistribution:
    if not len(purchases):
        return PurchaseDistribution(
            mean=0.0,
            quantiles={f"p{round(q * 100)}": 0.0 for q in QUANTILES},
            max=0,
            histogram={label: 0 for label, _, _ in PURCHASE_BUCKETS},
        )
    return PurchaseDistribution(
        mean=float(purchases.mean()),
        quantiles={f"p{round(q * 100)}": float(np.quantile(purchases, q)) for q in QUANTILES},
        max=int(purchases.max()),
        histogram={
            label: int(np.count_nonzero((purchases >= low) & (purchases <= high)))
            for label, low, high in PURCHASE_BUCKETS
        },
    )
