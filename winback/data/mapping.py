"""How a source file's columns and values map onto the canonical event-log schema.

A :class:`ColumnMapping` says which *shape* a log has and names, for each field, the source column
it is read from:

- ``shape = "events"`` (the default): one row per event with an event type (see
  :mod:`winback.data.schema`). The mapping renames event-type values, says how to read epoch
  timestamps, gives column names to header-less files, and can restrict ``value`` to purchase
  rows (for logs whose price column is filled on every row).
- ``shape = "transactions"``: one row per order line, every line a sale (UCI Online Retail II,
  ``lifetimes``' transaction data). Lines of one order form one purchase event; cancellations and
  returns are handled as :class:`TransactionRules` says (see
  :func:`winback.data.io.read_event_log`).

Either shape can take contacts (an intervention log) from a second file, :class:`ContactsFile`.
Presets cover four public logs (RetailRocket ``events.csv``: view / addtocart / transaction;
REES46 multi-category store: view / cart / purchase; Taobao UserBehavior: pv / cart / fav / buy,
without a header; UCI Online Retail II: order lines); anything else is a TOML file::

    name = "my-shop"
    shape = "events"                 # optional: "events" (default) or "transactions"
    timestamp_unit = "ms"            # optional: "s" or "ms" for epoch numbers
    header = ["ts", "visitor", "what"]  # optional: column names of a header-less file
    value_only_on_purchase = false   # optional (events only)
    missing_user = "error"           # optional: "error" or "skip" rows with an empty user id

    [columns]                        # field = source column
    user_id = "visitor"
    timestamp = "ts"
    event_type = "what"

    [event_renames]                  # source event type = canonical event type (events only)
    transaction = "purchase"

    [transactions]                   # transactions only, every key optional
    cancellations = "drop"           # "drop", "net" or "event"
    cancellation_prefix = "C"        # order ids starting with it are cancellations

    [contacts]                       # optional: contacts from a second file
    path = "crm.csv"                 # relative to the TOML file's folder
    unknown_users = "drop"           # optional: "drop" or "keep" contacts of users not in the log
    timestamp_unit = "s"             # optional, as above
    delimiter = ","                  # optional, for a CSV contacts file
    [contacts.columns]               # field (user_id, timestamp, kind, arm) = source column
    user_id = "customer"
    kind = "campaign_type"
    [contacts.kind_renames]          # source kind = a contact of winback.data.schema.CONTACTS
    voucher = "coupon"

Fields of transaction logs: ``user_id``, ``timestamp`` (required), ``order_id``, ``quantity``,
``price`` (then a line's value is quantity x price; needs ``quantity``) or ``value`` (the line's
value itself). As for events, a field not listed under ``[columns]`` is read from a column of its
own name when the file has one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from winback.data.schema import CANONICAL_COLUMNS, CONTACTS, REQUIRED_COLUMNS
from winback.errors import DataError

TimestampUnit = Literal["s", "ms"]
TIMESTAMP_UNITS: tuple[str, ...] = ("s", "ms")
Shape = Literal["events", "transactions"]
SHAPES: tuple[str, ...] = ("events", "transactions")
MissingUser = Literal["error", "skip"]
MISSING_USER: tuple[str, ...] = ("error", "skip")
Cancellations = Literal["drop", "net", "event"]
CANCELLATIONS: tuple[str, ...] = ("drop", "net", "event")
UnknownUsers = Literal["drop", "keep"]
UNKNOWN_USERS: tuple[str, ...] = ("drop", "keep")

TRANSACTION_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "order_id", "quantity", "price", "value")
"""Fields of a transaction (order-line) log; the first two are required."""
TRANSACTION_REQUIRED: tuple[str, ...] = ("user_id", "timestamp")
CONTACT_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "kind", "arm")
"""Fields of a contacts file; all but ``arm`` are required."""
CONTACT_REQUIRED: tuple[str, ...] = ("user_id", "timestamp", "kind")


def _check_columns(
    owner: str,
    columns: dict[str, str],
    fields: tuple[str, ...],
    required: tuple[str, ...],
    header: tuple[str, ...] | None,
) -> None:
    """Mapped fields known, sources non-empty and distinct, a given header naming every required one."""
    unknown = sorted(set(columns) - set(fields))
    if unknown:
        raise DataError(
            f"{owner} maps unknown field '{unknown[0]}'",
            column=unknown[0],
            expected=f"keys among {list(fields)}",
        )
    if any(not source.strip() for source in columns.values()):
        raise DataError(f"{owner} maps a column to an empty name")
    sources = [columns.get(name, name).strip() for name in fields]
    shared = sorted({s for s in sources if sources.count(s) > 1})
    if shared:
        raise DataError(
            f"{owner} reads two fields from source column '{shared[0]}'",
            expected="one source column per field",
        )
    if header is not None:
        if len(set(header)) < len(header):
            raise DataError(f"{owner} has a header with repeated names: {list(header)}")
        absent = [columns.get(c, c).strip() for c in required if columns.get(c, c).strip() not in header]
        if absent:
            raise DataError(
                f"{owner} header {list(header)} lacks required column '{absent[0]}'",
                expected="the header to name every required column",
            )


def _check_choice(owner: str, key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise DataError(f"{owner} has unknown {key} '{value}'", expected=f"one of {list(choices)}")


@dataclass(frozen=True)
class TransactionRules:
    """How the lines of a transaction log become purchase events.

    A line is a *cancellation* when its quantity or value is negative, or its order id starts with
    ``cancellation_prefix``; its cancelled value is the absolute value of its own. Online Retail II
    cancellation invoices do not name the invoice they cancel, so a cancellation cannot be matched
    to its purchase; ``cancellations`` chooses what becomes of them (counted in every mode):

    - ``drop``: left out. Purchases keep their gross value; spend is what was ordered.
    - ``net``: taken off the same user's purchases made at or before it, the most recent first
      (returns usually concern recent orders), never below zero; the value that finds no purchase
      to reduce (a return of an order older than the log) is counted as unmatched. A purchase
      netted to zero stays a purchase event of value 0: the order was placed.
    - ``event``: each cancelled order becomes an event of type :data:`CANCELLATION_EVENT` with its
      cancelled value and quantity as positive numbers (spend comes from purchase events only).
    """

    cancellations: Cancellations = "drop"
    cancellation_prefix: str | None = None
    """Order ids starting with it are cancellations, besides lines of negative quantity or value."""

    def __post_init__(self) -> None:
        _check_choice("the transaction rules", "cancellations", self.cancellations, CANCELLATIONS)
        if self.cancellation_prefix is not None and not self.cancellation_prefix.strip():
            raise DataError("the cancellation prefix is empty", expected="a non-empty prefix, or none")


CANCELLATION_EVENT = "cancellation"
"""Event type of cancelled orders under ``cancellations = "event"``."""


@dataclass(frozen=True)
class ContactsFile:
    """Contacts (interventions sent) read from a second file: one row per contact.

    Each row becomes an intervention-only row of the log (empty event type, ``intervention`` =
    the kind, ``arm`` if mapped), as the synthetic generator writes them. Kinds, after
    ``kind_renames``, must be contacts of :data:`winback.data.schema.CONTACTS`.
    """

    path: Path
    columns: dict[str, str] = field(default_factory=dict)
    """Field (see :data:`CONTACT_COLUMNS`) -> source column; others are read from their own name."""
    kind_renames: dict[str, str] = field(default_factory=dict)
    """Source kind -> contact kind (e.g. ``voucher`` -> ``coupon``); others kept."""
    timestamp_unit: TimestampUnit | None = None
    delimiter: str = ","
    unknown_users: UnknownUsers = "drop"
    """What becomes of contacts of users with no row in the main log: ``drop`` (the default: such
    users are often a sign of ids written differently in the two files, and a user known only from
    contacts has no history to learn from) or ``keep`` (they become users without events). Counted
    either way."""
    header = None
    fields = CONTACT_COLUMNS
    required = CONTACT_REQUIRED

    def __post_init__(self) -> None:
        _check_columns("the contacts mapping", self.columns, CONTACT_COLUMNS, CONTACT_REQUIRED, None)
        _check_choice("the contacts mapping", "timestamp_unit", self.timestamp_unit, (None, *TIMESTAMP_UNITS))
        _check_choice("the contacts mapping", "unknown_users", self.unknown_users, UNKNOWN_USERS)
        unknown = sorted(set(self.kind_renames.values()) - set(CONTACTS))
        if unknown:
            raise DataError(
                f"the contacts mapping renames a kind to '{unknown[0]}'", expected=f"one of {list(CONTACTS)}"
            )

    @property
    def name(self) -> str:
        return "contacts"

    def source(self, name: str) -> str:
        """Name of the source column a field is read from."""
        return self.columns.get(name, name).strip()


@dataclass(frozen=True)
class ColumnMapping:
    """Where each field of a log comes from in a source file, how its values are renamed, its shape."""

    columns: dict[str, str] = field(default_factory=dict)
    """Field -> source column; a field not listed is read from its own name. Fields are the
    canonical columns for event logs, :data:`TRANSACTION_COLUMNS` for transaction logs."""
    event_renames: dict[str, str] = field(default_factory=dict)
    """Source event type -> canonical event type (e.g. ``transaction`` -> ``purchase``); others kept."""
    timestamp_unit: TimestampUnit | None = None
    """Unit of epoch-number timestamps; ``None`` means timestamps are dates or datetimes."""
    header: tuple[str, ...] | None = None
    """Column names of a header-less CSV file, in file order; ``None`` means the file has a header."""
    value_only_on_purchase: bool = False
    """Take ``value`` only on purchase rows (0 elsewhere), for price columns filled on every row."""
    name: str = "custom"
    shape: Shape = "events"
    """``events``: one row per event; ``transactions``: one row per order line (see the module doc)."""
    missing_user: MissingUser | None = None
    """Rows with an empty user id: ``error``, or ``skip`` (left out and counted). ``None``: ``error``
    for event logs, ``skip`` for transaction logs (guest checkouts have no customer id)."""
    transactions: TransactionRules = field(default_factory=TransactionRules)
    """How order lines become purchases (transaction logs only)."""
    contacts: ContactsFile | None = None
    """Contacts read from a second file and merged into the log."""

    def __post_init__(self) -> None:
        owner = f"mapping '{self.name}'"
        _check_choice(owner, "shape", self.shape, SHAPES)
        _check_columns(owner, self.columns, self.fields, self.required, self.header)
        _check_choice(owner, "timestamp_unit", self.timestamp_unit, (None, *TIMESTAMP_UNITS))
        _check_choice(owner, "missing_user", self.missing_user, (None, *MISSING_USER))
        if self.shape == "transactions":
            if self.event_renames or self.value_only_on_purchase:
                raise DataError(
                    f"{owner} of shape 'transactions' has event renames or value_only_on_purchase",
                    expected="those keys in event logs only (every line of a transaction log is a sale)",
                )
        elif self.transactions != TransactionRules():
            raise DataError(
                f"{owner} of shape 'events' has transaction rules",
                expected="shape = 'transactions' to use the [transactions] keys",
            )

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields read for this shape."""
        return TRANSACTION_COLUMNS if self.shape == "transactions" else CANONICAL_COLUMNS

    @property
    def required(self) -> tuple[str, ...]:
        return TRANSACTION_REQUIRED if self.shape == "transactions" else REQUIRED_COLUMNS

    @property
    def skips_missing_users(self) -> bool:
        """Whether rows with an empty user id are left out (and counted) rather than an error."""
        return self.missing_user == "skip" or (self.missing_user is None and self.shape == "transactions")

    def source(self, name: str) -> str:
        """Name of the source column a field is read from."""
        return self.columns.get(name, name).strip()


