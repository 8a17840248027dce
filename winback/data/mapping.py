"""How a source file's columns and values map onto the canonical event-log schema.

A :class:`ColumnMapping` names, for each canonical column, the source column it is read from,
renames event-type values, says how to read epoch timestamps, gives column names to header-less
files, and can restrict ``value`` to purchase rows (for logs whose price column is filled on every
row). Presets cover three public logs (RetailRocket ``events.csv``: view / addtocart / transaction;
REES46 multi-category store: view / cart / purchase; Taobao UserBehavior: pv / cart / fav / buy,
without a header); anything else is a TOML file::

    name = "my-shop"
    timestamp_unit = "ms"            # optional: "s" or "ms" for epoch numbers
    header = ["ts", "visitor", "what"]  # optional: column names of a header-less file
    value_only_on_purchase = false   # optional

    [columns]                        # canonical column = source column
    user_id = "visitor"
    timestamp = "ts"
    event_type = "what"

    [event_renames]                  # source event type = canonical event type
    transaction = "purchase"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from winback.data.schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from winback.errors import DataError

TimestampUnit = Literal["s", "ms"]
TIMESTAMP_UNITS: tuple[str, ...] = ("s", "ms")


@dataclass(frozen=True)
class ColumnMapping:
    """Where each canonical column comes from in a source file, and how its values are renamed."""

    columns: dict[str, str] = field(default_factory=dict)
    """Canonical column -> source column; a canonical column not listed is read from its own name."""
    event_renames: dict[str, str] = field(default_factory=dict)
    """Source event type -> canonical event type (e.g. ``transaction`` -> ``purchase``); others kept."""
    timestamp_unit: TimestampUnit | None = None
    """Unit of epoch-number timestamps; ``None`` means timestamps are dates or datetimes."""
    header: tuple[str, ...] | None = None
    """Column names of a header-less CSV file, in file order; ``None`` means the file has a header."""
    value_only_on_purchase: bool = False
    """Take ``value`` only on purchase rows (0 elsewhere), for price columns filled on every row."""
    name: str = "custom"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(CANONICAL_COLUMNS))
        if unknown:
            raise DataError(
                f"mapping '{self.name}' maps unknown canonical column '{unknown[0]}'",
                column=unknown[0],
                expected=f"keys among {list(CANONICAL_COLUMNS)}",
            )
        if any(not source.strip() for source in self.columns.values()):
            raise DataError(f"mapping '{self.name}' maps a column to an empty name")
        sources = [self.source(c) for c in CANONICAL_COLUMNS]
        shared = sorted({s for s in sources if sources.count(s) > 1})
        if shared:
            raise DataError(
                f"mapping '{self.name}' reads two canonical columns from source column '{shared[0]}'",
                expected="one source column per canonical column",
            )
        if self.timestamp_unit not in (None, *TIMESTAMP_UNITS):
            raise DataError(
                f"mapping '{self.name}' has unknown timestamp_unit '{self.timestamp_unit}'",
                expected=f"one of {list(TIMESTAMP_UNITS)} or none",
            )
        if self.header is not None:
            if len(set(self.header)) < len(self.header):
                raise DataError(
                    f"mapping '{self.name}' has a header with repeated names: {list(self.header)}"
                )
            absent = [self.source(c) for c in REQUIRED_COLUMNS if self.source(c) not in self.header]
            if absent:
                raise DataError(
                    f"mapping '{self.name}' header {list(self.header)} lacks required column '{absent[0]}'",
                    expected="the header to name every required column",
                )

    def source(self, canonical: str) -> str:
        """Name of the source column a canonical column is read from."""
        return self.columns.get(canonical, canonical).strip()


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
}
"""Mappings of public logs: RetailRocket ``events.csv``, REES46 multi-category store, Taobao UserBehavior."""

_TOML_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "columns": (dict, "a table of canonical column = source column"),
    "event_renames": (dict, "a table of source event type = canonical event type"),
    "timestamp_unit": (str, f"one of {list(TIMESTAMP_UNITS)}"),
    "header": (list, "an array of column names"),
    "value_only_on_purchase": (bool, "true or false"),
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


def _mapping_from_toml(document: dict, path: Path) -> ColumnMapping:
    for key, value in document.items():
        if key not in _TOML_TYPES:
            raise DataError(f"unknown key '{key}'", path=path, expected=f"keys among {sorted(_TOML_TYPES)}")
        kind, description = _TOML_TYPES[key]
        if not isinstance(value, kind):
            raise DataError(
                f"key '{key}' has a {type(value).__name__} value", path=path, expected=description
            )
    for table in ("columns", "event_renames"):
        for key, value in document.get(table, {}).items():
            if not isinstance(value, str):
                raise DataError(
                    f"key '{table}.{key}' has a {type(value).__name__} value", path=path, expected="a string"
                )
    header = document.get("header")
    if header is not None and not all(isinstance(name, str) for name in header):
        raise DataError("key 'header' holds a non-string name", path=path, expected="an array of strings")
    unknown = sorted(set(document.get("columns", {})) - set(CANONICAL_COLUMNS))
    if unknown:
        raise DataError(
            f"key 'columns.{unknown[0]}' is not a canonical column",
            path=path,
            expected=f"keys among {list(CANONICAL_COLUMNS)}",
        )
    unit = document.get("timestamp_unit")
    if unit is not None and unit not in TIMESTAMP_UNITS:
        raise DataError(
            f"key 'timestamp_unit' is '{unit}'", path=path, expected=f"one of {list(TIMESTAMP_UNITS)}"
        )
    try:
        return ColumnMapping(
            name=document.get("name", path.stem),
            columns=dict(document.get("columns", {})),
            event_renames=dict(document.get("event_renames", {})),
            timestamp_unit=unit,
            header=None if header is None else tuple(header),
            value_only_on_purchase=document.get("value_only_on_purchase", False),
        )
    except DataError as err:
        raise DataError(err.problem, path=path, column=err.column, expected=err.expected) from err
