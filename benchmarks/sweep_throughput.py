"""Sweep throughput: a 16-cell sweep on the local backend and on a local Ray, with 1 and 2 workers.

    python benchmarks/sweep_throughput.py --out runs/sweep_throughput            # full (minutes)
    python benchmarks/sweep_throughput.py --out runs/sweep_throughput --quick    # smoke

The sweep: scenario ``default``, grid ``contacts.coupon.discount = 0.1, 0.15, 0.2, 0.3`` x
``fatigue.half_life = 2, 4, 6, 8`` (16 cells); policies ``no_contact``, ``fixed_cadence`` and
``interest_threshold`` tuned per cell on quick grids (1,000 training users, 1 tuning seed), then
evaluated on every evaluation user (4,701) under 2 seeds, sharded by 1,200 users (exact: both rules
decide per user and the scenario has no shared limits). Each configuration runs the same sweep;
the script checks that all give the same table, and reports the wall time of the whole sweep
(backend start included), of its evaluation stage, and evaluation user-periods per second, with
the ratio of 2 workers to 1 worker. The load average at start and end is reported. Writes
``sweep_throughput.json`` and ``sweep_throughput.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import pandas as pd

from winback.benchmarks.backends import make_backend
from winback.benchmarks.suite import BenchConfig
from winback.benchmarks.sweep import run_sweep
from winback.benchmarks.sweep.grid import GridAxis, SweepConfig
from winback.scenarios.files import to_document
from winback.scenarios.scenario import load_scenario

GRID = ("coupon.discount=0.1,0.15,0.2,0.3", "fatigue.half_life=2,4,6,8")
CONFIGURATIONS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


def sweep_config(quick: bool) -> SweepConfig:
    document = to_document(load_scenario("default"))
    grid = ("coupon.discount=0.1,0.3", "fatigue.half_life=2,8") if quick else GRID
    bench = BenchConfig(
        policies=("no_contact", "fixed_cadence", "interest_threshold"),
        seeds=2,
        tuning_seeds=1,
        tuning_users=200 if quick else 1000,
        eval_users=400 if quick else 0,
        quick=True,
        shard_users=100 if quick else 1200,
    )
    return SweepConfig(bench, tuple(GridAxis.parse(t, document) for t in grid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    config = sweep_config(args.quick)
    load_start = os.getloadavg()
    rows, tables = [], {}
    for backend_name, workers in CONFIGURATIONS:
        started = time.perf_counter()
        backend = make_backend(backend_name, workers, progress=False)  # type: ignore[arg-type]
        try:
            result = run_sweep(config, backend, args.out / f"{backend_name}-{workers}")
        finally:
            backend.close()
        wall = time.perf_counter() - started
        tables[(backend_name, workers)] = result.table
        rows.append(
            {
                "backend": backend_name,
                "workers": workers,
                "cells": len(config.cells),
                "tasks": result.tasks,
                "wall_seconds": wall,
                "evaluation_seconds": result.seconds["evaluation"],
                "user_periods": result.user_periods,
                "user_periods_per_second": result.user_periods / result.seconds["evaluation"],
            }
        )
        rate = rows[-1]["user_periods_per_second"]
        print(f"{backend_name} x{workers}: {wall:.1f} s, {rate:,.0f} user-periods/s")
    reference = tables[CONFIGURATIONS[0]]
    for key, table in tables.items():
        pd.testing.assert_frame_equal(reference, table, obj=f"{key} table")
    load_end = os.getloadavg()
    for row in rows:
        one = next(r for r in rows if r["backend"] == row["backend"] and r["workers"] == 1)
        row["speedup_vs_1_worker"] = one["wall_seconds"] / row["wall_seconds"]
    summary = {
        "config": {
            "grid": {axis.key: list(axis.values) for axis in config.axes},
            "bench": dataclasses.asdict(config.bench) | {"agents": []},
        },
        "identical_tables": True,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "| backend | workers | wall (s) | speed-up vs 1 worker | evaluation (s) | user-periods/s |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r['backend']} | {r['workers']} | {r['wall_seconds']:.1f} | {r['speedup_vs_1_worker']:.2f}x "
            f"| {r['evaluation_seconds']:.1f} | {r['user_periods_per_second']:,.0f} |"
            for r in rows
        ),
        "",
        f"{len(config.cells)} cells, {rows[0]['tasks']['evaluation']} evaluation tasks, "
        f"{rows[0]['user_periods']:,} user-periods; identical tables on every configuration; "
        f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end.",
    ]
    (args.out / "sweep_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
