"""Read logs from CSV (optionally gzipped) or Parquet into a validated :class:`EventLog`; write them.

A log comes in one of two shapes (:attr:`ColumnMapping.shape`): an *event log*, one row per event
with its type, or a *transaction log*, one row per order line, read into purchase events; either
can take contacts from a second file (:attr:`ColumnMapping.contacts`).

Every problem with the input is a :class:`DataError` naming the file, the first offending rows with
their total count, the source column, and what was expected. Row numbers are 1-based data rows: the
first row after the header (or the first line of a header-less file) is row 1; a quoted value spanning
lines counts as one row. Blank lines are skipped and counted in the report's notes.

Reading is vectorised: pyarrow parses the CSV with every column as text, and each column is converted
and checked as a whole (a failed fast conversion falls back to locating the offending rows).
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from winback.data.mapping import (
    CANCELLATION_EVENT,
    IDENTITY,
    ColumnMapping,
    ContactsFile,
    TimestampUnit,
    load_mapping,
)
from winback.data.schema import CANONICAL_COLUMNS, CONTACTS, INTERVENTIONS, EventLog, LoadReport
from winback.errors import DataError

FileFormat = Literal["csv", "parquet"]
SUFFIXES: dict[str, FileFormat] = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
COMMON_DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_SNIFF_BYTES = 1 << 20
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_INT64_MAX = np.iinfo(np.int64).max
_NS_PER_UNIT: dict[str, int] = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_NS_PER_DAY = 86_400 * 10**9


def file_format(path: str | Path) -> FileFormat:
    """``csv`` or ``parquet``, from the file name's suffix (see :data:`SUFFIXES`)."""
    name = Path(path).name.lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise DataError("unknown file type", path=path, expected=f"a file name ending in one of {list(SUFFIXES)}")


def read_event_log(
    path: str | Path,
    *,
    mapping: ColumnMapping | str | None = None,
    purchase_event: str = "purchase",
    event_types: Iterable[str] | None = None,
    delimiter: str = ",",
) -> EventLog:
    """Read, validate and canonicalise a log (see :class:`EventLog` for the result's exact form).

    ``mapping`` is a :class:`ColumnMapping`, a preset name or a TOML file (see
    :func:`winback.data.mapping.load_mapping`); ``None`` means an event log with canonical names.
    ``event_types`` declares the allowed event types (after renames); ``purchase_event`` must be one
    of them. ``delimiter`` applies to CSV files (a contacts file has its own).

    *Event logs*: exact duplicate rows (equal in every canonical column) are dropped, keeping the
    first, and counted in ``report.duplicate_rows_dropped``. Of the remaining rows, in file order, a
    row is *out of order* when its ``(user_id, timestamp)`` key is strictly smaller than the largest
    key of the rows before it; their number is ``report.out_of_order_rows``. All rows are kept and
    stably sorted by that key, so rows with equal keys keep their file order.

    *Transaction logs* (one row per order line): a line's value is quantity x price (or its mapped
    value). The lines of one user and order id form one ``purchase_event`` event: values and
    quantities summed, at the time of its earliest line; without an order id each line is one
    purchase. Cancellation lines (negative quantity or value, or an order id starting with the
    cancellation prefix) form cancelled orders the same way and are dropped, netted or kept as
    :data:`CANCELLATION_EVENT` events (:class:`TransactionRules`). Identical lines are all sales, so
    nothing is dropped as a duplicate; out-of-order counts orders in the order of their first line.
    Lines without a user id are left out unless the mapping says ``missing_user = "error"``. The
    report counts order lines, orders, cancellations and their value.

    *Contacts file*: its rows become intervention-only rows (empty event type); exact duplicates
    among them are dropped and out-of-order rows counted within that file. Contacts of users with
    no row in the main log are dropped or kept (:attr:`ContactsFile.unknown_users`), and counted.
    ``report.rows_read`` counts the data rows of both files.
    """
    path = Path(path)
    column_mapping = _resolve_mapping(mapping)
    declared = _declared_event_types(event_types, purchase_event)
    raw = _read_table(path, column_mapping, delimiter)
    counts: dict[str, int | float] = {}
    if column_mapping.shape == "transactions":
        rows = _transaction_rows(raw, column_mapping, purchase_event, declared, counts)
    else:
        rows = _event_rows(raw, column_mapping, purchase_event, declared, counts)
    tally = SourceTally(path=raw.path, user_column=raw.sources["user_id"], purchase_event=purchase_event)
    tally.add(raw, counts, rows.purchases)
    blocks = [rows]
    rows_read = raw.rows_read
    notes = tally.notes()
    if column_mapping.contacts is not None:
        contacts = _read_table(
            column_mapping.contacts.path, column_mapping.contacts, column_mapping.contacts.delimiter
        )
        rows_read += contacts.rows_read
        blocks.append(_contact_rows(contacts, column_mapping.contacts, rows.columns["user_id"], counts))
        contacts_tally = SourceTally(contacts.path, contacts.sources["user_id"], purchase_event)
        contacts_tally.add(contacts, {}, None)
        notes += [f"contacts file {contacts.path}: {note}" for note in contacts_tally.notes()]
    events, n_duplicates, out_of_order = _assemble(blocks)
    report = LoadReport(
        source=str(raw.path),
        rows_read=rows_read,
        duplicate_rows_dropped=n_duplicates,
        out_of_order_rows=out_of_order,
        notes=tuple(notes),
        **counts,
    )
    return EventLog(
        events=events, report=report, purchase_event=purchase_event, declared_event_types=declared
    )


def write_event_log(log: EventLog, path: str | Path) -> None:
    """Write an event log's canonical columns to CSV (``.csv``, ``.csv.gz``) or Parquet, by suffix.

    CSV timestamps are written to the nanosecond (``2024-01-31 12:00:00.000000000``), so a round trip
    through :func:`read_event_log` gives back the same events.
    """
    with EventLogWriter(path) as writer:
        writer.write(log.events)


