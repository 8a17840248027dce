"""``winback export``: a training run as ONNX graphs and a JSON policy card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from winback.errors import ConfigError
from winback.export.exporter import export_policy


def export(
    run_dir: Annotated[Path, typer.Argument(help="Training run directory (winback train --out).")],
    out: Annotated[Path, typer.Option(help="Export directory (created; must not hold an export yet).")],
    model: Annotated[
        str, typer.Option(help="Which model of the run: best (on validation) or final.")
    ] = "best",
    seeds: Annotated[int, typer.Option(help="Evaluation seeds of the card's benchmark figures.")] = 5,
    eval_users: Annotated[
        int, typer.Option(help="Evaluation users of the card's benchmark figures (a fixed sample; 0: all).")
    ] = 0,
) -> None:
    """Write policy.onnx, state_update.onnx and policy_card.json for the run in RUN_DIR to OUT.

    The card's benchmark figures are those of `winback bench --agent OUT --seeds S --eval-users U`.
    """
    if model not in ("best", "final"):
        raise ConfigError(f"--model = {model!r} (allowed: best, final)")
    torch.set_num_threads(1)
    card = export_policy(
        run_dir, out, which="best" if model == "best" else "final", seeds=seeds, eval_users=eval_users
    )
    typer.echo(f"exported {run_dir} ({model} model) -> {out}; card: {card}")
