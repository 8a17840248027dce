"""A benchmark of a million users and more, in user shards: ``winback bench``'s wall time and peak
memory on the held-out users of a log's panel in shards, in one process and in shards on the
backends, and the same table from each.

1. The population: the first shards of a panel written by ``winback data panel`` (hash buckets of
   users: a random sample), as many as hold ``--users`` held-out users at ``--eval-share``, written
   as a panel of links (``ShardedPanel.head``); the scenario: that panel, ``--horizon`` periods.
2. The decay model: the LSTM fitted a shard at a time (``fit_shards``) on the panel's first shard.
3. ``run_benchmark`` of ``--policies`` under ``--seeds`` seeds, each run in its own process (peak RSS
   of its process tree, sampled from /proc): ``one-process`` (every policy on all users, in the
   process), then in shards of ``--shard-users`` held-out users on each ``--runs`` backend and
   worker count. The tables must agree (float32 sums aside: the script fails otherwise).
4. The reference, in the same run: the simulator's own step (every action none, one thread) on a
   shard's users; a run's evaluation speed is its simulated user-periods over the compute time of
   its policies' runs (summed over tasks).

Writes ``OUT/results.json`` and ``OUT/report.md``.

    python benchmarks/bench_scale.py --panel runs/panel10m --out runs/bench_scale --users 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ingest_scale import TreeMemory

REFERENCE_STEPS = 5


def prepare(args: argparse.Namespace) -> Path:
    """The population's panel, the fitted model and the scenario file in ``OUT``; the scenario's path."""
    from winback.data.shards import open_panel
    from winback.decay_model.artifact import save_model
    from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel

    out = args.out
    scenario = out / "scenario.toml"
    if scenario.is_file():
        return scenario
    panel = open_panel(args.panel)
    held_out, count = 0.0, 0
    for count, users in enumerate(panel.shard_users, start=1):  # noqa: B007 - count is used after the loop
        held_out += users * args.eval_share
        if held_out >= args.users:
            break
    panel.head(count, out / "population")
    started = time.perf_counter()
    model = LSTMDecayModel(LSTMConfig(max_epochs=args.fit_epochs))
    model.fit_shards(panel.head(1, out / "fit-panel"), until=panel.spec.n_periods // 2, seed=0, progress=True)
    save_model(model, out / "model")
    print(f"fitted the LSTM on one shard in {time.perf_counter() - started:.0f} s", flush=True)
    scenario.write_text(
        f'name = "scale"\ndescription = "The first {count} shards of {args.panel}."\n'
        f"horizon = {args.horizon}\neval_share = {args.eval_share}\n"
        f'[population]\nlog = "population"\n[model]\nartifact = "model"\n'
    )
    return scenario


def reference_throughput(scenario_path: Path) -> dict[str, float]:
    """The simulator's step on one shard's held-out users, every action none, one thread."""
    import numpy as np
    import torch

    from winback.scenarios.scenario import load_scenario

    torch.set_num_threads(1)
    scenario = load_scenario(scenario_path)
    users = scenario.eval_users_in_shards(0, 1).copy()
    simulator = scenario.simulator_for(0)
    none = np.zeros(users.n_users, dtype=np.int64)
    times = []
    for t in range(REFERENCE_STEPS):
        shift = scenario.demand.shift(np.full(users.n_users, t), users.recency)
        started = time.perf_counter()
        simulator.step(users, none, min_gap=scenario.min_contact_gap, demand_shift=shift)
        times.append(time.perf_counter() - started)
    return {"users": users.n_users, "user_periods_per_second": users.n_users / float(np.median(times))}


def measure(scenario: Path, args: argparse.Namespace, run: str) -> dict[str, Any]:
    """One benchmark run in this process (one thread, as ``winback bench`` by default): wall time, peak
    RSS, the table."""
    import dataclasses

    from winback.benchmarks.backends import make_backend
    from winback.benchmarks.suite import BenchConfig, run_benchmark
    from winback.simulator.threads import one_thread_per_process

    config = BenchConfig(
        scenario=str(scenario),
        policies=tuple(args.policies.split(",")),
        seeds=args.seeds,
        tuning_seeds=1,
        quick=True,
    )
    one_thread_per_process()
    backend = None
    if run != "one-process":
        name, workers = run.split("-")
        config = dataclasses.replace(config, shard_users=args.shard_users)
        backend = make_backend(name, int(workers), progress=False)  # type: ignore[arg-type]
    started = time.perf_counter()
    with TreeMemory() as memory:
        try:
            result = run_benchmark(config, args.out / run, progress=False, backend=backend)
        finally:
            if backend is not None:
                backend.close()
    seconds = time.perf_counter() - started
    users = result.runs[0].metrics["net_value"].shape[1]
    compute = sum(r.seconds for r in result.runs)
    intervals = interval_check(result.runs) if run == "one-process" else {}
    user_periods = users * args.horizon * args.seeds * len(result.runs)
    return {
        "run": run,
        "users": users,
        "seconds": round(seconds, 1),
        "evaluation_compute_seconds": round(compute, 1),
        "evaluation_user_periods_per_compute_second": user_periods / compute,
        "peak_rss_gib": round(memory.peak / 2**30, 3),
        "table": result.table.drop(columns="seconds").to_dict("records"),
        "intervals": intervals,
    }


def interval_check(runs: list[Any]) -> dict[str, float]:
    """On the first ``BOOTSTRAP_MAX_USERS`` users, how far Student's t interval of each policy's
    mean net value and of its paired difference to the first policy lies from BCa's: the largest
    distance between their bounds, as a share of BCa's width."""
    import numpy as np

    from winback.benchmarks import stats

    n = stats.BOOTSTRAP_MAX_USERS
    worst: dict[str, float] = {"mean": 0.0, "paired_difference": 0.0}
    for run in runs:
        values = {
            "mean": run.metrics["net_value"][:, :n],
            "paired_difference": run.metrics["net_value"][:, :n] - runs[0].metrics["net_value"][:, :n],
        }
        for key, data in values.items():
            if run is runs[0] and key == "paired_difference":
                continue
            bca = stats.mean_ci(data, rng=np.random.default_rng(0))
            t = stats.mean_ci(data, rng=np.random.default_rng(0), bootstrap_max_users=0)
            width = bca.high - bca.low
            worst[key] = max(worst[key], abs(t.low - bca.low) / width, abs(t.high - bca.high) / width)
    return {**worst, "users": n}