class EventLogWriter:
    """Writes an event log to one file in parts (``write`` once per block of rows), so a log larger
    than memory is written a block at a time; the file is :func:`write_event_log`'s."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.parquet = file_format(self.path) == "parquet"
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self._sink: pa.NativeFile | None = None
        self.rows = 0

    def __enter__(self) -> EventLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._sink is not None:
            self._sink.close()

    def write(self, events: pd.DataFrame) -> None:
        """Append ``events`` (an :class:`EventLog`'s ``events``: canonical columns and dtypes)."""
        table = pa.Table.from_pandas(events[list(CANONICAL_COLUMNS)], preserve_index=False)
        if not self.parquet:
            column = CANONICAL_COLUMNS.index("intervention")
            table = table.set_column(column, "intervention", table.column(column).cast(pa.string()))
        if self._writer is None:
            self._schema, self._writer = table.schema, self._open(table.schema)
        else:
            table = table.cast(self._schema)  # a later block's categories may be coded differently
        self._writer.write_table(table)
        self.rows += table.num_rows

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter | pa_csv.CSVWriter:
        if self.parquet:
            return pq.ParquetWriter(self.path, schema)
        gzipped = self.path.name.lower().endswith(".gz")
        self._sink = (
            pa.CompressedOutputStream(str(self.path), "gzip") if gzipped else pa.OSFile(str(self.path), "wb")
        )
        return pa_csv.CSVWriter(self._sink, schema)


@dataclass
class _RawColumns:
    """Source columns as read, keyed by canonical name, with where each row came from."""

    path: Path
    arrays: dict[str, pa.ChunkedArray]
    sources: dict[str, str]
    """Canonical name -> source column name, for messages."""
    row_numbers: np.ndarray | None
    """1-based data-row number of each row; ``None`` when no row was skipped (row i is row i + 1)."""
    rows_read: int
    notes: list[str] = field(default_factory=list)
    row_offset: int = 0
    """Data rows of the file before these (a file read in blocks): row i here is row_offset + i + 1."""
    blank_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Row numbers of the blank rows skipped."""

    @property
    def n_rows(self) -> int:
        return self.rows_read if self.row_numbers is None else len(self.row_numbers)

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the rows where ``mask`` holds; row numbers follow them."""
        kept = np.flatnonzero(mask)
        self.row_numbers = kept + 1 + self.row_offset if self.row_numbers is None else self.row_numbers[kept]
        selection = pa.array(mask)
        self.arrays = {canonical: array.filter(selection) for canonical, array in self.arrays.items()}

    def release(self, canonical: str) -> None:
        """Drop a source column once it is converted, so its memory is freed before the next one's."""
        self.arrays.pop(canonical, None)

    def reject(
        self,
        mask: np.ndarray,
        problem: str,
        canonical: str,
        expected: str,
        shown: pa.ChunkedArray | np.ndarray | None = None,
    ) -> None:
        """Raise a :class:`DataError` naming the rows where ``mask`` holds, if any, and the first value."""
        bad = np.flatnonzero(mask)
        if not len(bad):
            return
        first_bad = bad[: DataError.max_rows_shown]
        rows = first_bad + 1 + self.row_offset if self.row_numbers is None else self.row_numbers[first_bad]
        if shown is not None:
            value = shown[bad[0]]
            value = value.as_py() if isinstance(value, pa.Scalar) else value
            text = value if isinstance(value, str) else f"{value:g}"
            problem += " " + repr(text if len(text) <= 40 else text[:37] + "...")
        raise DataError(
            problem,
            path=self.path,
            rows=rows.tolist(),
            n_rows=len(bad),
            column=self.sources[canonical],
            expected=expected,
        )

    def wrong_type(self, canonical: str, expected: str) -> NoReturn:
        raise DataError(
            f"column has type {self.arrays[canonical].type}",
            path=self.path,
            column=self.sources[canonical],
            expected=expected,
        )


def _resolve_mapping(mapping: ColumnMapping | str | None) -> ColumnMapping:
    if mapping is None:
        return IDENTITY
    if isinstance(mapping, ColumnMapping):
        return mapping
    return load_mapping(mapping)


def _declared_event_types(event_types: Iterable[str] | None, purchase_event: str) -> tuple[str, ...]:
    if not isinstance(purchase_event, str) or not purchase_event.strip():
        raise DataError("the purchase event name is empty", column="event_type", expected="a non-empty name")
    if event_types is None:
        return ()
    if isinstance(event_types, str):
        raise DataError(
            f"event types given as one string '{event_types}'", expected="a collection of event-type names"
        )
    declared = tuple(dict.fromkeys(event_types))
    if not declared or not all(isinstance(name, str) and name.strip() for name in declared):
        raise DataError(f"invalid declared event types {list(declared)}", expected="non-empty names")
    if purchase_event not in declared:
        raise DataError(
            f"the purchase event '{purchase_event}' is not among the declared event types {list(declared)}",
            column="event_type",
            expected="the purchase event to be declared",
        )
    return declared


_Layout = ColumnMapping | ContactsFile
"""What to read from a file: its fields, their source columns, the required ones, its header."""


def _read_table(path: Path, layout: _Layout, delimiter: str) -> _RawColumns:
    kind = file_format(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=path)
    return _read_csv(path, layout, delimiter) if kind == "csv" else _read_parquet(path, layout)


# --- CSV ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CsvLayout:
    """How to parse one CSV file: pyarrow's options and where each wanted field is."""

    read_options: pa_csv.ReadOptions
    parse_options: pa_csv.ParseOptions
    convert_options: pa_csv.ConvertOptions
    names: list[str]
    """Column names, from the header or the mapping."""
    internal: list[str]
    """The names pyarrow reads the columns under (``c0``, ``c1``, ...)."""
    wanted: dict[str, str]
    """Canonical field -> internal name."""
    sources: dict[str, str]
    """Canonical field -> source column name."""

    def raise_error(self, err: Exception, path: Path) -> NoReturn:
        _raise_csv_error(err, path, self.internal, self.names, self.read_options, self.parse_options)


def _csv_layout(path: Path, mapping: _Layout, delimiter: str, block_size: int | None = None) -> _CsvLayout:
    """Check the header against the mapping and set up the parse (``block_size`` bytes per block)."""
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise DataError(
            f"invalid delimiter {delimiter!r}", path=path, expected="a single character like ',' or ';'"
        )
    first_line = _first_line(path, has_header=mapping.header is None)
    if mapping.header is None:
        names = _parse_header(first_line, delimiter, path)
        header_names = names
    else:
        names = [name.strip() for name in mapping.header]
        header_names = _parse_header(first_line, delimiter, path)
    _check_delimiter(first_line, header_names, delimiter, path)
    positions = _locate_columns(names, mapping, path)
    internal = [f"c{i}" for i in range(len(names))]
    wanted = {canonical: internal[i] for canonical, i in positions.items()}
    read_options = pa_csv.ReadOptions(column_names=internal, skip_rows=1 if mapping.header is None else 0)
    if block_size is not None:
        read_options.block_size = block_size
    return _CsvLayout(
        read_options=read_options,
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in wanted.values()},
            include_columns=list(wanted.values()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
        names=names,
        internal=internal,
        wanted=wanted,
        sources={canonical: names[i] for canonical, i in positions.items()},
    )


def _read_csv(path: Path, mapping: _Layout, delimiter: str) -> _RawColumns:
    layout = _csv_layout(path, mapping, delimiter)
    try:
        table = pa_csv.read_csv(str(path), layout.read_options, layout.parse_options, layout.convert_options)
    except (pa.ArrowException, OSError, EOFError) as err:
        layout.raise_error(err, path)
    raw = _csv_columns(table, path, layout.wanted, layout.sources, 0)
    if raw.n_rows == 0:
        raise DataError(
            "the file has no data rows" + (" after its header" if mapping.header is None else ""),
            path=path,
            expected="at least one event row",
        )
    return raw


def _csv_columns(
    table: pa.Table | pa.RecordBatch,
    path: Path,
    wanted: dict[str, str],
    sources: dict[str, str],
    row_offset: int,
) -> _RawColumns:
    """The wanted text columns of parsed CSV rows, blank rows (every wanted field empty) skipped and
    recorded."""
    arrays = {canonical: _chunked(table.column(name)) for canonical, name in wanted.items()}
    blank = _to_numpy(pc.equal(arrays["user_id"], ""))
    for array in arrays.values():
        if not blank.any():
            break
        blank &= _to_numpy(pc.equal(array, ""))
    raw = _RawColumns(
        path=path,
        arrays=arrays,
        sources=sources,
        row_numbers=None,
        rows_read=table.num_rows,
        row_offset=row_offset,
    )
    if blank.any():
        raw.blank_rows = np.flatnonzero(blank) + 1 + row_offset
        raw.keep(~blank)
    return raw


def _chunked(array: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])


