"""``winback bench``: tuned baselines, trained agents and the oracle on held-out users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import torch
import typer
from threadpoolctl import threadpool_limits

from winback.benchmarks.backends import Backend, make_backend
from winback.benchmarks.suite import ALL_POLICIES, KNOWN_POLICIES, BenchConfig, run_benchmark, run_scenarios
from winback.errors import ConfigError

DEFAULTS = BenchConfig()
QUICK = {"seeds": 2, "tuning_seeds": 1, "tuning_users": 300, "eval_users": 300, "quick": True}
"""What ``--quick`` sets: a smoke run of the whole benchmark in seconds."""

Out = Annotated[Path, typer.Option(help="Report directory (created).")]
Policies = Annotated[
    str,
    typer.Option(
        help=f"Comma-separated, from {', '.join(KNOWN_POLICIES)}; 'all': the baselines and the oracle "
        "(all,prioritized_rule: and that)."
    ),
]
Agents = Annotated[
    list[Path] | None,
    typer.Option(
        help="A training run (winback train --out) or an export (winback export --out); repeatable."
    ),
]
Seeds = Annotated[int, typer.Option(help="Evaluation seeds.")]
EvalUsers = Annotated[int, typer.Option(help="Evaluation users (a fixed sample; 0: all).")]
TuningSeeds = Annotated[int, typer.Option(help="Training seeds the baselines are tuned under.")]
TuningUsers = Annotated[int, typer.Option(help="Training users the baselines are tuned on (0: all).")]
Quick = Annotated[bool, typer.Option("--quick", help="Few users, seeds and coarse grids (a smoke run).")]
Threads = Annotated[int, typer.Option(help="Threads for torch and the gradient-boosting models.")]
Progress = Annotated[bool, typer.Option(help="Show progress bars.")]
BackendName = Annotated[str, typer.Option("--backend", help="Where tasks run: 'local' processes or 'ray'.")]
Workers = Annotated[int, typer.Option(help="Parallel workers (local processes, or CPUs of a local Ray).")]
RayAddress = Annotated[
    str | None, typer.Option(help="Address of an existing Ray cluster to join (default: a local Ray).")
]
Allocation = Annotated[
    bool,
    typer.Option(
        "--allocation",
        help="Agents decide under the scenario's coupon budget and care team: each period a price per "
        "coupon and per care message, so that only what operations can serve is requested.",
    ),
]
ShardUsers = Annotated[
    int,
    typer.Option(
        help="Evaluation users per task: policies that decide for each user alone run in shards of this "
        "many (0: each policy on all users)."
    ),
]


def bench_config(
    scenario: str,
    policies: str,
    agents: list[Path] | None,
    *,
    seeds: int,
    eval_users: int,
    tuning_seeds: int,
    tuning_users: int,
    quick: bool,
    shard_users: int = 0,
    allocation: bool = False,
) -> BenchConfig:
    """The benchmark the options describe (``quick`` overrides the sizes)."""
    named = [p.strip() for p in policies.split(",") if p.strip()]
    chosen = tuple(dict.fromkeys(q for p in named for q in (ALL_POLICIES if p == "all" else (p,))))
    settings = {
        "seeds": seeds,
        "eval_users": eval_users,
        "tuning_seeds": tuning_seeds,
        "tuning_users": tuning_users,
        "shard_users": shard_users,
        "allocation": allocation,
    } | (QUICK if quick else {})
    return BenchConfig(scenario=scenario, policies=chosen, agents=tuple(agents or ()), **settings)


@contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """Torch and the BLAS / OpenMP pools limited to ``threads``."""
    if threads < 1:
        raise ConfigError(f"--threads = {threads} (allowed: >= 1)")
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        yield


@contextmanager
def task_backend(backend: str, workers: int, address: str | None, progress: bool) -> Iterator[Backend | None]:
    """The evaluation's :class:`Backend` (``None``, this process, for one local worker), closed after."""
    if backend == "local" and workers == 1 and address is None:
        yield None
        return
    chosen: Literal["local", "ray"] = backend  # type: ignore[assignment]  # checked by make_backend
    runner = make_backend(chosen, workers, address=address, progress=progress)
    try:
        yield runner
    finally:
        runner.close()


def bench(
    out: Out,
    policies: Policies = "all",
    agent: Agents = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="A built-in scenario name or a scenario TOML file; repeat for a table by scenario."
        ),
    ] = None,
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
    """Run the policies on the scenario's evaluation users and write the leaderboard and plots to OUT.

    One thread by default: the simulator's batches are too small for a second thread to pay, and
    two torch threads stall (hiccups of ~8 ms, measured on a 2-core machine) when the other core is busy.
    With --workers or --backend ray, the policies' runs on the evaluation users are tasks in parallel
    (one thread each), in shards of --shard-users users where that cannot change a number; the table
    is the same.
    """
    scenarios = scenario or [DEFAULTS.scenario]
    config = bench_config(
        scenarios[0], policies, agent,
        seeds=seeds, eval_users=eval_users, tuning_seeds=tuning_seeds, tuning_users=tuning_users, quick=quick,
        shard_users=shard_users, allocation=allocation,
    )  # fmt: skip
    with thread_limit(threads), task_backend(backend, workers, ray_address, progress) as runner:
        if len(scenarios) == 1:
            report = run_benchmark(config, out, progress=progress, backend=runner).report
        else:
            report = run_scenarios(config, scenarios, out, progress=progress, backend=runner)[1]
    typer.echo(report.read_text())
    typer.echo(f"report: {report}")
