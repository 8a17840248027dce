"""``winback train``: train an RL agent on a scenario and select it on validation users."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from winback.agents.sb3 import ALGORITHMS, SEEDS_FILE
from winback.agents.seeds import seed_run_name, start_label, stored_seeds, train_seeds
from winback.agents.training import TrainConfig
from winback.agents.training import train as train_agent
from winback.errors import ConfigError
from winback.scenarios.scenario import BUILT_IN, load_scenario
from winback.scenarios.schema import Operations

console = Console()

RANDOM_START = "none"
"""The ``--imitate`` value of a run started from random weights."""


def train(
    out: Annotated[Path, typer.Option(help="Run directory (created; with --resume, the run to continue).")],
    algo: Annotated[str | None, typer.Option(help=f"Algorithm: {', '.join(ALGORITHMS)}.")] = None,
    scenario: Annotated[
        str | None, typer.Option(help=f"Scenario: {', '.join(sorted(BUILT_IN))}, or a scenario TOML file.")
    ] = None,
    timesteps: Annotated[int | None, typer.Option(help="Total timesteps (user-periods) to train to.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file of TrainConfig fields (the other options override it).")
    ] = None,
    seed: Annotated[
        list[int] | None,
        typer.Option(
            help="Seed of the simulator, environment and networks. Repeat it to train a run per seed "
            "in OUT/seed-N, side by side, and select the best on validation users (OUT/seeds.json)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Seeds' runs trained at a time (default: one per core).")
    ] = None,
    n_envs: Annotated[int | None, typer.Option(help="Users stepping together in the environment.")] = None,
    imitate: Annotated[
        list[str] | None,
        typer.Option(
            help="Start from a tuned rule (interest_threshold, recency_rule, fixed_cadence, or best_rule): "
            "clone it, warm the critic up, then train (PPO, MaskablePPO); 'none': random weights. Repeat "
            "it to train a run per seed and start (OUT/seed-N-RULE) and select the best on validation users."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in OUT from its latest checkpoint.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train an agent on the scenario's training users; keep the model that is best on validation users.

    Unset options come from --config, else (with --resume) from the run's config.json (seeds.json for
    several seeds), else from the defaults of TrainConfig. With --resume, only --timesteps may change.
    """
    seeds, starts = list(seed or []), [start_of(value) for value in imitate or []]
    stored = stored_seeds(out) if resume else None
    if stored is not None:
        seeds, starts = seeds or stored[1], starts or stored[2]
        if (seeds, starts) != stored[1:]:
            raise ConfigError(
                f"{out} holds the runs of seeds {stored[1]} and starts {stored[2]}, resumed together (give "
                f"no --seed or --imitate, or all of them); one run resumes on its own as "
                f"{out / seed_run_name(seeds[0], starts[0])}"
            )
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "algo": algo,
            "scenario": scenario,
            "total_timesteps": timesteps,
            "seed": seeds[0] if len(seeds) == 1 else None,
            "n_envs": n_envs,
            "imitate": starts[0] if len(starts) == 1 else None,
        }.items()
        if value is not None
    }
    run_config = out / "config.json"
    if config is not None:
        train_config = TrainConfig.from_toml(config, **overrides)
    elif stored is not None:
        train_config = replace(stored[0], **overrides)
    elif resume and run_config.is_file():
        stored_config = json.loads(run_config.read_text())
        train_config = TrainConfig.from_dict({**stored_config, **overrides}, source=str(run_config))
    else:
        train_config = TrainConfig.from_dict(overrides, source="command line")
    world = load_scenario(train_config.scenario)
    if world.operations != Operations() or world.campaigns:
        console.print(
            f"note: the agent learns {world.name}'s coupon budget and care team, if any, as a price per "
            "coupon or care message shown in its observation and charged in its reward; its checkpoints "
            "are chosen on validation users under the operations and campaigns, the price set each week "
            "so that requests fit the limits (delays and campaigns are not in the training environments)"
        )
    if len(seeds) > 1 or len(starts) > 1:
        seeds, starts = seeds or [train_config.seed], starts or [train_config.imitate]
        _train_seeds(train_config, seeds, starts, out, workers or os.cpu_count() or 1, resume, progress)
        return
    result = train_agent(train_config, out, resume=resume, progress=progress)
    console.print(
        f"trained {train_config.algo} on {train_config.scenario} for {result.timesteps:,} timesteps "
        f"in {result.wall_seconds:.0f}s -> {out}"
    )
    console.print(
        f"best validation net value per user: {result.best_value:.3f} at {result.best_timesteps:,} timesteps "
        f"({out / 'best_model.zip'}); learning curve: {out / 'learning_curve.csv'}"
    )


def start_of(value: str) -> str:
    """``TrainConfig.imitate`` of a ``--imitate`` value (``none``: random weights)."""
    return "" if value == RANDOM_START else value


def _train_seeds(
    config: TrainConfig,
    seeds: list[int],
    starts: list[str],
    out: Path,
    workers: int,
    resume: bool,
    progress: bool,
) -> None:
    result = train_seeds(config, seeds, out, starts=starts, workers=workers, resume=resume, progress=progress)
    table = Table("seed", "start", "best validation net value per user", "at timesteps", "training s")
    for run in result.runs:
        mark = " (selected)" if run is result.selected else ""
        table.add_row(
            f"{run.seed}{mark}",
            start_label(run.start),
            f"{run.best_validation_net_value:.3f}",
            f"{run.best_timesteps:,}",
            f"{run.wall_seconds:.0f}",
        )
    console.print(table)
    console.print(
        f"trained {config.algo} on {config.scenario} with seeds {', '.join(map(str, seeds))}, "
        f"{', '.join(start_label(start) for start in starts)}, in "
        f"{result.wall_seconds:.0f}s -> {out}; selected on validation users: {out / result.selected.run} "
        f"({out / SEEDS_FILE}); learning curves: {out / 'learning_curve.png'}"
    )
