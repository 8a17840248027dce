"""``winback pipeline``: a shop's own log to a benchmarked, exported policy, in one command.

The steps are the commands a user would run one by one, called with the options they would give:

1. ``winback decay eval``: every decay model fitted on the calibration window, scored on the holdout;
2. ``winback decay fit``: the scenario's LSTM, fitted on the whole log (users are warm-started where
   the log ends, so the model has seen every period they lived);
3. ``OUT/scenario.toml``: the log's users (``[population] log``) living by that model, with the
   shop's own economics, contacts, fatigue or operations merged in from ``--settings``;
4. ``winback train --config OUT/train.toml``: agents on the scenario's training users, one per seed
   and start (random weights and the best tuned rule, ``--imitate``), the best on validation kept;
5. ``winback bench``: the agent against the tuned baselines on held-out users (the leaderboard);
6. ``winback export``: the agent as ONNX graphs and a policy card that names the log and the model.

``--model`` takes a decay model already fitted on the log instead (steps 1-2 are skipped): retrain
and re-benchmark under new settings without refitting.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from winback.agents.seeds import start_label
from winback.agents.training import TrainConfig
from winback.cli.bench import bench
from winback.cli.data import MappingOption
from winback.cli.decay import CalibrationOption, PeriodOption, SeedOption, evaluate, fit
from winback.cli.export import export
from winback.cli.train import RANDOM_START, start_of, train
from winback.data.cdnow import DATASETS
from winback.data.io import file_format, read_event_log
from winback.data.mapping import PRESETS
from winback.errors import ConfigError
from winback.scenarios.files import dumps
from winback.scenarios.scenario import read_scenario

console = Console()

QUICK_LSTM = {"hidden_size": 8, "max_epochs": 2}
QUICK_TIMESTEPS = 2048
QUICK_IMITATION_USERS = 300
"""What ``--quick`` sets besides the benchmark's own quick mode: a smoke run of every step in minutes."""
DEFAULT_TIMESTEPS = 1_500_000
"""Runs from random weights passed the rule on validation users after about 1.4M timesteps in the
ground-truth world where contacts pay much and season is flat; at 600k they were still below it
(``benchmarks/RESULTS.md``, "Your own users")."""
DEFAULT_STARTS = (RANDOM_START, "best_rule")
"""Neither start won in every ground-truth world (``benchmarks/RESULTS.md``, "Your own users"): both
are trained, validation users choose."""


