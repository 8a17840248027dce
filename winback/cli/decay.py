"""``winback decay``: fit and evaluate interest-decay models."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Annotated, Literal

import torch
import typer
from rich.console import Console
from rich.table import Table

from winback.cli.data import MappingOption
from winback.data.panel import Period
from winback.data.shards import is_sharded_panel, open_panel
from winback.data.sources import PanelSplit, load_panel_split, sharded_calibration_end
from winback.decay_model.artifact import load_model, save_model
from winback.decay_model.base import DecayModel
from winback.decay_model.evaluate import evaluate_models
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel, RayBackend
from winback.decay_model.registry import MODELS
from winback.decay_model.report import metrics_table, write_report
from winback.errors import ConfigError

app = typer.Typer(no_args_is_help=True)
console = Console()

DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        help="Built-in dataset (cdnow, cdnow-sample), an event-log file (CSV/Parquet), or for `fit` a panel "
        "in shards (a directory written by `winback data panel`).",
    ),
]
CalibrationOption = Annotated[
    str | None,
    typer.Option(help="First holdout date (on a period boundary). Default: the standard split, or mid-log."),
]
PeriodOption = Annotated[
    Period,
    typer.Option(
        help="Length of a period, the model's time step: week or day. The artifact keeps it; "
        "simulator scenarios assume weeks."
    ),
]
SeedOption = Annotated[int, typer.Option(help="Seed of every random draw.")]
ThreadsOption = Annotated[int, typer.Option(help="torch threads (0: torch's default).")]
HiddenOption = Annotated[int | None, typer.Option(help="LSTM hidden size (default from LSTMConfig).")]
Backend = Literal["local", "ray"]
EpochsOption = Annotated[int | None, typer.Option(help="LSTM maximum epochs (default from LSTMConfig).")]


def _new_model(name: str, hidden_size: int | None, max_epochs: int | None) -> DecayModel:
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}' (expected one of {sorted(MODELS)})")
    if name != LSTMDecayModel.name:
        return MODELS[name]()
    overrides = {"hidden_size": hidden_size, "head_size": hidden_size, "max_epochs": max_epochs}
    return LSTMDecayModel(
        dataclasses.replace(LSTMConfig(), **{k: v for k, v in overrides.items() if v is not None})
    )


def _fit(
    model: DecayModel, split: PanelSplit, *, seed: int, checkpoint_dir: Path | None = None
) -> tuple[DecayModel, float]:
    started = time.perf_counter()
    if isinstance(model, LSTMDecayModel):
        model.fit(
            split.panel, until=split.calibration_end, seed=seed, progress=True, checkpoint_dir=checkpoint_dir
        )
    else:
        model.fit(split.panel, until=split.calibration_end, seed=seed)
    return model, time.perf_counter() - started


def _load_lstm(path: Path, split: PanelSplit) -> DecayModel:
    """A fitted LSTM artifact to evaluate on ``split``, whose periods it must share."""
    model = load_model(path)
    spec = model._require_fitted()
    if spec.period != split.panel.spec.period:
        raise ConfigError(
            f"--lstm {path} was fitted on {spec.period} periods but the data are cut into "
            f"{split.panel.spec.period} periods (pass --period {spec.period})"
        )
    return model


@app.command()
def fit(
    data: DataOption,
    out: Annotated[
        Path, typer.Option(help="Directory of the model artifact (model.json + weights.safetensors).")
    ],
    model: Annotated[str, typer.Option(help=f"Model to fit: {', '.join(MODELS)}.")] = "lstm",
    mapping: MappingOption = None,
    calibration_end: CalibrationOption = None,
    period: PeriodOption = "week",
    seed: SeedOption = 0,
    hidden_size: HiddenOption = None,
    max_epochs: EpochsOption = None,
    resume: Annotated[bool, typer.Option(help="Resume LSTM fitting from OUT/checkpoint.")] = False,
    threads: ThreadsOption = 0,
    backend: Annotated[
        Backend, typer.Option(help="Where a panel in shards is fitted: this process, or Ray Train's workers.")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Address of a running Ray cluster (default: a local Ray).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray Train workers (with --backend ray).")] = 2,
) -> None:
    """Fit one decay model on the calibration periods and save it as an artifact."""
    if threads:
        torch.set_num_threads(threads)
    checkpoint = out / "checkpoint"
    if not resume and checkpoint.exists():
        shutil.rmtree(checkpoint)
    ray = RayBackend(workers=workers, address=ray_address) if backend == "ray" else None
    if ray is not None and workers < 1:
        raise ConfigError(f"--workers {workers} (allowed: at least 1)")
    if ray is not None and resume:
        raise ConfigError("--resume: a fit on Ray Train's workers keeps no epoch checkpoints (fit it whole)")
    if is_sharded_panel(data):
        _fit_shards(data, out, model, calibration_end, period, seed, hidden_size, max_epochs, checkpoint, ray)
        return
    if ray is not None:
        raise ConfigError(
            f"--backend ray fits a panel in shards, and {data} is not one "
            "(write one with `winback data panel`)"
        )
    split = load_panel_split(data, mapping=mapping, period=period, calibration_end=calibration_end)
    fitted, seconds = _fit(
        _new_model(model, hidden_size, max_epochs), split, seed=seed, checkpoint_dir=checkpoint
    )
    save_model(fitted, out)
    console.print(
        f"fitted {model} on {split.source} ({split.panel.n_users:,} users) in {seconds:.1f}s -> {out}"
    )


def _fit_shards(
    data: str,
    out: Path,
    model: str,
    calibration_end: str | None,
    period: Period,
    seed: int,
    hidden_size: int | None,
    max_epochs: int | None,
    checkpoint: Path,
    ray: RayBackend | None,
) -> None:
    """``decay fit`` on a panel stored in shards (``winback data panel``): the LSTM, a shard at a time."""
    if model != LSTMDecayModel.name:
        raise ConfigError(
            f"a panel in shards is fitted by the lstm model only, not '{model}' (pass --model lstm)"
        )
    panel = open_panel(data)
    until = sharded_calibration_end(panel, calibration_end, period)
    started = time.perf_counter()
    fitted = _new_model(model, hidden_size, max_epochs)
    assert isinstance(fitted, LSTMDecayModel)
    fitted.fit_shards(panel, until=until, seed=seed, progress=True, checkpoint_dir=checkpoint, ray=ray)
    save_model(fitted, out)
    console.print(
        f"fitted {model} on {data} ({panel.n_users:,} users in {panel.n_shards} shards) in "
        f"{time.perf_counter() - started:.1f}s -> {out}"
    )


@app.command("eval")
def evaluate(
    data: DataOption,
    out: Annotated[
        Path, typer.Option(help="Directory for metrics.json, report.md, plots and fitted models.")
    ],
    models: Annotated[str, typer.Option(help="Comma-separated models to fit and compare.")] = ",".join(
        MODELS
    ),
    lstm: Annotated[
        Path | None, typer.Option(help="Use this fitted LSTM artifact instead of fitting one.")
    ] = None,
    mapping: MappingOption = None,
    calibration_end: CalibrationOption = None,
    period: PeriodOption = "week",
    draws: Annotated[int, typer.Option(help="Sampled futures per user.")] = 32,
    seed: SeedOption = 0,
    hidden_size: HiddenOption = None,
    max_epochs: EpochsOption = None,
    threads: ThreadsOption = 0,
) -> None:
    """Fit every model on calibration, forecast the holdout, and write metrics, plots and a report."""
    if threads:
        torch.set_num_threads(threads)
    split = load_panel_split(data, mapping=mapping, period=period, calibration_end=calibration_end)
    split.check_holdout()
    fitted: dict[str, DecayModel] = {}
    fit_seconds: dict[str, float] = {}
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        if name == LSTMDecayModel.name and lstm is not None:
            fitted[name], fit_seconds[name] = _load_lstm(lstm, split), 0.0
        else:
            fitted[name], fit_seconds[name] = _fit(
                _new_model(name, hidden_size, max_epochs), split, seed=seed
            )
            save_model(fitted[name], out / "models" / name)
    started = time.perf_counter()
    result = evaluate_models(
        fitted, split.panel, calibration_end=split.calibration_end, draws=draws, seed=seed, progress=True
    )
    meta = {
        "data": split.source,
        "users": int(split.panel.born_before(split.calibration_end).sum()),
        "calibration_periods": split.calibration_end,
        "holdout_periods": split.panel.spec.n_periods - split.calibration_end,
        "period": split.panel.spec.period,
        "draws": draws,
        "seed": seed,
        "fit_seconds": {k: round(v, 1) for k, v in fit_seconds.items()},
        "eval_seconds": round(time.perf_counter() - started, 1),
    }
    notes = {name: list(model.fit_notes()) for name, model in fitted.items() if model.fit_notes()}
    report = write_report(result, out, meta, notes)
    rows = metrics_table(result)
    table = Table(
        *rows[0], title=f"Decay models on {split.source}: holdout of {meta['holdout_periods']} periods"
    )
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    console.print(f"report: {report}")
