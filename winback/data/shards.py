"""Per-user period panels of logs larger than memory: built a shard of users at a time, stored as
Parquet shards, read back one shard at a time.

:func:`ingest_log` reads a log in validated blocks (:mod:`winback.data.stream`: the checks and
messages of :func:`~winback.data.io.read_event_log`) and partitions their canonical rows by a hash
of the user id (DuckDB's) into one LZ4 Arrow spill file per shard, on disk. Each partition holds
every row of its users, so it becomes its shard's :class:`PeriodPanel` with the code an in-memory
log goes through (exact duplicates dropped keeping the first in file order, then
:func:`~winback.data.panel.build_panel` on the log's common window): the shards together are the
panel of the whole log, exactly (tested). Peak memory follows the block and the largest shard, not
the log.

A panel directory holds ``panel.json`` (the layout, each shard's file and users, the load report;
hashed) and ``users-NNNNN.parquet`` shards (one row per user, each user's periods as fixed-size
lists). :func:`open_panel` reads it; :meth:`ShardedPanel.load` gives one in-memory panel when it fits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from winback.checked_json import read_checked, with_hash
from winback.data.io import _assemble, _Rows, file_format
from winback.data.mapping import ColumnMapping
from winback.data.panel import (
    PERIOD_DAYS,
    USER_ARRAYS,
    PanelSpec,
    Period,
    PeriodPanel,
    build_panel,
    panel_window,
)
from winback.data.schema import EventLog, LoadReport
from winback.data.stream import DEFAULT_BLOCK_ROWS, StreamedLog, stream_log
from winback.errors import ConfigError, DataError
from winback.progress import progress_bar

MANIFEST = "panel.json"
KIND = ("format", "winback-panel-shards")
VERSION = ("version", 2)
ROWS_PER_SHARD = 4_000_000
"""Default shard size in log rows: a shard's panel is built in about 1 GiB."""
_NS_PER_DAY = 86_400 * 10**9
_ROW_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("timestamp", pa.int64()),
        ("event_type", pa.string()),
        ("value", pa.float64()),
        ("quantity", pa.float64()),
        ("intervention", pa.int8()),
        ("arm", pa.string()),
        ("late", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class ShardedPanel:
    """A panel stored as user shards (see the module docstring)."""

    path: Path
    spec: PanelSpec
    shard_files: tuple[str, ...]
    shard_users: tuple[int, ...]
    report: LoadReport
    last_day: str
    """ISO date of the log's last event."""
    notes: tuple[str, ...] = ()
    """The panel's own notes (cells whose counts saturated), as :attr:`PeriodPanel.notes`."""

    @property
    def n_users(self) -> int:
        return sum(self.shard_users)

    @property
    def n_shards(self) -> int:
        return len(self.shard_files)

    @property
    def complete_periods(self) -> int:
        """Periods from the origin that end on or before the log's last day."""
        days = (dt.date.fromisoformat(self.last_day) - self.spec.origin_date).days + 1
        return min(days // self.spec.period_days, self.spec.n_periods)

    def shard(self, index: int) -> PeriodPanel:
        """One shard's users (sorted by id) as an in-memory panel."""
        return _read_shard(
            self.path / self.shard_files[index], self.spec, self.shard_users[index], self.notes
        )

    def shard_column(self, index: int, name: str) -> np.ndarray:
        """One per-user array of shard ``index`` (``first_period``, ...), read alone."""
        path = self.path / self.shard_files[index]
        try:
            return pq.read_table(path, columns=[name])[name].to_numpy()
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read the panel shard ({err})", path=path) from err

    def __iter__(self) -> Iterator[PeriodPanel]:
        return (self.shard(index) for index in range(self.n_shards))

    def head(self, n_shards: int, out: str | Path) -> ShardedPanel:
        """The panel of the first ``n_shards`` shards (a random sample of the users: shards are hash
        buckets), written to ``out`` as a manifest and links to these shards' files."""
        if not 1 <= n_shards <= self.n_shards:
            raise ConfigError(f"n_shards = {n_shards} (allowed: 1 to the panel's {self.n_shards})")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name in self.shard_files[:n_shards]:
            (out / name).unlink(missing_ok=True)
            (out / name).symlink_to((self.path / name).resolve())
        head = dataclasses.replace(
            self, path=out, shard_files=self.shard_files[:n_shards], shard_users=self.shard_users[:n_shards]
        )
        _write_manifest(head)
        return head

    def load(self) -> PeriodPanel:
        """Every user in one panel, sorted by id: what ``build_panel(read_event_log(...))`` gives."""
        parts = list(self)
        user_ids = np.concatenate([part.user_ids for part in parts])
        order = np.argsort(user_ids.astype(str), kind="stable")
        fields = {
            name: np.concatenate([getattr(part, name) for part in parts])[order] for name in USER_ARRAYS
        }
        return PeriodPanel(spec=self.spec, user_ids=user_ids[order], notes=self.notes, **fields)


def ingest_log(
    source: str | Path,
    out: str | Path,
    *,
    mapping: ColumnMapping | str | None = None,
    purchase_event: str = "purchase",
    event_types: Iterable[str] | None = None,
    delimiter: str = ",",
    period: Period = "week",
    origin: str | dt.date | None = None,
    end: str | dt.date | None = None,
    shards: int | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    temp_directory: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
) -> ShardedPanel:
    """Validate a log of any size and write its panel as user shards into ``out``.

    Reading and window arguments are :func:`read_event_log`'s and :func:`build_panel`'s. ``shards``
    defaults to one per :data:`ROWS_PER_SHARD` rows of the log (counted from a Parquet file's
    metadata, estimated from a CSV file's size). The rows are partitioned on disk in
    ``temp_directory`` (default: the system's temporary directory); ``workers`` processes build
    the shards' panels.
    """
    if period not in PERIOD_DAYS:
        raise DataError(f"unknown period '{period}'", expected=f"one of {sorted(PERIOD_DAYS)}")
    if workers < 1:
        raise ConfigError(f"workers = {workers} (allowed: at least 1)")
    log = stream_log(
        source,
        mapping=mapping,
        purchase_event=purchase_event,
        event_types=event_types,
        delimiter=delimiter,
        block_rows=block_rows,
    )
    estimated_rows = _estimated_rows(log)
    n_shards = shards if shards is not None else max(1, math.ceil(estimated_rows / ROWS_PER_SHARD))
    if n_shards < 1:
        raise DataError(f"{n_shards} shards", expected="at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=temp_directory, prefix="winback-ingest-") as spill:
        partitions = Path(spill) / "rows"
        with progress_bar(enabled=progress) as bar:
            task = bar.add_task("reading the log (rows)", total=estimated_rows)
            _partition(log, partitions, n_shards, lambda n: bar.advance(task, n))
            spec = _spec(log, period, origin, end)
            shard_task = bar.add_task("building shards", total=n_shards)
            jobs = [(partitions / f"{k}.arrow", spec, out / _shard_name(k)) for k in range(n_shards)]
            built = []
            with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
                for result in map(_build_shard, jobs) if pool is None else pool.map(_build_shard, jobs):
                    built.append(result)
                    bar.advance(shard_task)
    kept = [(k, result) for k, result in enumerate(built) if result.users]
    report = LoadReport(
        source=str(log.path),
        rows_read=log.rows_read,
        duplicate_rows_dropped=sum(result.duplicates for _, result in kept),
        out_of_order_rows=sum(result.out_of_order for _, result in kept),
        rows_without_user=log.rows_without_user,
        notes=tuple(log.notes()),
    )
    panel = ShardedPanel(
        path=out,
        spec=spec,
        shard_files=tuple(_shard_name(k) for k, _ in kept),
        shard_users=tuple(result.users for _, result in kept),
        report=report,
        last_day=str(np.datetime64(log.last_timestamp // _NS_PER_DAY, "D")),
        notes=tuple(note for _, result in kept for note in result.notes),
    )
    _write_manifest(panel)
    return panel


def is_sharded_panel(path: str | Path) -> bool:
    """Whether ``path`` is a directory written by :func:`ingest_log`."""
    return (Path(path) / MANIFEST).is_file()


def open_panel(path: str | Path) -> ShardedPanel:
    """The sharded panel in directory ``path`` (written by :func:`ingest_log`)."""
    path = Path(path)
    body = read_checked(
        path / MANIFEST,
        kind=KIND,
        version=VERSION,
        what="sharded panel",
        remedy="write it again with `winback data panel`",
    )
    report = dict(body["report"])
    report["notes"] = tuple(report["notes"])
    return ShardedPanel(
        path=path,
        spec=PanelSpec.from_json(body["spec"]),
        shard_files=tuple(shard["file"] for shard in body["shards"]),
        shard_users=tuple(int(shard["users"]) for shard in body["shards"]),
        report=LoadReport(**report),
        last_day=body["last_day"],
        notes=tuple(body["notes"]),
    )


# --- Partitioning ------------------------------------------------------------------------------------


def _partition(log: StreamedLog, out: Path, n_shards: int, advance: Callable[[int], None]) -> None:
    """Write the log's canonical rows (:data:`_ROW_SCHEMA`) into one LZ4 Arrow file per shard, a
    user's rows all in shard ``hash(user_id) % n_shards`` (DuckDB's hash of the text). Blocks come in
    file order and a stable sort splits each, so every shard's file keeps its rows in file order."""
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    connection = duckdb.connect()
    try:
        for rows in log.blocks():
            batch = _canonical_batch(rows)
            shard = _shard_of(connection, batch.column(0), n_shards)
            order = np.argsort(shard, kind="stable")
            bounds = np.searchsorted(shard[order], np.arange(n_shards + 1))
            batch = batch.take(pa.array(order))
            for k in np.flatnonzero(np.diff(bounds)):
                if k not in writers:
                    writers[k] = pa.ipc.new_file(str(out / f"{k}.arrow"), _ROW_SCHEMA, options=options)
                writers[k].write_batch(batch.slice(bounds[k], bounds[k + 1] - bounds[k]))
            advance(batch.num_rows)
    finally:
        connection.close()
        for writer in writers.values():
            writer.close()


def _shard_of(connection: duckdb.DuckDBPyConnection, user_id: pa.Array, n_shards: int) -> np.ndarray:
    """Each row's shard, hashing each distinct id once."""
    names = pc.unique(user_id)
    connection.register("user_names", pa.table({"user_id": names}))
    query = f"SELECT hash(user_id) % {int(n_shards)} AS shard FROM user_names"
    of_name = connection.sql(query).fetchnumpy()["shard"].astype(np.int64)
    connection.unregister("user_names")
    return of_name[pc.index_in(user_id, value_set=names).to_numpy()]


def _canonical_batch(rows: _Rows) -> pa.RecordBatch:
    """One block's rows as an Arrow batch of :data:`_ROW_SCHEMA`."""
    columns = rows.columns
    return pa.record_batch(
        [
            columns["user_id"].combine_chunks().cast(pa.string()),
            pa.array(columns["timestamp"].view(np.int64)),
            columns["event_type"].combine_chunks().cast(pa.string()),
            pa.array(columns["value"]),
            pa.array(columns["quantity"]),
            pa.array(columns["intervention"]),
            columns["arm"].combine_chunks().cast(pa.string()),
            pa.array(rows.late),
        ],
        schema=_ROW_SCHEMA,
    )


def _estimated_rows(log: StreamedLog) -> int:
    """Rows of the log: exact for Parquet (metadata), estimated from the bytes of a CSV file."""
    total = 0
    for path in log.files():
        if file_format(path) == "parquet":
            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except (pa.ArrowException, OSError) as err:
                raise DataError(f"not a readable Parquet file ({err})", path=path) from err
        else:
            total += path.stat().st_size // 40
    return total


# --- Shards ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BuiltShard:
    users: int
    duplicates: int
    out_of_order: int
    notes: tuple[str, ...]


def _build_shard(job: tuple[Path, PanelSpec, Path]) -> _BuiltShard:
    """One partition's rows -> its users' panel, written to ``out``."""
    partition, spec, out = job
    if not partition.exists():
        return _BuiltShard(users=0, duplicates=0, out_of_order=0, notes=())
    with pa.memory_map(str(partition)) as source:
        table = pa.ipc.open_file(source).read_all()  # in file order: see _partition
    rows = _Rows(
        columns={
            "user_id": table["user_id"],
            "timestamp": table["timestamp"].to_numpy().view("datetime64[ns]"),
            "event_type": table["event_type"],
            "value": table["value"].to_numpy(),
            "quantity": table["quantity"].to_numpy(),
            "intervention": table["intervention"].to_numpy(),
            "arm": table["arm"],
        },
        distinct=False,
        late=table["late"].to_numpy(),
    )
    del table
    events, duplicates, out_of_order = _assemble([rows])
    log = EventLog(
        events=events,
        report=LoadReport(source=str(partition), rows_read=len(events)),
        purchase_event=spec.purchase_event,
        declared_event_types=spec.event_types,
    )
    end = spec.period_start(spec.n_periods)
    panel = build_panel(log, period=spec.period, origin=spec.origin, end=end)
    _write_shard(panel, out)
    return _BuiltShard(
        users=panel.n_users, duplicates=duplicates, out_of_order=out_of_order, notes=panel.notes
    )


def _spec(
    log: StreamedLog, period: Period, origin: str | dt.date | None, end: str | dt.date | None
) -> PanelSpec:
    """The panel's layout: the window :func:`build_panel` would choose for the whole log."""
    first_day, last_day = log.first_timestamp // _NS_PER_DAY, log.last_timestamp // _NS_PER_DAY
    window = panel_window(first_day, last_day, period, origin, end)
    if not window.covers:
        days = np.array([first_day, last_day]).astype("datetime64[D]")
        raise window.outside(f"events from {days[0]} to {days[1]}", log.path)
    types = set(log.declared) if log.declared else set(log.event_types_seen)
    types.discard(log.purchase_event)
    return PanelSpec(
        period=period,
        origin=str(window.origin),
        n_periods=window.n_periods,
        event_types=(*sorted(types), log.purchase_event),
        purchase_event=log.purchase_event,
    )


def _shard_name(index: int) -> str:
    return f"users-{index:05d}.parquet"


def _write_shard(panel: PeriodPanel, path: Path) -> None:
    n = panel.n_users

    def per_user(array: np.ndarray) -> pa.Array:
        flat = np.ascontiguousarray(array).reshape(n, -1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])

    columns = {"user_id": pa.array(panel.user_ids.astype(str).tolist(), pa.string())}
    for name in USER_ARRAYS:
        array = getattr(panel, name)
        columns[name] = per_user(array) if array.ndim > 1 else pa.array(array)
    pq.write_table(pa.table(columns), path, use_dictionary=False)  # half the time to write and read


def _read_shard(path: Path, spec: PanelSpec, n_users: int, notes: tuple[str, ...]) -> PeriodPanel:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot read the panel shard ({err})", path=path) from err
    if table.num_rows != n_users:
        raise DataError(
            f"the shard has {table.num_rows} users where {MANIFEST} records {n_users}",
            path=path,
            expected="the shard written with the manifest",
        )
    return panel_of_rows(table, spec, notes)


def panel_of_rows(table: pa.Table, spec: PanelSpec, notes: tuple[str, ...] = ()) -> PeriodPanel:
    """The panel of some rows of a shard (one row per user), e.g. a batch read by Ray Data."""
    n_users = table.num_rows
    shapes = {
        "counts": (n_users, spec.n_periods, len(spec.event_types)),
        "spend": (n_users, spec.n_periods),
        "interventions": (n_users, spec.n_periods, len(spec.interventions)),
        "last_purchase_day": (n_users, spec.n_periods),
    }
    fields = {}
    for name in USER_ARRAYS:
        column = table[name].combine_chunks()
        fields[name] = (
            column.flatten().to_numpy().reshape(shapes[name]) if name in shapes else column.to_numpy()
        )
    user_ids = np.asarray(table["user_id"].to_pylist(), dtype=object)
    return PeriodPanel(spec=spec, user_ids=user_ids, notes=notes, **fields)


def _write_manifest(panel: ShardedPanel) -> None:
    body = {
        KIND[0]: KIND[1],
        VERSION[0]: VERSION[1],
        "spec": panel.spec.to_json(),
        "shards": [
            {"file": name, "users": users}
            for name, users in zip(panel.shard_files, panel.shard_users, strict=True)
        ],
        "report": dataclasses.asdict(panel.report),
        "last_day": panel.last_day,
        "notes": list(panel.notes),
    }
    (panel.path / MANIFEST).write_text(json.dumps(with_hash(body), indent=2) + "\n")