def pipeline(
    data: Annotated[str, typer.Option("--data", help="The shop's event or transaction log (CSV/Parquet).")],
    out: Annotated[Path, typer.Option(help="Directory of every step's output (created; must be new).")],
    mapping: MappingOption = None,
    period: PeriodOption = "week",
    calibration_end: CalibrationOption = None,
    horizon: Annotated[int, typer.Option(help="Periods the policies are followed for.")] = 52,
    timesteps: Annotated[int, typer.Option(help="Timesteps (user-periods) each agent trains for.")] = (
        DEFAULT_TIMESTEPS
    ),
    seed: Annotated[
        list[int] | None, typer.Option(help="Training seeds (repeat it); the best on validation is kept.")
    ] = None,
    imitate: Annotated[
        list[str] | None,
        typer.Option(
            help="What the agents start from (winback train --imitate; repeat it): none (random weights), "
            "best_rule or a rule family. Default: none and best_rule, a run per seed from each."
        ),
    ] = None,
    bench_seeds: Annotated[int, typer.Option(help="Evaluation seeds of the benchmark.")] = 5,
    decay_seed: SeedOption = 0,
    settings: Annotated[
        Path | None,
        typer.Option(
            help="A scenario TOML of your economics, contacts, fatigue, operations... (no \\[population] "
            "or \\[model]): merged into the scenario the pipeline writes."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="A decay-model artifact fitted on this log: steps 1-2 are skipped, it is used."),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Tiny models, few timesteps (a smoke run).")] = False,
    progress: Annotated[
        bool, typer.Option(help="Show progress bars while training and benchmarking.")
    ] = True,
) -> None:
    """Run winback's whole pipeline on a log: decay models, scenario, agent, benchmark, export."""
    if data in DATASETS:
        raise ConfigError(
            f"--data {data}: the pipeline takes a log file; CDNOW's runs through make quickstart"
        )
    file_format(data)
    starts = [start_of(value) for value in imitate or DEFAULT_STARTS]
    for start in starts:
        TrainConfig(imitate=start)  # a bad rule fails before anything runs
    if out.exists():
        raise ConfigError(f"--out {out} exists (allowed: a new directory, so no step mixes two runs)")
    seeds = list(seed or ([0] if quick else [0, 1]))
    lstm = QUICK_LSTM if quick else {"hidden_size": None, "max_epochs": None}
    paths = {name: out / name for name in ("decay", "model", "agent", "bench", "export")}
    scenario = out / "scenario.toml"

    extra = _settings(settings)
    if model is None:
        console.rule("1/6 decay models: fitted on calibration, scored on the holdout")
        evaluate(
            data, paths["decay"], mapping=mapping, period=period, calibration_end=calibration_end,
            seed=decay_seed, draws=8 if quick else 32, **lstm,
        )  # fmt: skip
        log = read_event_log(data, mapping=mapping)  # the day after its last event ends the fit's window
        end = (log.events["timestamp"].max().date() + dt.timedelta(days=1)).isoformat()
        console.rule(f"2/6 the scenario's decay model: the LSTM fitted on the whole log (to {end})")
        fit(
            data, paths["model"], mapping=mapping, period=period, calibration_end=end, seed=decay_seed, **lstm
        )
    else:
        console.rule(f"1-2/6 the scenario's decay model: {model} (given: no decay models fitted)")
        paths["model"] = model.resolve()
    console.rule("3/6 the scenario: the log's users living by that model")
    out.mkdir(parents=True, exist_ok=True)
    scenario.write_text(dumps(_scenario_document(Path(data), mapping, horizon, paths["model"], extra)))
    read_scenario(scenario)  # its errors (a model of another layout, a bad setting) before any training
    console.print(f"wrote {scenario}")
    console.rule(
        f"4/6 agents trained on the scenario's training users (seeds {seeds}, "
        f"{', '.join(start_label(start) for start in starts)})"
    )
    training = out / "train.toml"
    training.write_text(dumps(_training_document(scenario, timesteps, quick)))
    train(paths["agent"], config=training, seed=seeds, imitate=starts, progress=progress)
    console.rule("5/6 benchmark: the agent against the tuned baselines on held-out users")
    bench(
        paths["bench"],
        agent=[paths["agent"]],
        scenario=[str(scenario)],
        seeds=bench_seeds,
        quick=quick,
        progress=progress,
    )
    console.rule("6/6 export: ONNX graphs and a policy card naming the log and the model")
    export(paths["agent"], paths["export"], seeds=bench_seeds, eval_users=300 if quick else 0)
    table = Table("step", "output", title=f"winback pipeline on {data}")
    for step, path in (
        ("decay models (report)", paths["decay"] / "report.md" if model is None else "skipped (--model)"),
        ("decay model of the scenario", paths["model"]),
        ("scenario", scenario),
        ("agent", paths["agent"]),
        ("benchmark (leaderboard)", paths["bench"] / "leaderboard.md"),
        ("exported policy (winback serve)", paths["export"]),
    ):
        table.add_row(step, str(path))
    console.print(table)


def _training_document(scenario: Path, timesteps: int, quick: bool) -> dict[str, Any]:
    """The agents' training config (``winback train --config``; seeds and starts are its options),
    written beside the scenario."""
    document: dict[str, Any] = {
        "scenario": str(scenario),
        "total_timesteps": QUICK_TIMESTEPS if quick else timesteps,
    }
    if quick:
        document |= {"imitation_quick": True, "imitation_users": QUICK_IMITATION_USERS}
    return document


def _settings(path: Path | None) -> dict[str, Any]:
    """The scenario keys of ``--settings`` (checked with the rest when the scenario is read)."""
    if path is None:
        return {}
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as err:
        raise ConfigError(f"--settings {path}: cannot read it ({err.strerror})") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--settings {path}: not valid TOML ({err})") from err
    if taken := [key for key in ("population", "model") if key in document]:
        raise ConfigError(
            f"--settings {path} has [{taken[0]}] (allowed: every scenario key but [population] and [model], "
            "which the pipeline sets to the log and the model fitted on it)"
        )
    return document


def _scenario_document(
    log: Path, mapping: str | None, horizon: int, model: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    """The scenario of the log's users (absolute paths to the user's files) with ``settings`` merged."""
    population: dict[str, Any] = {"log": str(log.resolve())}
    if mapping is not None:
        population["mapping"] = mapping if mapping in PRESETS else str(Path(mapping).resolve())
    return {
        "name": log.name.split(".")[0],
        "description": f"the users of {log.name}, living by the LSTM fitted on it",
        "horizon": horizon,
        **settings,
        "population": population,
        "model": {"artifact": str(model.resolve())},
    }
