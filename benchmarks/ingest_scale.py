"""Ingestion at scale: winback's path from a log file to per-user period panels against DuckDB's own
raw group-by of the same file, and DuckDB doing the panel's aggregation, in the same run.

Each measurement runs in its own process, so each peak RSS is its own (with its worker processes,
sampled from /proc):

- ``raw``: DuckDB's plain count of rows per user, day and event type (one scan, one hash
  aggregation: the floor of any ingestion), under ``--memory-limit`` with a spill directory;
- ``sql``: DuckDB doing the panel's own aggregation, as the engine would if it were the ingestion:
  exact duplicate rows removed (``DISTINCT`` over every column), then each user's weekly cells per
  event type and contact kind with their counts and spend (no validation, no per-user arrays);
- ``pandas``: ``read_event_log`` (validation included) then ``build_panel`` (weekly periods), all
  in memory;
- ``shards``: ``ingest_log`` (the same validation in blocks, user shards of ~4M rows built by
  ``--workers`` processes, written as Parquet), the path for logs larger than memory.

The log is a ground-truth world's (``winback data generate --block-users``), written once into
``OUT`` unless ``--log`` names one. Writes ``OUT/results.json`` and ``OUT/report.md``.

    python benchmarks/ingest_scale.py --out runs/ingest --users 200000 --weeks 104
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MEASURES = ("raw", "sql", "pandas", "shards")
SQL = {
    "raw": "SELECT count(*) FROM (SELECT user_id, CAST(timestamp AS DATE), event_type, count(*) "
    "FROM {reader}(?) GROUP BY ALL)",
    "sql": "SELECT count(*) FROM (SELECT user_id, "
    "date_diff('day', DATE '2000-01-03', CAST(timestamp AS DATE)) // 7 AS week, event_type, intervention, "
    "count(*), sum(value) FROM (SELECT DISTINCT * FROM {reader}(?)) GROUP BY ALL)",
}
"""DuckDB's queries; ``sql``'s weeks start on Mondays, as the panels' do."""


class TreeMemory:
    """Peak resident memory of this process and its children (``--workers`` processes), sampled from
    /proc every 50 ms in a thread (getrusage gives one process's peak, or the largest child's)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, sum(_rss(pid) for pid in _tree(os.getpid())))


def _tree(pid: int) -> list[int]:
    pids, children = [pid], []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    for child in children:
        pids += _tree(child)
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(name: str, log: Path, memory_limit: str, workers: int) -> dict[str, Any]:
    """Run one measurement in this process: its wall time, peak RSS and what it produced."""
    with TreeMemory() as memory:
        result = _run(name, log, memory_limit, workers)
    result["peak_rss_gib"] = round(max(memory.peak, result["peak_rss_gib"] * 2**30) / 2**30, 3)
    return result


def _run(name: str, log: Path, memory_limit: str, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    if name in SQL:
        import duckdb

        with tempfile.TemporaryDirectory() as spill:
            connection = duckdb.connect(
                config={
                    "memory_limit": memory_limit,
                    "temp_directory": spill,
                    "preserve_insertion_order": False,
                }
            )
            reader = "read_parquet" if log.suffix in (".parquet", ".pq") else "read_csv"
            (cells,) = connection.execute(SQL[name].format(reader=reader), [str(log)]).fetchone()
        produced = {"user_day_type_cells" if name == "raw" else "user_week_type_contact_cells": int(cells)}
    elif name == "shards":
        from winback.data.shards import ingest_log

        with tempfile.TemporaryDirectory() as out:
            panel = ingest_log(log, out, workers=workers)
            produced = {
                "rows": panel.report.rows_read,
                "users": panel.n_users,
                "periods": panel.spec.n_periods,
            }
            produced |= {"duplicates": panel.report.duplicate_rows_dropped, "shards": panel.n_shards}
            produced["panel_mib"] = round(sum(p.stat().st_size for p in Path(out).iterdir()) / 2**20, 1)
    else:
        from winback.data.io import read_event_log
        from winback.data.panel import build_panel

        events = read_event_log(log)
        panel = build_panel(events)
        produced = {"rows": events.report.rows_read, "users": panel.n_users, "periods": panel.spec.n_periods}
        produced["duplicates"] = events.report.duplicate_rows_dropped
    return {
        "measure": name,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        **produced,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, help="A log to measure (default: generate one into OUT).")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--memory-limit", default="12GB", help="DuckDB's memory_limit.")
    parser.add_argument("--workers", type=int, default=2, help="Processes building the shards.")
    parser.add_argument(
        "--skip", choices=MEASURES[1:], action="append", default=[], help="Leave out a measure."
    )
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.log, args.memory_limit, args.workers)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.log or args.out / f"world-{args.users}x{args.weeks}.parquet"
    if not log.exists():
        generate = ["data", "generate", str(log), "--users", str(args.users), "--weeks", str(args.weeks)]
        subprocess.run([sys.executable, "-m", "winback.cli", *generate, "--no-progress"], check=True)
    results = []
    for name in (name for name in MEASURES if name not in args.skip):
        child = [sys.executable, __file__, "--out", str(args.out), "--log", str(log), "--measure", name]
        child += ["--memory-limit", args.memory_limit, "--workers", str(args.workers)]
        done = subprocess.run(child, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    raw = results[0]
    body = {
        "log": str(log),
        "bytes": log.stat().st_size,
        "memory_limit": args.memory_limit,
        "workers": args.workers,
    }
    body["results"] = results
    (args.out / "results.json").write_text(json.dumps(body, indent=2) + "\n")
    lines = [
        "# Ingestion: winback's path against DuckDB's raw group-by",
        "",
        f"`python benchmarks/ingest_scale.py --out {args.out}"
        f"{f' --log {args.log}' if args.log else f' --users {args.users} --weeks {args.weeks}'}"
        f"{''.join(f' --skip {name}' for name in args.skip)}`",
        "",
        f"{log.name}: {log.stat().st_size / 2**20:,.0f} MiB",
        "",
        "| measure | wall s | x raw | x sql | peak RSS GiB | x raw | produced |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    sql = next((row for row in results if row["measure"] == "sql"), None)
    for row in results:
        produced = {k: v for k, v in row.items() if k not in ("measure", "seconds", "peak_rss_gib")}
        versus_sql = f"{row['seconds'] / sql['seconds']:.2f}" if sql else ""
        lines.append(
            f"| {row['measure']} | {row['seconds']:.1f} | {row['seconds'] / raw['seconds']:.2f} | "
            f"{versus_sql} | {row['peak_rss_gib']:.2f} | {row['peak_rss_gib'] / raw['peak_rss_gib']:.2f} | "
            f"{produced} |"
        )
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
