"""Batch decisions at scale: ``winback decide`` on a table of millions of users against its own parts
measured alone in the same run, each in its own process (wall time, peak RSS of the process):

- ``read``: pyarrow reading the users table, block by block (the floor of any batch job);
- ``graphs``: onnxruntime's raw throughput on the same rows: ``state_update.onnx`` then
  ``policy.onnx``, block by block, from arrays already in memory (no reading, validation or writing);
- ``write``: pyarrow writing tables the size of the run's decisions and states;
- ``decide``: ``decide_table`` end to end (read, validate, state update, records, features, masks,
  policy, exploration, draws, write).

The users table: the scenario's evaluation users after two periods of random contacts (their states,
and the activity of a third), repeated with new ids to ``--users`` rows, written once into ``OUT``.
Writes ``OUT/results.json`` and ``OUT/report.md``.

    python benchmarks/decide_speed.py --export runs/quickstart/export --users 1000000 --out runs/decide_speed
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

MEASURES = ("read", "graphs", "write", "decide")


def write_table(export: Path, users: int, path: Path, block: int = 200_000) -> None:
    """The users table of ``users`` rows (module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from winback.benchmarks.users_table import simulated_period
    from winback.export.runtime import ExportedArtifact
    from winback.export.runtime.batch import USER, TableSpec
    from winback.scenarios.scenario import load_scenario

    artifact = ExportedArtifact.load(export)
    spec = TableSpec.of(artifact)
    scenario = load_scenario(artifact.card["scenario"]["name"])
    simulator = scenario.simulator_for(0)
    state = scenario.eval_users().copy()
    rng = np.random.default_rng(0)
    for _ in range(2):
        simulator.step(state, rng.integers(0, len(simulator.actions), state.n_users))
    ids = np.array([f"u{i}" for i in range(state.n_users)], dtype=object)
    actions = rng.integers(0, len(simulator.actions), state.n_users)
    base = simulated_period(simulator, state, actions, spec, ids).drop_columns([USER])
    with pq.ParquetWriter(
        path, pa.schema([(USER, pa.string()), *zip(base.schema.names, base.schema.types, strict=True)])
    ) as writer:
        for start in range(0, users, block):
            rows = np.arange(start, min(start + block, users))
            block_table = base.take(pa.array(rows % base.num_rows))
            writer.write_table(block_table.add_column(0, USER, pa.array([f"u{r}" for r in rows])))


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measure in this process: its wall time (and what it did)."""
    import numpy as np
    import pyarrow.parquet as pq

    from winback.export.runtime import Exploration, ExportedArtifact
    from winback.export.runtime.batch import BATCH_ROWS, TableSpec, decide_table, read_blocks, validate

    table = args.out / "users.parquet"
    started = time.perf_counter()
    if name == "read":
        rows = sum(batch.num_rows for batch in read_blocks(table, BATCH_ROWS))
        return {"rows": rows, "seconds": time.perf_counter() - started}
    if name == "decide":
        out = args.out / "decide-out"
        manifest = decide_table(
            args.export, table, out, exploration=Exploration("epsilon", epsilon=0.05), seed=0
        )
        return {"rows": manifest["users"], "seconds": time.perf_counter() - started}
    if name == "write":
        decisions = pq.read_table(args.out / "decide-out" / "decisions")
        states = pq.read_table(args.out / "decide-out" / "states")
        started = time.perf_counter()
        for what, data in (("decisions", decisions), ("states", states)):
            for i, start in enumerate(range(0, data.num_rows, BATCH_ROWS)):
                pq.write_table(data.slice(start, BATCH_ROWS), args.out / f"write-{what}-{i:05d}.parquet")
        return {"rows": decisions.num_rows, "seconds": time.perf_counter() - started}
    # graphs: the same blocks, read and validated before the clock starts
    artifact = ExportedArtifact.load(args.export)
    spec = TableSpec.of(artifact)
    blocks, first = [], 0
    for batch in read_blocks(table, BATCH_ROWS):
        blocks.append(validate(batch, spec, artifact.actions, table, first))
        first += batch.num_rows
    n_features = len(artifact.feature_names)
    started = time.perf_counter()
    for users in blocks:
        contacts = np.zeros((len(users.ids), len(spec.model_kinds)), dtype=np.int64)
        artifact.state_update.step(users.states, users.counts, users.spend, contacts)
        observations = np.zeros((len(users.ids), n_features), dtype=np.float32)
        artifact.decide(observations, np.ones((len(users.ids), len(artifact.actions)), dtype=bool))
    return {"rows": first, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        with TreeMemory() as memory:
            result = measure(args.measure, args)
        print(json.dumps({**result, "peak_gib": memory.peak / 2**30}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "users.parquet"
    if not table.is_file():
        started = time.perf_counter()
        write_table(args.export, args.users, table)
        print(f"wrote {args.users:,} users in {time.perf_counter() - started:.0f} s", flush=True)
    results: dict[str, Any] = {"users": args.users, "export": str(args.export)}
    for name in ("read", "graphs", "decide", "write"):
        command = [sys.executable, __file__, "--export", str(args.export), "--users", str(args.users)]
        done = subprocess.run(
            [*command, "--out", str(args.out), "--measure", name], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    per_minute = {
        name: 60 * results[name]["rows"] / results[name]["seconds"]
        for name in ("read", "graphs", "decide", "write")
    }
    results["users_per_minute"] = per_minute
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# winback decide on {args.users:,} users",
        "",
        "| measure | wall | users per minute | peak RSS |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {results[name]['seconds']:.1f} s | {per_minute[name] / 1e6:.2f}M "
            f"| {results[name]['peak_gib']:.2f} GiB |"
            for name in ("read", "graphs", "write", "decide")
        ),
    ]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