IDENTITY = ColumnMapping(name="canonical")
"""Files already in canonical form."""

PRESETS: dict[str, ColumnMapping] = {
    "retailrocket": ColumnMapping(
        name="retailrocket",
        columns={"user_id": "visitorid", "timestamp": "timestamp", "event_type": "event"},
        event_renames={"transaction": "purchase", "addtocart": "cart"},
        timestamp_unit="ms",
    ),
    "rees46": ColumnMapping(
        name="rees46",
        columns={
            "user_id": "user_id",
            "timestamp": "event_time",
            "event_type": "event_type",
            "value": "price",
        },
        value_only_on_purchase=True,
    ),
    "taobao": ColumnMapping(
        name="taobao",
        columns={"event_type": "behavior_type"},
        event_renames={"pv": "view", "buy": "purchase"},
        timestamp_unit="s",
        header=("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
    ),
    "online-retail": ColumnMapping(
        name="online-retail",
        shape="transactions",
        columns={
            "user_id": "Customer ID",
            "timestamp": "InvoiceDate",
            "order_id": "Invoice",
            "quantity": "Quantity",
            "price": "Price",
        },
        transactions=TransactionRules(cancellations="drop", cancellation_prefix="C"),
    ),
}
"""Mappings of public logs: RetailRocket ``events.csv``, REES46 multi-category store, Taobao
UserBehavior, UCI Online Retail II (as CSV, its two sheets' rows in one file)."""

_TOML_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "shape": (str, f"one of {list(SHAPES)}"),
    "columns": (dict, "a table of field = source column"),
    "event_renames": (dict, "a table of source event type = canonical event type"),
    "timestamp_unit": (str, f"one of {list(TIMESTAMP_UNITS)}"),
    "header": (list, "an array of column names"),
    "value_only_on_purchase": (bool, "true or false"),
    "missing_user": (str, f"one of {list(MISSING_USER)}"),
    "transactions": (dict, "a table of transaction rules"),
    "contacts": (dict, "a table describing the contacts file"),
}
_TRANSACTIONS_TOML: dict[str, tuple[type, str]] = {
    "cancellations": (str, f"one of {list(CANCELLATIONS)}"),
    "cancellation_prefix": (str, "a string"),
}
_CONTACTS_TOML: dict[str, tuple[type, str]] = {
    "path": (str, "the contacts file, relative to the mapping file's folder"),
    "columns": (dict, "a table of field = source column"),
    "kind_renames": (dict, "a table of source kind = contact kind"),
    "timestamp_unit": (str, f"one of {list(TIMESTAMP_UNITS)}"),
    "delimiter": (str, "a single character"),
    "unknown_users": (str, f"one of {list(UNKNOWN_USERS)}"),
}