def compare(tables: dict[str, list[dict[str, Any]]]) -> float:
    """The largest relative difference of any number between a run's table and the one-process one."""
    base = tables["one-process"]
    worst = 0.0
    for rows in tables.values():
        assert [r["policy"] for r in rows] == [r["policy"] for r in base], "the same order"
        for row, ref in zip(rows, base, strict=True):
            for key, value in ref.items():
                if isinstance(value, float) and value == value:
                    worst = max(worst, abs(row[key] - value) / max(abs(value), 1e-12))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--panel", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=1_000_000, help="Held-out users (at least).")
    parser.add_argument("--eval-share", type=float, default=0.2)
    parser.add_argument("--horizon", type=int, default=26)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--policies", default="no_contact,recency_rule,interest_threshold,random")
    parser.add_argument("--shard-users", type=int, default=100_000)
    parser.add_argument("--fit-epochs", type=int, default=3)
    parser.add_argument("--runs", default="one-process,local-1,local-2,ray-2")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scenario = args.out / "scenario.toml"
    if args.child:
        result = measure(scenario, args, args.child)
        (args.out / f"{args.child}.json").write_text(json.dumps(result, indent=2))
        return
    scenario = prepare(args)
    reference = reference_throughput(scenario)
    print(f"reference: the simulator's step at {reference['user_periods_per_second']:,.0f} user-periods/s")
    rows = []
    for run in args.runs.split(","):
        command = [sys.executable, __file__, *sys.argv[1:], "--child", run]
        subprocess.run(command, check=True)
        rows.append(json.loads((args.out / f"{run}.json").read_text()))
        print(f"{run}: {rows[-1]['seconds']} s, peak {rows[-1]['peak_rss_gib']} GiB", flush=True)
    worst = compare({row["run"]: row["table"] for row in rows})
    if worst > 1e-5:
        raise SystemExit(f"the tables differ: largest relative difference {worst:.2e}")
    one = next(row for row in rows if row["run"] == "one-process")
    lines = [
        "# A benchmark of a million users in user shards",
        "",
        f"`python {' '.join(sys.argv)}`",
        "",
        f"{one['users']:,} held-out users x {args.horizon} periods x {args.seeds} seed(s), policies "
        f"{args.policies}; shards of about {args.shard_users:,} held-out users. Reference: the "
        f"simulator's step (every action none, one thread, {reference['users']:,} users): "
        f"{reference['user_periods_per_second']:,.0f} user-periods/s. Tables: largest relative "
        f"difference from one process {worst:.1e}. Student's t intervals against BCa's on the first "
        f"{one['intervals']['users']:,} users: bounds apart by at most "
        f"{one['intervals']['mean']:.1%} (means) and {one['intervals']['paired_difference']:.1%} "
        "(paired differences to the first policy) of BCa's width.",
        "",
        "| run | wall s | x one process | peak RSS GiB | evaluation user-periods per compute second | "
        "x simulator step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        speed = row["evaluation_user_periods_per_compute_second"]
        lines.append(
            f"| {row['run']} | {row['seconds']} | {one['seconds'] / row['seconds']:.2f} | "
            f"{row['peak_rss_gib']} | {speed:,.0f} | {speed / reference['user_periods_per_second']:.2f} |"
        )
    lines += ["", "| policy | net value per user [95% CI] |", "|---|---|"]
    for r in one["table"]:
        interval = f"{r['net_value']:.3f} [{r['net_value_low']:.3f}, {r['net_value_high']:.3f}]"
        lines.append(f"| {r['policy']} | {interval} |")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    summary = {"reference": reference, "largest_relative_difference": worst, "runs": rows}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