def _first_line(path: Path, *, has_header: bool) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            head = file.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read the file ({err})", path=path) from err
    if not head:
        raise DataError("the file is empty (0 bytes)", path=path, expected="a header and event rows")
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return line.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"the {'header' if has_header else 'first line'} is not valid UTF-8 text",
            path=path,
            rows=() if has_header else (1,),
            expected="a UTF-8 encoded file",
        ) from err


def _parse_header(line: str, delimiter: str, path: Path) -> list[str]:
    try:
        fields = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error as err:
        raise DataError(f"cannot parse the first line ({err})", path=path) from err
    return [name.strip() for name in fields]


def _check_delimiter(line: str, fields: list[str], delimiter: str, path: Path) -> None:
    """A one-field first line (logs have at least three) holding another common delimiter: wrong delimiter."""
    if len(fields) != 1:
        return
    for other in COMMON_DELIMITERS:
        if other != delimiter and other in line:
            shown = {"\t": "\\t"}.get(other, other)
            raise DataError(
                f"the first line is one column holding '{shown}', so the file is not {delimiter!r}-separated",
                path=path,
                expected=f"delimiter '{shown}' (pass --delimiter '{shown}', or delimiter={other!r})",
            )


def _locate_columns(names: list[str], mapping: _Layout, path: Path) -> dict[str, int]:
    """Position of each field's source column; missing required columns are an error."""
    positions: dict[str, int] = {}
    for canonical in mapping.fields:
        source = mapping.source(canonical)
        found = [i for i, name in enumerate(names) if name == source]
        if len(found) > 1:
            raise DataError(f"{len(found)} columns have this name", path=path, column=source)
        if found:
            positions[canonical] = found[0]
        elif canonical in mapping.required:
            hint = "pass --mapping (or mapping=) to read differently named columns"
            if isinstance(mapping, ContactsFile):
                hint = f"the mapping's [contacts.columns] reads '{canonical}' from '{source}'"
            elif mapping is not IDENTITY:
                hint = f"mapping '{mapping.name}' reads '{canonical}' from '{source}'"
            raise DataError(
                f"missing required column (columns found: {names})",
                path=path,
                column=source,
                expected=f"a column named '{source}'; {hint}",
            )
    return positions


def _raise_csv_error(
    err: Exception,
    path: Path,
    internal: list[str],
    names: list[str],
    read_options: pa_csv.ReadOptions,
    parse_options: pa_csv.ParseOptions,
) -> NoReturn:
    """Turn a pyarrow CSV failure into a :class:`DataError`, locating the rows where it can."""
    message = str(err)
    if re.search(r"Expected \d+ columns, got \d+", message):
        _raise_field_count(err, path, len(names), parse_options.delimiter, read_options.skip_rows)
    match = re.search(r"CSV column #(\d+).*invalid UTF8", message)
    if match is None:
        raise DataError(f"cannot parse the CSV file ({message})", path=path) from err
    index = int(match.group(1))
    try:
        table = pa_csv.read_csv(
            str(path),
            read_options,
            parse_options,
            pa_csv.ConvertOptions(
                column_types={internal[index]: pa.binary()}, include_columns=[internal[index]]
            ),
        )
    except pa.ArrowException:
        table = pa.table({internal[index]: pa.array([], pa.binary())})
    rows = [i + 1 for i, value in enumerate(table.column(0).to_pylist()) if not _is_utf8(value)]
    raise DataError(
        "text is not valid UTF-8", path=path, rows=rows, column=names[index], expected="a UTF-8 encoded file"
    ) from err


def _is_utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _raise_field_count(err: Exception, path: Path, n_fields: int, delimiter: str, skip_rows: int) -> NoReturn:
    """Name the rows whose field count differs from the header's, counting them with the stdlib reader.

    This runs only once pyarrow has failed; pyarrow's own row handler cannot report rows that are also
    invalid UTF-8. Blank lines are rows of empty fields, as pyarrow reads them.
    """
    bad_rows: list[int] = []
    field_counts: set[int] = set()
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as file:
            for index, fields in enumerate(csv.reader(file, delimiter=delimiter)):
                if index >= skip_rows and fields and len(fields) != n_fields:
                    bad_rows.append(index + 1 - skip_rows)
                    field_counts.add(len(fields))
    except (OSError, EOFError, zlib.error, csv.Error):
        bad_rows = []
    if not bad_rows:
        raise DataError(f"cannot parse the CSV file ({err})", path=path) from err
    raise DataError(
        f"wrong number of fields (found {', '.join(map(str, sorted(field_counts)[:5]))})",
        path=path,
        rows=bad_rows,
        expected=f"{n_fields} fields per row, as in the {'header' if skip_rows else 'mapping header'}",
    ) from err


# --- Parquet -----------------------------------------------------------------------------------------


def _read_parquet(path: Path, mapping: _Layout) -> _RawColumns:
    parquet, sources = open_parquet(path, mapping)
    try:
        table = parquet.read(columns=list(sources.values()))
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file ({err})", path=path) from err
    if table.num_rows == 0:
        raise DataError("the file has no data rows", path=path, expected="at least one event row")
    return _RawColumns(
        path=path,
        arrays={canonical: table.column(i) for i, canonical in enumerate(sources)},
        sources=sources,
        row_numbers=None,
        rows_read=table.num_rows,
    )


