"""``winback sweep``: a scenario's parameters on a grid, the policies benchmarked in every cell."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from winback.benchmarks.sweep import run_sweep
from winback.benchmarks.sweep.backends import default_workers, make_backend
from winback.benchmarks.sweep.grid import GridAxis, SweepConfig
from winback.cli.bench import (
    Agents,
    EvalUsers,
    Out,
    Progress,
    Quick,
    TuningSeeds,
    TuningUsers,
    bench_config,
)
from winback.scenarios.files import to_document
from winback.scenarios.scenario import load_scenario


def sweep(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario name or a scenario TOML file.")],
    out: Out,
    grid: Annotated[
        list[str],
        typer.Option(
            help="KEY=V1,V2,... of the scenario file (e.g. coupon.discount=0.1,0.2,0.3); repeatable."
        ),
    ],
    policies: Annotated[
        str, typer.Option(help="Comma-separated policies (as in bench; 'random' is not swept).")
    ] = "no_contact,fixed_cadence,interest_threshold",
    agent: Agents = None,
    seeds: Annotated[int, typer.Option(help="Evaluation seeds per cell.")] = 2,
    eval_users: EvalUsers = 0,
    tuning_seeds: TuningSeeds = 1,
    tuning_users: TuningUsers = 1000,
    quick: Quick = False,
    backend: Annotated[str, typer.Option(help="Where tasks run: 'local' processes or 'ray'.")] = "local",
    workers: Annotated[
        int, typer.Option(help="Parallel workers (local processes, or CPUs of a local Ray).")
    ] = default_workers(),
    ray_address: Annotated[
        str | None, typer.Option(help="Address of an existing Ray cluster to join (default: a local Ray).")
    ] = None,
    shard_users: Annotated[
        int,
        typer.Option(help="Evaluation users per task where sharding is exact (0: a task per cell and seed)."),
    ] = 0,
    progress: Progress = True,
) -> None:
    """Benchmark the policies in every cell of the grid over SCENARIO; write the table and heatmaps to OUT."""
    document = to_document(load_scenario(scenario))
    axes = tuple(GridAxis.parse(text, document) for text in grid)
    bench = bench_config(
        scenario, policies, agent,
        seeds=seeds, eval_users=eval_users, tuning_seeds=tuning_seeds, tuning_users=tuning_users, quick=quick,
    )  # fmt: skip
    config = SweepConfig(bench, axes, shard_users=shard_users)
    chosen: Literal["local", "ray"] = backend  # type: ignore[assignment]  # checked by make_backend
    runner = make_backend(chosen, workers, address=ray_address, progress=progress)
    try:
        result = run_sweep(config, runner, out)
    finally:
        runner.close()
    typer.echo(result.report.read_text())
    typer.echo(f"report: {result.report}")
