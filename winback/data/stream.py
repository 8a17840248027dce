"""Read an event log of any size in blocks of rows, each validated and canonicalised as
:func:`winback.data.io.read_event_log` does a whole file (the same checks and messages), with the
figures that need the whole file (duplicates aside) carried across blocks.

A source is a CSV file (optionally gzipped), a Parquet file, or a directory of Parquet files (read
in path order, each file numbering its own rows). Out-of-order rows are flagged as they stream: a
row is *late* when its ``(user_id, timestamp)`` is below the largest before it in its file, which
with the duplicates found later gives :class:`~winback.data.schema.LoadReport`'s exact count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from winback.data.io import (
    SourceTally,
    _csv_columns,
    _csv_layout,
    _declared_event_types,
    _event_rows,
    _RawColumns,
    _resolve_mapping,
    _Rows,
    _sort_key,
    _sorted_codes,
    file_format,
    late_keys,
    open_parquet,
)
from winback.data.mapping import ColumnMapping
from winback.errors import DataError

DEFAULT_BLOCK_ROWS = 1 << 20
_CSV_BYTES_PER_ROW = 64
"""A guess for sizing CSV blocks in bytes from ``block_rows``."""


@dataclass
class StreamedLog:
    """Reads a log's blocks (:meth:`blocks`) and keeps the whole-log figures once they are read."""

    path: Path
    mapping: ColumnMapping
    purchase_event: str
    declared: tuple[str, ...]
    delimiter: str = ","
    block_rows: int = DEFAULT_BLOCK_ROWS
    tallies: list[SourceTally] = field(default_factory=list)
    event_types_seen: set[str] = field(default_factory=set)
    first_timestamp: int | None = None
    """Smallest and largest timestamp (ns since the epoch) of the rows read."""
    last_timestamp: int | None = None

    def files(self) -> list[Path]:
        """The source's files in reading order."""
        if not self.path.exists():
            raise DataError("file not found", path=self.path)
        if not self.path.is_dir():
            file_format(self.path)
            return [self.path]
        found = sorted(p for p in self.path.rglob("*") if p.is_file() and _is_parquet(p))
        if not found:
            raise DataError("no Parquet files in the directory", path=self.path, expected="*.parquet files")
        return found

    def blocks(self) -> Iterator[_Rows]:
        """Every block of every file as canonical rows with their ``late`` flags, validated; raises
        :class:`DataError` at the first problem."""
        if self.mapping.shape != "events" or self.mapping.contacts is not None:
            raise DataError(
                "only event logs without a separate contacts file are read in blocks",
                path=self.path,
                expected="an event log (read a transaction log or a contacts file with read_event_log)",
            )
        for path in self.files():
            tally = SourceTally(
                path=path, user_column=self.mapping.source("user_id"), purchase_event=self.purchase_event
            )
            self.tallies.append(tally)
            carry: tuple[str, int] | None = None
            for raw in self._raw_blocks(path):
                rows, counts = self._convert(raw)
                tally.add(raw, counts, rows.purchases)
                rows.late, carry = _late_rows(rows, carry)
                self._observe(rows)
                yield rows
            if tally.rows_read == tally.blank_rows:
                raise DataError("the file has no data rows", path=path, expected="at least one event row")
            tally.notes()  # a file of which no row has a user id is an error

    def _convert(self, raw: _RawColumns) -> tuple[_Rows, dict[str, int | float]]:
        counts: dict[str, int | float] = {}
        try:
            rows = _event_rows(raw, self.mapping, self.purchase_event, self.declared, counts)
        except DataError as err:
            raise _within_block(err, raw) from err
        return rows, counts

    def notes(self) -> list[str]:
        single = len(self.tallies) == 1
        return [
            note if single else f"{tally.path}: {note}" for tally in self.tallies for note in tally.notes()
        ]

    @property
    def rows_read(self) -> int:
        return sum(tally.rows_read for tally in self.tallies)

    @property
    def rows_without_user(self) -> int:
        return sum(tally.rows_without_user for tally in self.tallies)

    def _observe(self, rows: _Rows) -> None:
        timestamps = rows.columns["timestamp"].view(np.int64)
        if len(timestamps):
            low, high = int(timestamps.min()), int(timestamps.max())
            self.first_timestamp = low if self.first_timestamp is None else min(low, self.first_timestamp)
            self.last_timestamp = high if self.last_timestamp is None else max(high, self.last_timestamp)
        self.event_types_seen.update(t for t in pc.unique(rows.columns["event_type"]).to_pylist() if t)

    def _raw_blocks(self, path: Path) -> Iterator[_RawColumns]:
        if file_format(path) == "csv":
            yield from _csv_blocks(path, self.mapping, self.delimiter, self.block_rows)
        else:
            yield from _parquet_blocks(path, self.mapping, self.block_rows)


