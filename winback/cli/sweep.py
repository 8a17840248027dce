"""``winback sweep``: a scenario's parameters on a grid, the policies benchmarked in every cell."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from winback.benchmarks.backends import default_workers, make_backend
from winback.benchmarks.sweep import run_sweep
from winback.benchmarks.sweep.grid import GridAxis, SweepConfig
from winback.cli.bench import (
    Agents,
    Allocation,
    BackendName,
    EvalUsers,
    Out,
    Progress,
    Quick,
    RayAddress,
    ShardUsers,
    TuningSeeds,
    TuningUsers,
    Workers,
    bench_config,
)
from winback.scenarios.files import to_document
from winback.scenarios.scenario import load_scenario

EVERY_CPU = default_workers()
"""The sweep's default --workers."""


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
    backend: BackendName = "local",
    workers: Workers = EVERY_CPU,
    ray_address: RayAddress = None,
    shard_users: ShardUsers = 0,
    allocation: Allocation = False,
    progress: Progress = True,
) -> None:
    """Benchmark the policies in every cell of the grid over SCENARIO; write the table and heatmaps to OUT."""
    document = to_document(load_scenario(scenario))
    axes = tuple(GridAxis.parse(text, document) for text in grid)
    bench = bench_config(
        scenario, policies, agent,
        seeds=seeds, eval_users=eval_users, tuning_seeds=tuning_seeds, tuning_users=tuning_users, quick=quick,
        shard_users=shard_users, allocation=allocation,
    )  # fmt: skip
    config = SweepConfig(bench, axes)
    chosen: Literal["local", "ray"] = backend  # type: ignore[assignment]  # checked by make_backend
    runner = make_backend(chosen, workers, address=ray_address, progress=progress)
    try:
        result = run_sweep(config, runner, out)
    finally:
        runner.close()
    typer.echo(result.report.read_text())
    typer.echo(f"report: {result.report}")