def open_parquet(
    path: Path, mapping: _Layout, *, pre_buffer: bool = True
) -> tuple[pq.ParquetFile, dict[str, str]]:
    """A Parquet file and the source column of each field the mapping reads from it (``pre_buffer``
    off for a file read in blocks: pyarrow keeps every row group it has pre-buffered)."""
    if path.stat().st_size == 0:
        raise DataError("the file is empty (0 bytes)", path=path, expected="a Parquet file with event rows")
    try:
        parquet = pq.ParquetFile(path, pre_buffer=pre_buffer)
        names = list(parquet.schema_arrow.names)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file ({err})", path=path) from err
    positions = _locate_columns(names, mapping, path)
    return parquet, {canonical: names[i] for canonical, i in positions.items()}


# --- Conversion to canonical form ---------------------------------------------------------------------


@dataclass
class _Rows:
    """Canonical columns of one source's rows in source order (``user_id``, ``event_type`` and ``arm``
    as Arrow text, ``intervention`` as int8 codes, the rest NumPy); :func:`_assemble` consumes them."""

    columns: dict[str, pa.ChunkedArray | np.ndarray]
    distinct: bool
    """No row is a duplicate of another (order lines are all sales): skip duplicate removal."""
    purchases: int | None = None
    """Rows of the purchase event (event logs), for the note on a log without any."""
    late: np.ndarray | None = None
    """Whether each row's ``(user_id, timestamp)`` is below the largest before it in its whole file
    (rows of a file read in blocks); ``None``: :func:`_assemble` compares the rows given."""


@dataclass
class SourceTally:
    """Figures of a source file summed over the blocks it is read in, and the notes stating them."""

    path: Path
    user_column: str
    purchase_event: str
    rows_read: int = 0
    blank_rows: int = 0
    first_blank_rows: list[int] = field(default_factory=list)
    rows_without_user: int = 0
    purchases: int | None = None
    other_notes: list[str] = field(default_factory=list)

    def add(self, raw: _RawColumns, counts: dict[str, int | float], purchases: int | None) -> None:
        """Count one block's rows (``raw`` after conversion, ``counts`` its figures)."""
        self.rows_read += raw.rows_read
        self.blank_rows += len(raw.blank_rows)
        self.first_blank_rows += raw.blank_rows[: 5 - len(self.first_blank_rows)].tolist()
        self.rows_without_user += int(counts.get("rows_without_user", 0))
        if purchases is not None:
            self.purchases = (self.purchases or 0) + purchases
        self.other_notes += [note for note in raw.notes if note not in self.other_notes]

    def notes(self) -> list[str]:
        """The file's notes; a file of which no row has a user id is an error."""
        notes = []
        if self.blank_rows:
            shown = ", ".join(map(str, self.first_blank_rows)) + (", ..." if self.blank_rows > 5 else "")
            notes.append(f"{self.blank_rows} blank rows skipped (rows {shown})")
        if self.rows_without_user:
            if self.rows_without_user == self.rows_read - self.blank_rows:
                raise DataError(
                    "no row has a user id", path=self.path, column=self.user_column, expected="user ids"
                )
            notes.append(
                f"{self.rows_without_user} rows without a user id ('{self.user_column}' empty) left out"
            )
        notes += self.other_notes
        if self.purchases == 0:
            notes.append(
                f"no '{self.purchase_event}' rows: check the purchase event name or the mapping's renames"
            )
        return notes


def _event_rows(
    raw: _RawColumns,
    mapping: ColumnMapping,
    purchase_event: str,
    declared: tuple[str, ...],
    counts: dict[str, int | float],
) -> _Rows:
    # Memory: each source column is released once converted and each intermediate once used, so the
    # peak is not the sum of the raw table, every intermediate and the result (at 54M rows: 5.1 GiB
    # instead of 14.3; benchmarks/panel_memory.py).
    _decode_dictionaries(raw)
    user_id = _user_ids(raw, mapping.skips_missing_users, counts)
    timestamp = _timestamps(raw, mapping.timestamp_unit)
    raw.release("timestamp")
    intervention = _interventions(raw)
    raw.release("intervention")
    event_type = _event_types(raw, mapping, declared, intervention)
    raw.release("event_type")
    has_value = "value" in raw.arrays
    value = _amounts(raw, "value")
    raw.release("value")
    quantity = _amounts(raw, "quantity")
    raw.release("quantity")
    is_purchase = _to_numpy(pc.equal(event_type, purchase_event))
    if mapping.value_only_on_purchase and has_value:
        value = np.where(is_purchase, value, 0.0)
        raw.notes.append(f"'value' read from '{raw.sources['value']}' on '{purchase_event}' rows only")
    purchases = int(np.count_nonzero(is_purchase))
    del is_purchase
    arm = _text(raw, "arm")
    raw.release("arm")
    columns = {"user_id": user_id, "timestamp": timestamp, "event_type": event_type, "value": value}
    columns |= {"quantity": quantity, "intervention": intervention, "arm": arm}
    return _Rows(columns=columns, distinct=False, purchases=purchases)


def _user_ids(raw: _RawColumns, skip_missing: bool | None, counts: dict[str, int | float]) -> pa.ChunkedArray:
    """Trimmed user ids; rows without one are an error or, with ``skip_missing``, left out and counted.

    ``None``: an error that the mapping cannot turn into skipping (contacts files).
    """
    user_id = _text(raw, "user_id", integers_allowed=True)
    raw.release("user_id")
    empty = _to_numpy(pc.equal(user_id, ""))
    if not skip_missing:
        hint = "" if skip_missing is None else " (or missing_user = 'skip' in the mapping)"
        raw.reject(empty, "empty user id", "user_id", "a non-empty user id" + hint)
        return user_id
    n_empty = int(empty.sum())
    counts["rows_without_user"] = n_empty
    if not n_empty:
        return user_id
    raw.keep(~empty)
    return user_id.filter(pa.array(~empty))


