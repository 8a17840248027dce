"""Can winback build a weekly panel of 1,000,000 users x 78 weeks on this 2-core, 24 GiB machine?

Two steps, each its own process so that the measurement's peak RSS is clean:

    python benchmarks/panel_memory.py generate --users 1000000 --out runs/panel_memory
    python benchmarks/panel_memory.py measure --log runs/panel_memory/events_1000000.parquet

``generate`` simulates the log in chunks of users (``generate_synthetic_log``, one seed per chunk,
user ids prefixed by the chunk so they stay unique and the file stays sorted by user) and appends
each chunk to one Parquet file as row groups, so it never holds more than one chunk. The browsing
level is lowered from the default 3 views a week at full interest to ``--view-rate`` (1.0), which
gives about 54 rows per user (54M rows at 1M users) instead of about 105. ``--shuffle`` permutes
the rows within each chunk, so that the reader has to sort the whole log (a file not in
``(user_id, timestamp)`` order).

``measure`` times ``read_event_log`` and ``build_panel`` separately in one process and reports the
peak RSS (``ru_maxrss``) after each step, the RSS after import as a reference, rows per second, the
panel's array bytes and the load average, as JSON and as a markdown table row. A sampling thread
also records the highest RSS it sees during each step (it can miss short spikes; ``ru_maxrss``
cannot).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winback.data.io import read_event_log
from winback.data.panel import USER_ARRAYS, build_panel
from winback.data.schema import CANONICAL_COLUMNS
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log

GIB = 2**30
TABLE_HEADER = (
    "| users | rows | read s | panel s | peak RSS GiB (after read / overall) | RSS after import GiB "
    "| panel arrays GiB | load avg (1/5/15 min, at start / end) |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write a synthetic event log as one Parquet file")
    generate.add_argument("--users", type=int, default=1_000_000)
    generate.add_argument("--chunk", type=int, default=100_000, help="users per generated chunk")
    generate.add_argument("--view-rate", type=float, default=1.0, help="SyntheticConfig.view_rate_mean")
    generate.add_argument("--weeks", type=int, default=78)
    generate.add_argument(
        "--shuffle", action="store_true", help="shuffle the rows within each chunk (an unsorted file)"
    )
    generate.add_argument("--out", type=Path, default=Path("runs/panel_memory"))
    measure = commands.add_parser("measure", help="time read_event_log and build_panel on a log file")
    measure.add_argument("--log", type=Path, required=True)
    measure.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if args.command == "generate":
        run_generate(args)
    else:
        run_measure(args)


# --- generate ------------------------------------------------------------------------------------------


def run_generate(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"events_{args.users}{'_shuffled' if args.shuffle else ''}.parquet"
    n_chunks = -(-args.users // args.chunk)
    width = len(str(n_chunks - 1))
    started = time.perf_counter()
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in range(n_chunks):
            n_users = min(args.chunk, args.users - chunk * args.chunk)
            config = SyntheticConfig(
                n_users=n_users, n_periods=args.weeks, view_rate_mean=args.view_rate, seed=chunk
            )
            events = generate_synthetic_log(config).log.events[list(CANONICAL_COLUMNS)]
            # A fixed-width prefix keeps ids unique across chunks and the file sorted by user.
            events["user_id"] = f"c{chunk:0{width}d}-" + events["user_id"]
            if args.shuffle:
                events = events.take(np.random.default_rng(chunk).permutation(len(events)))
            table = pa.Table.from_pandas(events, preserve_index=False).replace_schema_metadata(None)
            del events
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=1_000_000)
            rows += table.num_rows
            print(
                f"chunk {chunk + 1}/{n_chunks}: {table.num_rows:,} rows, {rows:,} in total, "
                f"{time.perf_counter() - started:.0f} s, peak RSS {peak_rss() / GIB:.2f} GiB",
                flush=True,
            )
            del table
    finally:
        if writer is not None:
            writer.close()
    size = path.stat().st_size
    print(
        json.dumps(
            {
                "path": str(path),
                "users": args.users,
                "weeks": args.weeks,
                "view_rate_mean": args.view_rate,
                "shuffled": args.shuffle,
                "rows": rows,
                "row_groups": pq.ParquetFile(path).metadata.num_row_groups,
                "file_bytes": size,
                "file_mib": round(size / 2**20, 1),
                "seconds": round(time.perf_counter() - started, 1),
                "peak_rss_gib": round(peak_rss() / GIB, 2),
            },
            indent=2,
        )
    )


# --- measure -------------------------------------------------------------------------------------------


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RSSSampler:
    """Highest RSS seen, per labelled phase, by a thread polling ``/proc/self/statm``."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = current_rss()
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            time.sleep(self.interval)


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def run_measure(args: argparse.Namespace) -> None:
    rss_import = current_rss()
    peak_import = peak_rss()
    load_start = load_average()
    with RSSSampler() as sampler:
        sampler.phase = "read"
        started = time.perf_counter()
        log = read_event_log(args.log)
        read_seconds = time.perf_counter() - started
        peak_after_read = peak_rss()
        rss_after_read = current_rss()
        sampler.phase = "panel"
        started = time.perf_counter()
        panel = build_panel(log, period="week")
        panel_seconds = time.perf_counter() - started
        sampler.phase = "done"
    peak_overall = peak_rss()
    rss_end = current_rss()
    load_end = load_average()

    rows = len(log.events)
    numeric = {name: getattr(panel, name).nbytes for name in USER_ARRAYS}
    user_id_bytes = panel.user_ids.nbytes
    if panel.user_ids.dtype == object:  # pointers above, the str objects here
        user_id_bytes += sum(sys.getsizeof(u) for u in panel.user_ids)
    events_bytes = int(log.events.memory_usage(deep=True).sum())
    result = {
        "log": str(args.log),
        "file_mib": round(args.log.stat().st_size / 2**20, 1),
        "users": panel.n_users,
        "periods": panel.spec.n_periods,
        "event_types": list(panel.spec.event_types),
        "rows": rows,
        "rows_read": log.report.rows_read,
        "duplicates_dropped": log.report.duplicate_rows_dropped,
        "read_seconds": round(read_seconds, 2),
        "panel_seconds": round(panel_seconds, 2),
        "read_rows_per_s": round(rows / read_seconds),
        "panel_rows_per_s": round(rows / panel_seconds),
        "rss_after_import_gib": round(rss_import / GIB, 3),
        "peak_rss_after_import_gib": round(peak_import / GIB, 3),
        "peak_rss_after_read_gib": round(peak_after_read / GIB, 3),
        "rss_after_read_gib": round(rss_after_read / GIB, 3),
        "peak_rss_gib": round(peak_overall / GIB, 3),
        "rss_end_gib": round(rss_end / GIB, 3),
        "sampled_peak_gib": {phase: round(v / GIB, 3) for phase, v in sampler.peaks.items()},
        "event_frame_gib": round(events_bytes / GIB, 3),
        "panel_numeric_gib": round(sum(numeric.values()) / GIB, 3),
        "panel_user_ids_gib": round(user_id_bytes / GIB, 3),
        "panel_array_bytes": numeric | {"user_ids": user_id_bytes},
        "panel_notes": list(panel.notes),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "python": sys.version.split()[0],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(TABLE_HEADER)
    print(table_row(result))


def table_row(r: dict) -> str:
    panel_gib = r["panel_numeric_gib"] + r["panel_user_ids_gib"]
    return (
        f"| {r['users']:,} | {r['rows']:,} | {r['read_seconds']:.1f} | {r['panel_seconds']:.1f} "
        f"| {r['peak_rss_after_read_gib']:.2f} / {r['peak_rss_gib']:.2f} | {r['rss_after_import_gib']:.2f} "
        f"| {panel_gib:.2f} | {r['load_average_start']} / {r['load_average_end']} |"
    )


if __name__ == "__main__":
    main()
