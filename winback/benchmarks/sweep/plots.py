"""Heatmaps of a sweep over its first two grid keys: net value per user by policy, and the best
deployable policy per cell (further keys held at their first values)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure


def _grid_shape(table: pd.DataFrame, keys: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """Values of the heatmaps' rows (the first key) and columns (the second, or a single column)."""
    rows = list(dict.fromkeys(table[keys[0]]))
    columns = list(dict.fromkeys(table[keys[1]])) if len(keys) > 1 else [None]
    return rows, columns


def _heat_cells(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The rows of the heatmaps: with more than two keys, the remaining keys at their first values."""
    for key in keys[2:]:
        table = table[table[key] == table[key].iloc[0]]
    return table


def plot_net_value(table: pd.DataFrame, keys: Sequence[str]) -> Figure:
    table = _heat_cells(table, keys)
    rows, columns = _grid_shape(table, keys)
    policies = list(dict.fromkeys(table["policy"]))
    figure = Figure(figsize=(3.6 * len(policies) + 0.8, 0.6 * len(rows) + 2.2), layout="constrained")
    axes = figure.subplots(1, len(policies), squeeze=False)[0]
    low, high = table["net_value"].min(), table["net_value"].max()
    for axis, policy in zip(axes, policies, strict=True):
        grid = _grid(table[table["policy"] == policy], keys, rows, columns, "net_value")
        image = axis.imshow(grid, cmap="viridis", vmin=low, vmax=high, aspect="auto", origin="lower")
        for (i, j), value in np.ndenumerate(grid):
            dark = value < (low + high) / 2  # viridis is dark below its middle
            axis.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8, color="w" if dark else "k")
        _label(axis, keys, rows, columns, policy)
    figure.colorbar(image, ax=axes.tolist(), label="net value per user")
    figure.suptitle("Net value per user by cell" + _fixed_note(table, keys))
    return figure


def plot_best(table: pd.DataFrame, keys: Sequence[str]) -> Figure:
    table = _heat_cells(table, keys)
    rows, columns = _grid_shape(table, keys)
    policies = list(dict.fromkeys(table["policy"]))
    colormap = ListedColormap(colormaps["tab10" if len(policies) <= 10 else "tab20"].colors[: len(policies)])
    first = table.drop_duplicates(keys)
    codes = first.assign(code=first["best"].map(policies.index))
    grid = _grid(codes, keys, rows, columns, "code")
    figure = Figure(figsize=(1.2 * len(columns) + 3.5, 0.6 * len(rows) + 2.2), layout="constrained")
    axis = figure.add_subplot()
    axis.imshow(grid, cmap=colormap, vmin=-0.5, vmax=len(policies) - 0.5, aspect="auto", origin="lower")
    for (i, j), code in np.ndenumerate(grid):
        axis.text(j, i, policies[int(code)], ha="center", va="center", fontsize=7)
    _label(axis, keys, rows, columns, "Best deployable policy per cell" + _fixed_note(table, keys))
    return figure


def _grid(
    table: pd.DataFrame, keys: Sequence[str], rows: list[Any], columns: list[Any], value: str
) -> np.ndarray:
    grid = np.full((len(rows), len(columns)), np.nan)
    for record in table.to_dict("records"):
        column = columns.index(record[keys[1]]) if len(keys) > 1 else 0
        grid[rows.index(record[keys[0]]), column] = record[value]
    return grid


def _label(axis: Any, keys: Sequence[str], rows: list[Any], columns: list[Any], title: str) -> None:
    axis.set_yticks(range(len(rows)), [str(r) for r in rows])
    axis.set_ylabel(keys[0])
    if len(keys) > 1:
        axis.set_xticks(range(len(columns)), [str(c) for c in columns])
        axis.set_xlabel(keys[1])
    else:
        axis.set_xticks([])
    axis.set_title(title, fontsize=9)


def _fixed_note(table: pd.DataFrame, keys: Sequence[str]) -> str:
    fixed = [f"{key} = {table[key].iloc[0]}" for key in keys[2:]]
    return f" ({', '.join(fixed)})" if fixed else ""
