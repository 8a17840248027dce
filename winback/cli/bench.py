"""``winback bench``: tuned baselines, trained agents and the oracle on held-out users."""

from __future__ import annotations

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


def bench(
    out: Annotated[Path, typer.Option(help="Report directory (created).")],
    policies: Annotated[
        str,
        typer.Option(help=f"Comma-separated, from {', '.join(KNOWN_POLICIES)}; 'all': all but the planner."),
    ] = "all",
    agent: Annotated[
        list[Path] | None, typer.Option(help="A training run directory (winback train --out); repeatable.")
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="A built-in scenario name or a scenario TOML file; repeat for a table by scenario."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Evaluation seeds.")] = DEFAULTS.seeds,
    eval_users: Annotated[
        int, typer.Option(help="Evaluation users (a fixed sample; 0: all).")
    ] = DEFAULTS.eval_users,
    tuning_seeds: Annotated[
        int, typer.Option(help="Training seeds the baselines are tuned under.")
    ] = DEFAULTS.tuning_seeds,
    tuning_users: Annotated[
        int, typer.Option(help="Training users the baselines are tuned on (0: all).")
    ] = DEFAULTS.tuning_users,
    quick: Annotated[
        bool, typer.Option("--quick", help="Few users, seeds and coarse grids (a smoke run).")
    ] = False,
    threads: Annotated[int, typer.Option(help="Threads for torch and the gradient-boosting models.")] = 1,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run the policies on the scenario's evaluation users and write the leaderboard and plots to OUT.

    One thread by default: the simulator's batches are too small for a second thread to pay, and
    a busy second core makes multi-threaded torch spin (``shared/PERF.md``).
    """
    chosen = ALL_POLICIES if policies == "all" else tuple(p.strip() for p in policies.split(",") if p.strip())
    settings = {
        "seeds": seeds,
        "eval_users": eval_users,
        "tuning_seeds": tuning_seeds,
        "tuning_users": tuning_users,
    } | (QUICK if quick else {})
    scenarios = scenario or [DEFAULTS.scenario]
    config = BenchConfig(scenario=scenarios[0], policies=chosen, agents=tuple(agent or ()), **settings)
    if threads < 1:
        raise ConfigError(f"--threads = {threads} (allowed: >= 1)")
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        if len(scenarios) == 1:
            report = run_benchmark(config, out, progress=progress).report
        else:
            report = run_scenarios(config, scenarios, out, progress=progress)[1]
    typer.echo(report.read_text())
    typer.echo(f"report: {report}")
