"""``winback bench``: tuned baselines, trained agents and the oracle on held-out users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import torch
import typer
from threadpoolctl import threadpool_limits

from winback.benchmarks.suite import ALL_POLICIES, KNOWN_POLICIES, BenchConfig, run_benchmark, run_scenarios
from winback.errors import ConfigError

DEFAULTS = BenchConfig()
QUICK = {"seeds": 2, "tuning_seeds": 1, "tuning_users": 300, "eval_users": 300, "quick": True}
"""What ``--quick`` sets: a smoke run of the whole benchmark in seconds."""

Out = Annotated[Path, typer.Option(help="Report directory (created).")]
Policies = Annotated[
    str, typer.Option(help=f"Comma-separated, from {', '.join(KNOWN_POLICIES)}; 'all': all but the planner.")
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
) -> BenchConfig:
    """The benchmark the options describe (``quick`` overrides the sizes)."""
    chosen = ALL_POLICIES if policies == "all" else tuple(p.strip() for p in policies.split(",") if p.strip())
    settings = {
        "seeds": seeds,
        "eval_users": eval_users,
        "tuning_seeds": tuning_seeds,
        "tuning_users": tuning_users,
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
    progress: Progress = True,
) -> None:
    """Run the policies on the scenario's evaluation users and write the leaderboard and plots to OUT.

    One thread by default: the simulator's batches are too small for a second thread to pay, and
    two torch threads stall (hiccups of ~8 ms, measured on a 2-core machine) when the other core is busy.
    """
    scenarios = scenario or [DEFAULTS.scenario]
    config = bench_config(
        scenarios[0], policies, agent,
        seeds=seeds, eval_users=eval_users, tuning_seeds=tuning_seeds, tuning_users=tuning_users, quick=quick,
    )  # fmt: skip
    with thread_limit(threads):
        if len(scenarios) == 1:
            report = run_benchmark(config, out, progress=progress).report
        else:
            report = run_scenarios(config, scenarios, out, progress=progress)[1]
    typer.echo(report.read_text())
    typer.echo(f"report: {report}")