def _transaction_rows(
    raw: _RawColumns,
    mapping: ColumnMapping,
    purchase_event: str,
    declared: tuple[str, ...],
    counts: dict[str, int | float],
) -> _Rows:
    """Purchase events (and cancellation events, as the rules say) from order lines (see
    :func:`read_event_log`)."""
    rules = mapping.transactions
    if rules.cancellations == "event" and declared and CANCELLATION_EVENT not in declared:
        raise DataError(
            f"cancellations become '{CANCELLATION_EVENT}' events, not among the declared event types "
            f"{list(declared)}",
            path=raw.path,
            expected=f"'{CANCELLATION_EVENT}' declared, or another [transactions] cancellations mode",
        )
    if rules.cancellation_prefix is not None and "order_id" not in raw.arrays:
        raise DataError(
            "the mapping has a cancellation prefix but the file has no order id column",
            path=raw.path,
            column=mapping.source("order_id"),
            expected="an order id column, or no cancellation_prefix",
        )
    _decode_dictionaries(raw)
    user_id = _user_ids(raw, mapping.skips_missing_users, counts)
    timestamp = _timestamps(raw, mapping.timestamp_unit).view(np.int64)
    raw.release("timestamp")
    amount, quantity = _line_amounts(raw)
    with np.errstate(over="ignore"):
        total = np.abs(amount).sum()
    if not np.isfinite(total):
        raise DataError(
            "the lines' values add up beyond the float64 range",
            path=raw.path,
            column=raw.sources.get("price", raw.sources.get("value")),
            expected="order, cancellation and log totals within the float64 range",
        )
    cancel = (amount < 0) | (quantity < 0)
    user_names, user_code = _codes(user_id)
    del user_id
    order_code = None
    if "order_id" in raw.arrays:
        order_id = _text(raw, "order_id", integers_allowed=True)
        raw.release("order_id")
        raw.reject(
            _to_numpy(pc.equal(order_id, "")), "missing order id", "order_id", "an order id on every line"
        )
        if rules.cancellation_prefix is not None:
            cancel |= _to_numpy(pc.starts_with(order_id, rules.cancellation_prefix))
        order_code = _codes(order_id)[1]
        del order_id
    first, group = _order_of_lines(user_code, order_code, cancel)
    if group is None:
        value, items, time = np.abs(amount), np.abs(quantity), timestamp
    else:
        value = np.bincount(group, weights=np.abs(amount), minlength=len(first))
        items = np.bincount(group, weights=np.abs(quantity), minlength=len(first))
        time = np.full(len(first), np.iinfo(np.int64).max)
        np.minimum.at(time, group, timestamp)
    order_user, order_cancel = user_code[first], cancel[first]
    del amount, quantity, timestamp
    n_cancelled = int(order_cancel.sum())
    counts["order_lines"] = int(np.count_nonzero(~cancel))
    counts["orders"] = len(value) - n_cancelled
    counts["cancelled_lines"] = int(cancel.sum())
    counts["cancelled_orders"] = n_cancelled
    counts["cancelled_value"] = float(value[order_cancel].sum())
    if n_cancelled:
        fate = {
            "drop": "left out",
            "net": "netted against the same user's earlier purchases",
            "event": f"kept as '{CANCELLATION_EVENT}' events",
        }[rules.cancellations]
        raw.notes.append(f"{n_cancelled} cancelled orders {fate}")
    if rules.cancellations == "net" and n_cancelled:
        value, unmatched = _net_of_cancellations(order_user, time, value, order_cancel)
        counts["cancelled_value_unmatched"] = unmatched
        zeroed = int(np.count_nonzero((value == 0) & ~order_cancel))
        if zeroed:
            raw.notes.append(f"{zeroed} purchases netted to a value of 0 by later cancellations")
    kept = np.arange(len(value)) if rules.cancellations == "event" else np.flatnonzero(~order_cancel)
    if not len(kept):
        raise DataError(
            "every line with a user id is a cancellation: no purchase to read",
            path=raw.path,
            expected="at least one sale line (positive quantity, order id without the cancellation prefix)",
        )
    type_names = pa.array([purchase_event, CANCELLATION_EVENT])
    columns: dict[str, pa.ChunkedArray | np.ndarray] = {
        "user_id": pa.chunked_array([user_names.take(pa.array(order_user[kept]))]),
        "timestamp": time[kept].view("datetime64[ns]"),
        "event_type": pa.chunked_array([type_names.take(pa.array(order_cancel[kept].astype(np.int8)))]),
        "value": value[kept],
        "quantity": items[kept],
        "intervention": np.zeros(len(kept), dtype=np.int8),
        "arm": pa.chunked_array([pa.repeat("", len(kept))]),
    }
    return _Rows(columns=columns, distinct=True)