def stream_log(
    path: str | Path,
    *,
    mapping: ColumnMapping | str | None = None,
    purchase_event: str = "purchase",
    event_types: Iterable[str] | None = None,
    delimiter: str = ",",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> StreamedLog:
    """A log to read in blocks of ``block_rows`` rows (arguments as :func:`read_event_log`'s)."""
    if block_rows < 1:
        raise DataError(f"block of {block_rows} rows", expected="at least one row per block")
    return StreamedLog(
        path=Path(path),
        mapping=_resolve_mapping(mapping),
        purchase_event=purchase_event,
        declared=_declared_event_types(event_types, purchase_event),
        delimiter=delimiter,
        block_rows=block_rows,
    )


def _is_parquet(path: Path) -> bool:
    try:
        return file_format(path) == "parquet"
    except DataError:
        return False


def _csv_blocks(path: Path, mapping: ColumnMapping, delimiter: str, block_rows: int) -> Iterator[_RawColumns]:
    layout = _csv_layout(path, mapping, delimiter, block_size=max(block_rows * _CSV_BYTES_PER_ROW, 1 << 16))
    offset = 0
    try:
        reader = pa_csv.open_csv(str(path), layout.read_options, layout.parse_options, layout.convert_options)
        for batch in reader:
            if batch.num_rows:
                yield _csv_columns(batch, path, layout.wanted, layout.sources, offset)
                offset += batch.num_rows
    except (pa.ArrowException, OSError, EOFError) as err:
        layout.raise_error(err, path)


def _parquet_blocks(path: Path, mapping: ColumnMapping, block_rows: int) -> Iterator[_RawColumns]:
    parquet, sources = open_parquet(path, mapping, pre_buffer=False)
    offset = 0
    batches = parquet.iter_batches(batch_size=block_rows, columns=list(sources.values()))
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"not a readable Parquet file ({err})", path=path) from err
        if batch is None:
            return
        arrays = {canonical: pa.chunked_array([batch.column(i)]) for i, canonical in enumerate(sources)}
        yield _RawColumns(
            path=path,
            arrays=arrays,
            sources=sources,
            row_numbers=None,
            rows_read=batch.num_rows,
            row_offset=offset,
        )
        offset += batch.num_rows


def _within_block(err: DataError, raw: _RawColumns) -> DataError:
    """``err`` with its row count marked as counted within the block it was found in."""
    if not err.rows:
        return err
    first, last = raw.row_offset + 1, raw.row_offset + raw.rows_read
    return DataError(
        f"{err.problem} (rows counted within rows {first:,}-{last:,}, "
        "the block read when the first was found)",
        path=err.path,
        rows=err.rows,
        n_rows=err.n_rows,
        column=err.column,
        expected=err.expected,
    )


def _late_rows(rows: _Rows, carry: tuple[str, int] | None) -> tuple[np.ndarray, tuple[str, int] | None]:
    """Each row's late flag (its key below the largest before it, ``carry`` being the largest of the
    blocks before) and the largest key including this block."""
    users = rows.columns["user_id"].combine_chunks()
    timestamps = rows.columns["timestamp"].view(np.int64)
    n = len(timestamps)
    if n == 0:
        return np.zeros(0, dtype=bool), carry
    before, after = users.slice(0, n - 1), users.slice(1)
    descending = pc.less(after, before).to_numpy(zero_copy_only=False)
    same_user = pc.equal(after, before).to_numpy(zero_copy_only=False)
    descending |= same_user & (timestamps[1:] < timestamps[:-1])
    first = (users[0].as_py(), int(timestamps[0]))
    if not descending.any() and (carry is None or first >= carry):
        return np.zeros(n, dtype=bool), (users[n - 1].as_py(), int(timestamps[n - 1]))
    if carry is not None:  # the largest key so far leads, as a row before the block
        users = pa.concat_arrays([pa.array([carry[0]], users.type), users])
        timestamps = np.concatenate([[carry[1]], timestamps])
    names, rank = _sorted_codes(pa.chunked_array([users]))
    key = _sort_key(rank, len(names), timestamps.view("datetime64[ns]"))
    late = late_keys(key)
    top = int(np.argmax(key))
    new_carry = (users[top].as_py(), int(timestamps[top]))
    return (late[1:] if carry is not None else late), new_carry