def load_mapping(name_or_path: str | Path) -> ColumnMapping:
    """A preset by name (see :data:`PRESETS`) or a mapping read from a TOML file (see the module doc)."""
    if str(name_or_path) in PRESETS:
        return PRESETS[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix.lower() != ".toml":
        raise DataError(
            f"unknown mapping '{name_or_path}'",
            expected=f"a preset among {sorted(PRESETS)} or a .toml file",
        )
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError as err:
        raise DataError("mapping file not found", path=path) from err
    except OSError as err:
        raise DataError(f"cannot read the mapping file: {err.strerror}", path=path) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid TOML: {err}", path=path) from err
    return _mapping_from_toml(document, path)


def _check_toml_table(table: dict, types: dict[str, tuple[type, str]], path: Path, prefix: str = "") -> None:
    """Every key known and of its type; the values of its sub-tables strings."""
    for key, value in table.items():
        if key not in types:
            raise DataError(f"unknown key '{prefix}{key}'", path=path, expected=f"keys among {sorted(types)}")
        kind, description = types[key]
        if not isinstance(value, kind):
            raise DataError(
                f"key '{prefix}{key}' has a {type(value).__name__} value", path=path, expected=description
            )
        if kind is dict and key in ("columns", "event_renames", "kind_renames"):
            for name, item in value.items():
                if not isinstance(item, str):
                    raise DataError(
                        f"key '{prefix}{key}.{name}' has a {type(item).__name__} value",
                        path=path,
                        expected="a string",
                    )


def _check_toml_choices(
    table: dict, choices: dict[str, tuple[str, ...]], path: Path, prefix: str = ""
) -> None:
    for key, allowed in choices.items():
        if key in table and table[key] not in allowed:
            raise DataError(
                f"key '{prefix}{key}' is '{table[key]}'", path=path, expected=f"one of {list(allowed)}"
            )


def _mapping_from_toml(document: dict, path: Path) -> ColumnMapping:
    _check_toml_table(document, _TOML_TYPES, path)
    _check_toml_choices(
        document, {"shape": SHAPES, "timestamp_unit": TIMESTAMP_UNITS, "missing_user": MISSING_USER}, path
    )
    transactions = document.get("transactions", {})
    _check_toml_table(transactions, _TRANSACTIONS_TOML, path, "transactions.")
    _check_toml_choices(transactions, {"cancellations": CANCELLATIONS}, path, "transactions.")
    shape = document.get("shape", "events")
    fields = TRANSACTION_COLUMNS if shape == "transactions" else CANONICAL_COLUMNS
    unknown = sorted(set(document.get("columns", {})) - set(fields))
    if unknown:
        kind = "a transaction-log field" if shape == "transactions" else "a canonical column"
        raise DataError(
            f"key 'columns.{unknown[0]}' is not {kind}", path=path, expected=f"keys among {list(fields)}"
        )
    contacts = document.get("contacts")
    if contacts is not None:
        _check_toml_table(contacts, _CONTACTS_TOML, path, "contacts.")
        _check_toml_choices(
            contacts, {"timestamp_unit": TIMESTAMP_UNITS, "unknown_users": UNKNOWN_USERS}, path, "contacts."
        )
        unknown = sorted(set(contacts.get("columns", {})) - set(CONTACT_COLUMNS))
        if unknown:
            raise DataError(
                f"key 'contacts.columns.{unknown[0]}' is not a contacts field",
                path=path,
                expected=f"keys among {list(CONTACT_COLUMNS)}",
            )
        if "path" not in contacts:
            raise DataError(
                "table 'contacts' has no key 'path'", path=path, expected="path = the contacts file"
            )
    header = document.get("header")
    if header is not None and not all(isinstance(name, str) for name in header):
        raise DataError("key 'header' holds a non-string name", path=path, expected="an array of strings")
    try:
        return ColumnMapping(
            name=document.get("name", path.stem),
            shape=shape,
            columns=dict(document.get("columns", {})),
            event_renames=dict(document.get("event_renames", {})),
            timestamp_unit=document.get("timestamp_unit"),
            header=None if header is None else tuple(header),
            value_only_on_purchase=document.get("value_only_on_purchase", False),
            missing_user=document.get("missing_user"),
            transactions=TransactionRules(**transactions),
            contacts=None
            if contacts is None
            else ContactsFile(
                path=path.parent / contacts["path"],
                columns=dict(contacts.get("columns", {})),
                kind_renames=dict(contacts.get("kind_renames", {})),
                timestamp_unit=contacts.get("timestamp_unit"),
                delimiter=contacts.get("delimiter", ","),
                unknown_users=contacts.get("unknown_users", "drop"),
            ),
        )
    except DataError as err:
        raise DataError(err.problem, path=path, column=err.column, expected=err.expected) from err
