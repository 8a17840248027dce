"""The canonical event-log schema and the in-memory container every loader returns.

One row per event, the shape public event logs come in (RetailRocket, REES46, Taobao UserBehavior:
:data:`winback.data.mapping.PRESETS` maps their columns):

=============  ========  ===========================================================
column         required  meaning
=============  ========  ===========================================================
user_id        yes       non-empty string
timestamp      yes       date or datetime, stored as naive UTC ``datetime64[ns]``
event_type     yes       e.g. ``view``, ``cart``, ``purchase``; may be empty on a row
                         that only logs an intervention
value          no        spend (>= 0); missing means 0
quantity       no        item count (>= 0); missing means 0
intervention   no        one of :data:`INTERVENTIONS`; missing means ``none``
arm            no        campaign or A/B arm label
=============  ========  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

INTERVENTIONS: tuple[str, ...] = ("none", "push_new_items", "coupon", "care_message")
"""Intervention names, ``none`` first. Their order fixes indices everywhere (actions, panels, models)."""

CONTACTS: tuple[str, ...] = INTERVENTIONS[1:]
"""The interventions that contact the user (everything except ``none``)."""

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "event_type")
OPTIONAL_COLUMNS: tuple[str, ...] = ("value", "quantity", "intervention", "arm")
CANONICAL_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


@dataclass(frozen=True)
class LoadReport:
    """What a loader did to the rows it read; nothing is dropped without being counted here."""

    source: str
    rows_read: int
    """Data rows read from the log file (and from a contacts file, if any), blank rows included."""
    duplicate_rows_dropped: int = 0
    out_of_order_rows: int = 0
    """Rows that were not in (user_id, timestamp) order in the file; they are kept and sorted."""
    same_day_rows_merged: int = 0
    """Rows folded into another row of the same user, day and event type (CDNOW convention)."""
    rows_without_user: int = 0
    """Rows with an empty user id, left out (guest checkouts; ``missing_user = "skip"``)."""
    order_lines: int = 0
    """Sale lines of a transaction log with a user id (cancellation lines not included)."""
    orders: int = 0
    """Purchase events formed from ``order_lines`` (one per user and order id, or one per line)."""
    cancelled_lines: int = 0
    """Cancellation or return lines of a transaction log."""
    cancelled_orders: int = 0
    """Cancelled orders formed from ``cancelled_lines``."""
    cancelled_value: float = 0.0
    """Total value of ``cancelled_lines``, as a positive amount."""
    cancelled_value_unmatched: float = 0.0
    """Of ``cancelled_value``, what found no earlier purchase of the same user to reduce (netting only)."""
    contact_rows: int = 0
    """Rows read from a separate contacts file."""
    contacts_of_unknown_users: int = 0
    """Of ``contact_rows``, those of users with no row in the main log (dropped or kept as mapped)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventLog:
    """A validated event log in canonical form.

    ``events`` has exactly :data:`CANONICAL_COLUMNS`, sorted by ``(user_id, timestamp)``:
    ``user_id`` string, ``timestamp`` ``datetime64[ns]``, ``event_type`` string (``""`` on
    intervention-only rows), ``value`` and ``quantity`` float64 (0 where missing),
    ``intervention`` categorical over :data:`INTERVENTIONS`, ``arm`` string (``""`` where missing).
    """

    events: pd.DataFrame
    report: LoadReport
    purchase_event: str = "purchase"
    """The event type that counts as a transaction (spend and repeat purchases come from it)."""
    declared_event_types: tuple[str, ...] = field(default=())
    """Event types declared for this log; empty means "whatever occurs in it"."""

    @property
    def event_types(self) -> tuple[str, ...]:
        """Event types of the log, the purchase event last so indices are stable across logs."""
        if self.declared_event_types:
            types = set(self.declared_event_types)
        else:
            types = {t for t in self.events["event_type"].unique() if t}
        types.add(self.purchase_event)
        return (*sorted(types - {self.purchase_event}), self.purchase_event)

    @property
    def n_users(self) -> int:
        return int(self.events["user_id"].nunique())