def _order_of_lines(
    user_code: np.ndarray, order_code: np.ndarray | None, cancel: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The first line of each order and each line's order (``None``: every line is its own order).

    An order is the lines of one user, order id and kind (sale or cancellation); orders are numbered
    in the order of their first line, so they keep the file's order.
    """
    if order_code is None:
        return np.arange(len(cancel)), None
    n_orders = int(order_code.max()) + 1
    line_key = (user_code.astype(np.int64) * n_orders + order_code) * 2 + cancel
    _, first, group = np.unique(line_key, return_index=True, return_inverse=True)
    del line_key
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    return first[by_first], rank[group]


def _line_amounts(raw: _RawColumns) -> tuple[np.ndarray, np.ndarray]:
    """Each line's signed value (quantity x price, or its mapped value, else 0) and quantity (else 0)."""
    has = {name: name in raw.arrays for name in ("quantity", "price", "value")}
    if has["price"] and has["value"]:
        raise DataError(
            f"the file has both a price column '{raw.sources['price']}' and a value column "
            f"'{raw.sources['value']}'",
            path=raw.path,
            expected="one of them mapped: price (a line's value is quantity x price) or value",
        )
    if has["price"] and not has["quantity"]:
        raise DataError(
            "a price column without a quantity column",
            path=raw.path,
            column=raw.sources["price"],
            expected="a quantity column too (a line's value is quantity x price), or 'value' mapped instead",
        )
    quantity = _line_numbers(raw, "quantity") if has["quantity"] else np.zeros(raw.n_rows)
    if has["price"]:
        price = _line_numbers(raw, "price")
        raw.reject(
            price < 0,
            "negative price",
            "price",
            "a price >= 0 (returns have a negative quantity)",
            shown=price,
        )
        with np.errstate(over="ignore"):
            amount = quantity * price
        raw.reject(
            ~np.isfinite(amount), "quantity x price is not a finite number", "price", "smaller numbers"
        )
    else:
        amount = _line_numbers(raw, "value") if has["value"] else np.zeros(raw.n_rows)
    return amount, quantity


def _line_numbers(raw: _RawColumns, canonical: str) -> np.ndarray:
    """A number on every line (negative allowed: returns); missing numbers are an error naming the rows."""
    expected = "a number on every line"
    numbers = _numbers(raw, canonical, expected)
    raw.release(canonical)
    raw.reject(np.isnan(numbers), f"missing {canonical}", canonical, expected)
    return numbers + 0.0  # -0.0 as 0.0: a line of quantity -0 is not a cancellation


def _net_of_cancellations(
    user: np.ndarray, time: np.ndarray, value: np.ndarray, cancel: np.ndarray
) -> tuple[np.ndarray, float]:
    """Purchase values net of the same user's later cancellations, most recent purchase first.

    Per user in time order (purchases before cancellations at the same instant), purchases stack up
    and cancellations take value off the top, never below zero: the stack's level is the running
    sum of signed values reflected at zero, ``L_j = S_j - min(0, min_{k<=j} S_k)``. A purchase
    pushed at level ``L_{j-1}`` keeps the part below the lowest later level. Returns each order's
    value (0 for cancellations) and the cancelled value left without a purchase to reduce.
    """
    order = np.lexsort((cancel, time, user))
    by_user = user[order]
    amount = value[order]
    is_cancel = cancel[order]
    running = pd.Series(np.where(is_cancel, -amount, amount)).groupby(by_user).cumsum().to_numpy()
    lowest = np.minimum(pd.Series(running).groupby(by_user).cummin().to_numpy(), 0.0)
    level = running - lowest
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = by_user[1:] != by_user[:-1]
    before = np.zeros(len(order))
    before[1:] = level[:-1]
    before[starts] = 0.0
    later_low = pd.Series(level[::-1]).groupby(by_user[::-1]).cummin().to_numpy()[::-1]
    kept = np.where(later_low >= level, amount, np.clip(later_low - before, 0.0, amount))
    net = np.zeros(len(value))
    net[order] = np.where(is_cancel, 0.0, kept)
    ends = np.append(np.flatnonzero(starts)[1:], len(order)) - 1
    return net, float(0.0 - lowest[ends].sum())


def _contact_rows(
    raw: _RawColumns, contacts: ContactsFile, log_users: pa.ChunkedArray, counts: dict[str, int | float]
) -> _Rows:
    """Intervention-only rows from a contacts file; those of users not in ``log_users`` counted."""
    _decode_dictionaries(raw)
    user_id = _user_ids(raw, None, counts)
    timestamp = _timestamps(raw, contacts.timestamp_unit)
    raw.release("timestamp")
    text = _renamed(_text(raw, "kind"), contacts.kind_renames)
    raw.release("kind")
    raw.reject(_to_numpy(pc.equal(text, "")), "missing contact kind", "kind", f"one of {list(CONTACTS)}")
    codes = pc.index_in(text, value_set=pa.array(CONTACTS))
    raw.reject(
        _to_numpy(codes.is_null()),
        "unknown contact kind",
        "kind",
        f"one of {list(CONTACTS)}, or a kind renamed to one in [contacts.kind_renames]",
        shown=text,
    )
    intervention = (_to_numpy(codes) + 1).astype(np.int8)  # CONTACTS are INTERVENTIONS[1:]
    del text, codes
    arm = _text(raw, "arm")
    raw.release("arm")
    known = _to_numpy(pc.is_in(user_id, value_set=pc.unique(log_users)))
    n_unknown = int(np.count_nonzero(~known))
    counts["contact_rows"] = len(known)
    counts["contacts_of_unknown_users"] = n_unknown
    if n_unknown:
        fate = "left out" if contacts.unknown_users == "drop" else "kept (users without events)"
        raw.notes.append(
            f"{n_unknown} of {len(known)} contacts are of users with no row in the log, {fate}; "
            "check that both files write user ids alike"
        )
    if n_unknown and contacts.unknown_users == "drop":
        selection = pa.array(known)
        user_id, arm = user_id.filter(selection), arm.filter(selection)
        timestamp, intervention = timestamp[known], intervention[known]
    columns: dict[str, pa.ChunkedArray | np.ndarray] = {
        "user_id": user_id,
        "timestamp": timestamp,
        "event_type": pa.chunked_array([pa.repeat("", len(timestamp))]),
        "value": np.zeros(len(timestamp)),
        "quantity": np.zeros(len(timestamp)),
        "intervention": intervention,
        "arm": arm,
    }
    return _Rows(columns=columns, distinct=False)


def _pop(blocks: list[_Rows], name: str) -> pa.ChunkedArray | np.ndarray:
    """One column of every block, concatenated (Arrow text without a copy), and released from the blocks."""
    parts = [block.columns.pop(name) for block in blocks]
    if isinstance(parts[0], pa.ChunkedArray):
        return pa.chunked_array([chunk for part in parts for chunk in part.chunks], pa.string())
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _assemble(blocks: list[_Rows]) -> tuple[pd.DataFrame, int, int]:
    """The canonical frame of the blocks' rows sorted by ``(user_id, timestamp)``; duplicates dropped
    (except within distinct blocks) and counted, out-of-order rows counted within each block (or, for
    a block with ``late`` flags, its late rows that are not duplicates)."""
    sizes = [len(block.columns["timestamp"]) for block in blocks]
    users, user_rank = _sorted_codes(_pop(blocks, "user_id"))
    timestamp = _pop(blocks, "timestamp")
    event_names, event_code = _codes(_pop(blocks, "event_type"))
    arm_names, arm_code = _codes(_pop(blocks, "arm"))
    value = _pop(blocks, "value")
    quantity = _pop(blocks, "quantity")
    intervention = _pop(blocks, "intervention")
    key = _sort_key(user_rank, len(users), timestamp)
    # A stable sort of keys already in order is the identity: skip it (and the gathers) then.
    in_order = not np.any(key[1:] < key[:-1])
    order = None if in_order else np.argsort(key, kind="stable")
    duplicate = _exact_duplicates(key, order, [event_code, value, quantity, intervention, arm_code])
    if any(block.distinct for block in blocks):
        duplicate &= np.repeat([not block.distinct for block in blocks], sizes)
    n_duplicates = int(duplicate.sum())
    out_of_order = 0
    for block, end, size in zip(blocks, np.cumsum(sizes), sizes, strict=True):
        unique = ~duplicate[end - size : end]
        if block.late is not None:
            out_of_order += int(np.count_nonzero(block.late[unique]))
        elif order is not None:
            out_of_order += int(np.count_nonzero(late_keys(key[end - size : end][unique])))
    if order is None:
        kept: np.ndarray | slice = np.flatnonzero(~duplicate) if n_duplicates else slice(None)
    else:
        kept = order[~duplicate[order]]
    del key, order, duplicate

    columns: dict[str, object] = {"user_id": pc.take(users, user_rank[kept]).to_pandas()}
    del users, user_rank
    columns["timestamp"] = timestamp[kept]
    del timestamp
    columns["event_type"] = pc.take(event_names, event_code[kept]).to_pandas()
    del event_code
    columns["value"] = value[kept]
    del value
    columns["quantity"] = quantity[kept]
    del quantity
    columns["intervention"] = pd.Categorical.from_codes(intervention[kept], categories=list(INTERVENTIONS))
    del intervention
    columns["arm"] = pc.take(arm_names, arm_code[kept]).to_pandas()
    del arm_code
    return pd.DataFrame(columns, copy=False), n_duplicates, out_of_order  # own arrays: no copy


def _decode_dictionaries(raw: _RawColumns) -> None:
    for canonical, array in raw.arrays.items():
        if pa.types.is_dictionary(array.type):
            raw.arrays[canonical] = array.cast(array.type.value_type)


def _to_numpy(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _text(raw: _RawColumns, canonical: str, *, integers_allowed: bool = False) -> pa.ChunkedArray:
    """A text column, whitespace-trimmed, with missing values (or a missing column) as ``""``."""
    array = raw.arrays.get(canonical, pa.chunked_array([pa.nulls(raw.n_rows)]))
    kind = array.type
    if pa.types.is_null(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        array = array.cast(pa.string())
    elif pa.types.is_string_view(kind) or (integers_allowed and pa.types.is_integer(kind)):
        array = array.cast(pa.string())
    else:
        raw.wrong_type(canonical, "text" + (" or integers" if integers_allowed else ""))
    return pc.utf8_trim_whitespace(pc.fill_null(array, ""))


def _timestamps(raw: _RawColumns, unit: TimestampUnit | None) -> np.ndarray:
    """``datetime64[ns]`` naive UTC timestamps from datetimes, dates, ISO text or epoch numbers."""
    array = raw.arrays["timestamp"]
    kind = array.type
    epoch_hint = "dates or datetimes, or epoch numbers with timestamp_unit 's' or 'ms' in the mapping"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        missing = _to_numpy(array.is_null())
        raw.reject(missing, "missing timestamp", "timestamp", "a date or datetime on every row")
        # Arrow stores timezone-aware timestamps as UTC instants: their integers are already naive UTC.
        per_unit = _NS_PER_DAY if pa.types.is_date32(kind) else _NS_PER_UNIT[getattr(kind, "unit", "ms")]
        integers = _to_numpy(array.cast(pa.int64()))
        return _scaled_to_ns(raw, None, integers, per_unit)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if unit is None:
            raw.wrong_type("timestamp", epoch_hint)
        numbers = _to_numpy(pc.fill_null(array.cast(pa.float64()), np.nan))
        raw.reject(np.isnan(numbers), "missing timestamp", "timestamp", "a timestamp on every row")
        return _epoch_to_ns(raw, numbers, _NS_PER_UNIT[unit])
    text = _text(raw, "timestamp")
    empty = _to_numpy(pc.equal(text, ""))
    raw.reject(empty, "missing timestamp", "timestamp", "a date or datetime on every row")
    if unit is not None:
        numbers = _parse_numbers(raw, "timestamp", text, f"epoch numbers in '{unit}'")
        return _epoch_to_ns(raw, numbers, _NS_PER_UNIT[unit])
    named_utc = pc.or_(pc.ends_with(text, " UTC"), pc.ends_with(text, " GMT"))  # REES46: '... 00:00:00 UTC'
    if pc.any(named_utc).as_py():
        offset = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, -4), "+00:00", "")
        text = pc.if_else(named_utc, offset, text)
    for target in (pa.timestamp("ns"), pa.timestamp("ns", "UTC")):
        try:
            return _to_numpy(text.cast(target).cast(pa.int64())).view("datetime64[ns]")
        except pa.ArrowInvalid:
            pass
    # Mixed, offset-less and offset text, or out-of-range dates: pandas parses each value as ISO 8601.
    parsed = pd.to_datetime(text.to_pandas(), format="ISO8601", utc=True, errors="coerce")
    unparsed = parsed.isna().to_numpy()
    raw.reject(
        unparsed,
        "unparseable timestamp",
        "timestamp",
        f"{epoch_hint}; text like 2024-01-31, 2024-01-31 12:00:00 or 2024-01-31T12:00:00+02:00",
        shown=text,
    )
    naive = parsed.dt.tz_convert(None).to_numpy()
    integers = naive.view(np.int64)
    unit = np.datetime_data(naive.dtype)[0]
    return _scaled_to_ns(raw, None, integers, _NS_PER_UNIT[unit])


def _epoch_to_ns(raw: _RawColumns, numbers: np.ndarray, per_unit: int) -> np.ndarray:
    """Epoch numbers (possibly fractional) in a unit of ``per_unit`` nanoseconds, exactly where possible."""
    with np.errstate(invalid="ignore"):
        whole = np.floor(numbers)
    raw.reject(~np.isfinite(numbers), "non-finite epoch number", "timestamp", "finite epoch numbers")
    in_range = np.abs(whole) < (_INT64_MAX // per_unit) - 1
    integers = np.where(in_range, whole, 0).astype(np.int64)
    ns = _scaled_to_ns(raw, whole, integers, per_unit)
    fraction = np.round((numbers - whole) * per_unit).astype(np.int64)
    return (ns.view(np.int64) + fraction).view("datetime64[ns]")


def _scaled_to_ns(
    raw: _RawColumns, approximate: np.ndarray | None, integers: np.ndarray, per_unit: int
) -> np.ndarray:
    """Counts of ``per_unit`` ns since the epoch as ``datetime64[ns]``; values outside its range fail.

    ``approximate`` is the counts as float64 (``None``: ``integers`` as float64, made only if the
    smallest or largest count fails the check, since the conversion to float preserves order).
    """
    limit = (_INT64_MAX // per_unit) - 1
    if approximate is None:
        ends = np.array([integers.min(), integers.max()]).astype(np.float64)
        if np.all(np.abs(ends) < limit):
            approximate = ends[:0]
        else:
            approximate = integers.astype(np.float64)
    outside = np.abs(approximate) >= limit
    raw.reject(
        outside,
        "timestamp outside the representable range",
        "timestamp",
        f"dates between {pd.Timestamp.min.date()} and {pd.Timestamp.max.date()}; check the epoch unit",
    )
    if per_unit == 1:
        return (integers if integers.flags.writeable else integers.copy()).view("datetime64[ns]")
    return (integers * per_unit).view("datetime64[ns]")


def _parse_numbers(raw: _RawColumns, canonical: str, text: pa.ChunkedArray, expected: str) -> np.ndarray:
    """Float64 values of non-empty numeric text (empty gives NaN); other text is an error naming its rows."""
    with_nulls = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        numbers = _to_numpy(pc.fill_null(with_nulls.cast(pa.float64()), np.nan))
    except pa.ArrowInvalid as err:
        bad = _to_numpy(pc.invert(pc.or_kleene(pc.equal(text, ""), pc.match_substring_regex(text, _NUMBER))))
        raw.reject(bad, "not a number:", canonical, expected, shown=text)
        raise DataError(f"cannot read numbers ({err})", path=raw.path, column=raw.sources[canonical]) from err
    not_finite = np.isinf(numbers) | (np.isnan(numbers) & ~_to_numpy(pc.equal(text, "")))
    raw.reject(not_finite, "not a finite number:", canonical, expected, shown=text)
    return numbers


def _numbers(raw: _RawColumns, canonical: str, expected: str) -> np.ndarray:
    """Float64 values of a present numeric or numeric-text column, NaN where missing."""
    array = raw.arrays[canonical]
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return _parse_numbers(raw, canonical, _text(raw, canonical), expected)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = _to_numpy(pc.fill_null(array.cast(pa.float64()), np.nan))
        raw.reject(np.isinf(numbers), "infinite number", canonical, expected)
        return numbers
    if pa.types.is_null(kind):
        return np.full(raw.n_rows, np.nan)
    raw.wrong_type(canonical, "numbers")


def _amounts(raw: _RawColumns, canonical: str) -> np.ndarray:
    """A non-negative float64 column (``value`` or ``quantity``) with 0 where missing."""
    if canonical not in raw.arrays:
        return np.zeros(raw.n_rows)
    expected = "a number >= 0, or empty"
    numbers = _numbers(raw, canonical, expected)
    raw.reject(numbers < 0, f"negative {canonical}", canonical, expected, shown=numbers)
    cleaned = numbers + 0.0  # a writable copy, with -0.0 as 0.0; infinities were rejected above
    np.copyto(cleaned, 0.0, where=np.isnan(cleaned))
    return cleaned


def _interventions(raw: _RawColumns) -> np.ndarray:
    """Codes into :data:`INTERVENTIONS` (``none`` where missing)."""
    if "intervention" not in raw.arrays:
        return np.zeros(raw.n_rows, dtype=np.int8)
    text = _text(raw, "intervention")
    text = pc.if_else(pc.equal(text, ""), "none", text)
    codes = pc.index_in(text, value_set=pa.array(INTERVENTIONS))
    unknown = _to_numpy(codes.is_null())
    raw.reject(
        unknown,
        "unknown intervention",
        "intervention",
        f"one of {list(INTERVENTIONS)}, or empty for none",
        shown=text,
    )
    return _to_numpy(codes).astype(np.int8)


def _event_types(
    raw: _RawColumns, mapping: ColumnMapping, declared: tuple[str, ...], intervention: np.ndarray
) -> pa.ChunkedArray:
    """Event types after renames: empty only on intervention rows, within ``declared`` if given."""
    text = _renamed(_text(raw, "event_type"), mapping.event_renames)
    empty = _to_numpy(pc.equal(text, ""))
    raw.reject(
        empty & (intervention == 0),
        "empty event type on a row without an intervention",
        "event_type",
        "an event type, or an intervention on rows that only log a contact",
    )
    if declared:
        undeclared = ~empty & ~_to_numpy(pc.is_in(text, value_set=pa.array(declared)))
        raw.reject(
            undeclared,
            "undeclared event type",
            "event_type",
            f"one of the declared event types {list(declared)}",
            shown=text,
        )
    return text


def _renamed(text: pa.ChunkedArray, renames: dict[str, str]) -> pa.ChunkedArray:
    """``text`` with each value found among the keys of ``renames`` replaced by its value."""
    if not renames:
        return text
    sources = pa.array(list(renames), pa.string())
    targets = pa.array(list(renames.values()), pa.string())
    index = pc.index_in(text, value_set=sources)
    return pc.if_else(index.is_valid(), pc.take(targets, pc.fill_null(index, 0)), text)


def _codes(text: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Distinct values (in order of first occurrence) and each row's int32 index into them.

    Works chunk by chunk: no combined copy of the column.
    """
    values = pc.unique(text)
    return values, _to_numpy(pc.index_in(text, value_set=values))


def _sorted_codes(text: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Distinct values in sorted order and each row's int32 rank among them."""
    values, codes = _codes(text)
    by_value = _to_numpy(pc.array_sort_indices(values))
    rank = np.empty(len(values), dtype=np.int32)
    rank[by_value] = np.arange(len(values))
    return values.take(pa.array(by_value)), rank[codes]


def _sort_key(user_rank: np.ndarray, n_users: int, timestamp: np.ndarray) -> np.ndarray:
    """An int64 per row ordered like ``(user_id, timestamp)`` and equal exactly when both are equal."""
    ns = timestamp.view(np.int64)
    offset = ns.view(np.uint64) - ns.min().view(np.uint64)  # exact in uint64 even for a span beyond int64
    for step in (10**9, 10**6, 10**3, 1):
        if step == 1 or not np.any(offset % np.uint64(step)):
            break
    if step > 1:
        offset //= np.uint64(step)  # in place: offset becomes the ticks
    ticks = offset
    n_ticks = int(ticks.max()) + 1
    if n_users * n_ticks >= 2**62:
        times, ticks = np.unique(ns, return_inverse=True)
        n_ticks = len(times)
    key = user_rank.astype(np.int64)
    key *= n_ticks
    key += ticks.view(np.int64)  # ticks < 2**62 here, so the view is exact
    return key


def late_keys(key: np.ndarray) -> np.ndarray:
    """Whether each key is below the largest of the keys before it: the out-of-order rows of a file."""
    late = np.zeros(len(key), dtype=bool)
    late[1:] = key[1:] < np.maximum.accumulate(key)[:-1]
    return late


def _exact_duplicates(key: np.ndarray, order: np.ndarray | None, columns: list[np.ndarray]) -> np.ndarray:
    """Rows equal to an earlier row in the key and every other column (as codes or numbers).

    ``order`` sorts ``key`` stably; ``None`` means ``key`` is already in order.
    """
    sorted_key = key if order is None else key[order]
    same = sorted_key[1:] == sorted_key[:-1]
    del sorted_key
    shares_key = np.zeros(len(key), dtype=bool)
    if order is None:
        shares_key[1:] |= same
        shares_key[:-1] |= same
    else:
        shares_key[order[1:][same]] = True
        shares_key[order[:-1][same]] = True
    candidates = np.flatnonzero(shares_key)
    duplicate = np.zeros(len(key), dtype=bool)
    if len(candidates):
        frame = pd.DataFrame({i: column[candidates] for i, column in enumerate([key, *columns])})
        duplicate[candidates] = frame.duplicated(keep="first").to_numpy()
    return duplicate
