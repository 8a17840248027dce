"""The learning curve of a run: ``learning_curve.csv`` (validation net value per user against
timesteps) and its plot ``learning_curve.png``."""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure

from winback.agents.training.config import TrainConfig

CURVE_COLUMNS = ("timesteps", "wall_seconds", "validation_net_value")


def read_curve(out: Path) -> list[tuple[int, float, float]]:
    """The learning curve of the run in ``out``: (timesteps, wall seconds, validation net value) rows."""
    with open(out / "learning_curve.csv", newline="") as file:
        rows = list(csv.reader(file))[1:]
    return [(int(t), float(seconds), float(value)) for t, seconds, value in rows]


def write_curve(out: Path, rows: list[tuple[int, float, float]]) -> None:
    """The learning curve of the run in ``out``: the header and ``rows``."""
    with open(out / "learning_curve.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CURVE_COLUMNS)
        writer.writerows(rows)


def append_curve(out: Path, row: tuple[int, float, float]) -> None:
    """One more row of the learning curve of the run in ``out``."""
    with open(out / "learning_curve.csv", "a", newline="") as file:
        csv.writer(file).writerow(row)


def plot_curve(out: Path, config: TrainConfig) -> None:
    """``learning_curve.png`` of the run in ``out``."""
    rows = read_curve(out)
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot([r[0] for r in rows], [r[2] for r in rows], marker="o")
    axes.set_xlabel("timesteps (user-periods)")
    axes.set_ylabel("validation net value per user ($)")
    axes.set_title(f"{config.algo} on {config.scenario}, seed {config.seed}")
    axes.grid(alpha=0.3)
    figure.savefig(out / "learning_curve.png", dpi=120)
