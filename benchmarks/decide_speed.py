"""Batch decisions at scale: ``winback decide`` on a table of millions of users against its own parts
measured alone in the same run, each in its own process (wall time, peak RSS of the process):

- ``read``: pyarrow reading the users table, block by block (the floor of any batch job);
- ``graphs``: onnxruntime's raw throughput on the same rows: ``state_update.onnx`` then
  ``policy.onnx``, block by block, from arrays already in memory (no reading, validation or writing);
- ``write``: pyarrow writing tables the size of the run's decisions and states;
- ``decide``: ``decide_table`` end to end (read, validate, state update, records, features, masks,
  policy, exploration, draws, write);
- ``decide_limited`` (with ``--limit ACTION=USERS``): the same under limits, its pricing pass on a
  sample of :data:`~winback.export.runtime.batch.SAMPLE_USERS` included.

The users table: the scenario's evaluation users after two periods of random contacts (their states,
and the activity of a third), repeated with new ids to ``--users`` rows, written once into ``OUT``
(``--format csv``: as CSV). Repeated states compress better than a shop's would: ``--distinct`` gives
every row its own state (the LSTM's hidden and cell states and the spend jittered by a seeded 1%).
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

MEASURES = ("read", "graphs", "write", "decide", "decide_limited")
JITTER = 0.01


def write_table(export: Path, users: int, path: Path, *, distinct: bool, block: int = 200_000) -> None:
    """The users table of ``users`` rows (module docstring), Parquet or CSV by ``path``'s suffix."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
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
    schema = pa.schema([(USER, pa.string()), *zip(base.schema.names, base.schema.types, strict=True)])
    jittered = [name for name in base.schema.names if name.startswith(("hidden_", "cell_"))] + ["spend_total"]
    noise = np.random.default_rng(1)
    writer = pq.ParquetWriter(path, schema) if path.suffix == ".parquet" else pacsv.CSVWriter(path, schema)
    with writer:
        for start in range(0, users, block):
            rows = np.arange(start, min(start + block, users))
            block_table = base.take(pa.array(rows % base.num_rows))
            if distinct:
                for name in jittered:
                    values = block_table.column(name).to_numpy()
                    changed = values * (1 + JITTER * noise.standard_normal(len(rows)))
                    block_table = block_table.set_column(
                        block_table.schema.get_field_index(name), name, pa.array(changed.astype(values.dtype))
                    )
            writer.write_table(block_table.add_column(0, USER, pa.array([f"u{r}" for r in rows])))


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measure in this process: its wall time (and what it did)."""
    import numpy as np
    import pyarrow.parquet as pq

    from winback.cli.decide import parse_limits
    from winback.export.runtime import Exploration, ExportedArtifact
    from winback.export.runtime.batch import BATCH_ROWS, TableSpec, decide_table, read_blocks, validate

    table = args.out / f"users.{args.format}"
    started = time.perf_counter()
    if name == "read":
        rows = sum(batch.num_rows for batch in read_blocks(table, BATCH_ROWS))
        return {"rows": rows, "seconds": time.perf_counter() - started}
    if name in ("decide", "decide_limited"):
        limits = parse_limits(args.limit or []) if name == "decide_limited" else {}
        manifest = decide_table(
            args.export, table, args.out / f"{name}-out", exploration=Exploration("epsilon", epsilon=0.05),
            seed=0, limits=limits,
        )  # fmt: skip
        done = {"rows": manifest["users"], "seconds": time.perf_counter() - started}
        if limits:
            used = {a: sum(p["used"][a] for p in manifest["parts"]) for a in limits}
            cut = {a: sum(p["cut"][a] for p in manifest["parts"]) for a in limits}
            done |= {"limits": limits, "used": used, "cut": cut, "pricing": manifest["pricing"]}
        return done
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
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--distinct", action="store_true", help="Every row its own state.")
    parser.add_argument("--limit", action="append", help="ACTION=USERS (repeatable): also decide under them.")
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        with TreeMemory() as memory:
            result = measure(args.measure, args)
        print(json.dumps({**result, "peak_gib": memory.peak / 2**30}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / f"users.{args.format}"
    if not table.is_file():
        started = time.perf_counter()
        write_table(args.export, args.users, table, distinct=args.distinct)
        print(f"wrote {args.users:,} users in {time.perf_counter() - started:.0f} s", flush=True)
    results: dict[str, Any] = {
        "users": args.users, "export": str(args.export), "format": args.format, "distinct": args.distinct,
        "table_bytes": table.stat().st_size,
    }  # fmt: skip
    measured = ("read", "graphs", "decide", "write", *(("decide_limited",) if args.limit else ()))
    for name in measured:
        command = [sys.executable, __file__, "--export", str(args.export), "--users", str(args.users)]
        command += ["--format", args.format, *(f"--limit={limit}" for limit in args.limit or [])]
        done = subprocess.run(
            [*command, "--out", str(args.out), "--measure", name], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    per_minute = {name: 60 * results[name]["rows"] / results[name]["seconds"] for name in measured}
    results["users_per_minute"] = per_minute
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# winback decide on {args.users:,} users ({args.format}, {table.stat().st_size / 2**30:.2f} GiB"
        f"{', every row its own state' if args.distinct else ''})",
        "",
        "| measure | wall | users per minute | peak RSS |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {results[name]['seconds']:.1f} s | {per_minute[name] / 1e6:.2f}M "
            f"| {results[name]['peak_gib']:.2f} GiB |"
            for name in ("read", "graphs", "write", *measured[2:3], *measured[4:])
        ),
    ]
    if args.limit:
        limited = results["decide_limited"]
        lines += ["", f"Limits {limited['limits']}: used {limited['used']}, cut {limited['cut']}, "
                  f"prices {limited['pricing']['prices']}."]  # fmt: skip
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
