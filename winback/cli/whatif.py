"""``winback whatif``: the policies under a scenario's operations, with what operations did."""

from __future__ import annotations

from typing import Annotated

import typer

from winback.benchmarks.whatif import run_whatif
from winback.cli.bench import (
    DEFAULTS,
    Agents,
    Allocation,
    BackendName,
    EvalUsers,
    Out,
    Policies,
    Progress,
    Quick,
    RayAddress,
    Seeds,
    ShardUsers,
    Threads,
    TuningSeeds,
    TuningUsers,
    Workers,
    bench_config,
    task_backend,
    thread_limit,
)


def whatif(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario name or a scenario TOML file.")],
    out: Out,
    policies: Policies = "all",
    agent: Agents = None,
    seeds: Seeds = DEFAULTS.seeds,
    eval_users: EvalUsers = DEFAULTS.eval_users,
    tuning_seeds: TuningSeeds = DEFAULTS.tuning_seeds,
    tuning_users: TuningUsers = DEFAULTS.tuning_users,
    quick: Quick = False,
    threads: Threads = 1,
    allocation: Allocation = False,
    shard_users: ShardUsers = 0,
    backend: BackendName = "local",
    workers: Workers = 1,
    ray_address: RayAddress = None,
    progress: Progress = True,
) -> None:
    """Run the policies through SCENARIO's operations and write the what-if report to OUT.

    The benchmark of `winback bench` with the scenario's coupon budget, care team, delivery delays
    and campaigns; whatif.md and its PNGs go beside the leaderboard. --workers, --backend and
    --shard-users run the evaluation in parallel tasks, as in `winback bench`.
    """
    config = bench_config(
        scenario, policies, agent,
        seeds=seeds, eval_users=eval_users, tuning_seeds=tuning_seeds, tuning_users=tuning_users, quick=quick,
        shard_users=shard_users, allocation=allocation,
    )  # fmt: skip
    with thread_limit(threads), task_backend(backend, workers, ray_address, progress) as runner:
        report = run_whatif(config, out, progress=progress, backend=runner)
    typer.echo(report.read_text())
    typer.echo(f"report: {report}")
