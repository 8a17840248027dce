"""``winback train``: train an RL agent on a scenario and select it on validation users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from winback.agents.sb3 import ALGORITHMS
from winback.agents.training import TrainConfig
from winback.agents.training import train as train_agent
from winback.scenarios.scenario import BUILT_IN, load_scenario
from winback.scenarios.schema import Operations

console = Console()


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
    seed: Annotated[int | None, typer.Option(help="Seed of the simulator, environment and networks.")] = None,
    n_envs: Annotated[int | None, typer.Option(help="Users stepping together in the environment.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in OUT from its latest checkpoint.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train an agent on the scenario's training users; keep the model that is best on validation users.

    Unset options come from --config, else (with --resume) from the run's config.json, else from the
    defaults of TrainConfig. With --resume, only --timesteps may change.
    """
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "algo": algo,
            "scenario": scenario,
            "total_timesteps": timesteps,
            "seed": seed,
            "n_envs": n_envs,
        }.items()
        if value is not None
    }
    run_config = out / "config.json"
    if config is not None:
        train_config = TrainConfig.from_toml(config, **overrides)
    elif resume and run_config.is_file():
        stored = json.loads(run_config.read_text())
        train_config = TrainConfig.from_dict({**stored, **overrides}, source=str(run_config))
    else:
        train_config = TrainConfig.from_dict(overrides, source="command line")
    world = load_scenario(train_config.scenario)
    if world.operations != Operations() or world.campaigns:
        console.print(
            f"note: {world.name}'s operations and campaigns are not in the training environments; "
            "checkpoints are chosen on validation users under them (winback whatif shows their cost)"
        )
    result = train_agent(train_config, out, resume=resume, progress=progress)
    console.print(
        f"trained {train_config.algo} on {train_config.scenario} for {result.timesteps:,} timesteps "
        f"in {result.wall_seconds:.0f}s -> {out}"
    )
    console.print(
        f"best validation net value per user: {result.best_value:.3f} at {result.best_timesteps:,} timesteps "
        f"({out / 'best_model.zip'}); learning curve: {out / 'learning_curve.csv'}"
    )
