"""A sweep's report: the table of each policy's mean net value per user with its CI and the best
deployable policy in every cell, written as ``sweep.csv``, ``sweep.json`` and ``sweep.md`` with the
heatmaps of :mod:`~winback.benchmarks.sweep.plots`."""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback.benchmarks.backends import Backend
from winback.benchmarks.report import LEVEL
from winback.benchmarks.stats import mean_ci
from winback.benchmarks.sweep.grid import SweepConfig
from winback.benchmarks.sweep.plots import plot_best, plot_net_value


def table_of(
    config: SweepConfig,
    cells: Sequence[tuple[Any, ...]],
    policies: Sequence[str],
    categories: dict[str, str],
    net: dict[tuple[int, str], np.ndarray],
    used: dict[tuple[int, str], dict[str, float]] | None = None,
) -> pd.DataFrame:
    """The table of :attr:`SweepResult.table` from each (cell, policy)'s (seeds, users) net values,
    with what it ``used`` of the limits where users share them."""
    rows = []
    for c, values in enumerate(cells):
        cell_rows = []
        for policy in policies:
            rng = np.random.default_rng(zlib.crc32(policy.encode()))  # a policy's CI: fixed by its data
            estimate = mean_ci(net[c, policy], rng=rng, level=LEVEL)
            cell_rows.append(
                {
                    **{axis.key: value for axis, value in zip(config.axes, values, strict=True)},
                    "policy": policy,
                    "category": categories[policy],
                    "net_value": estimate.mean,
                    "net_value_low": estimate.low,
                    "net_value_high": estimate.high,
                    **(used or {}).get((c, policy), {}),
                }
            )
        deployable = [row for row in cell_rows if row["category"] != "reference"] or cell_rows
        best = max(deployable, key=lambda row: row["net_value"])["policy"]
        rows += [row | {"best": best} for row in cell_rows]
    return pd.DataFrame(rows)


def write_report(
    config: SweepConfig,
    backend: Backend,
    table: pd.DataFrame,
    user_periods: int,
    seconds: dict[str, float],
    tasks: dict[str, int],
    notes: Sequence[str],
    out_dir: Path,
) -> Path:
    """``sweep.csv``, ``sweep.json``, the heatmaps and ``sweep.md`` (returned) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "sweep.csv", index=False)
    workers = backend.workers
    summary = {
        "scenario": config.bench.scenario,
        "grid": {axis.key: list(axis.values) for axis in config.axes},
        "bench": {**dataclasses.asdict(config.bench), "agents": [str(a) for a in config.bench.agents]},
        "backend": backend.name,
        "workers": workers,
        "tasks": tasks,
        "seconds": seconds,
        "user_periods": user_periods,
        "user_periods_per_second": user_periods / seconds["evaluation"],
        "notes": list(notes),
    }
    (out_dir / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    keys = [axis.key for axis in config.axes]
    for figure, name in (
        (plot_net_value(table, keys), "net_value.png"),
        (plot_best(table, keys), "best_policy.png"),
    ):
        figure.savefig(out_dir / name, dpi=110)
    pivot = table.pivot_table(index=keys, columns="policy", values="net_value", sort=False)
    lows = table.pivot_table(index=keys, columns="policy", values="net_value_low", sort=False)
    highs = table.pivot_table(index=keys, columns="policy", values="net_value_high", sort=False)
    best = table.groupby(keys, sort=False)["best"].first()
    policies = list(dict.fromkeys(table["policy"]))
    lines = [
        f"# Sweep of scenario `{config.bench.scenario}`",
        "",
        f"Mean net value per user [{LEVEL:.0%} CI over users] in each cell; **best**: the best policy "
        "that could be deployed (references aside).",
        "",
        "| "
        + " | ".join(f"`{k}`" for k in keys)
        + " | "
        + " | ".join(f"`{p}`" for p in policies)
        + " | best |",
        "|" + "---:|" * len(keys) + "---:|" * len(policies) + "---|",
    ]
    for index in pivot.index:
        values = index if isinstance(index, tuple) else (index,)
        cells = [
            f"{pivot.loc[index, p]:.2f} [{lows.loc[index, p]:.2f}, {highs.loc[index, p]:.2f}]"
            for p in policies
        ]
        lines.append(
            "| " + " | ".join(map(str, values)) + " | " + " | ".join(cells) + f" | `{best[index]}` |"
        )
    lines += [
        "",
        "![net value](net_value.png)",
        "",
        "![best policy](best_policy.png)",
        "",
        f"{tasks['tuning']} tuning and {tasks['evaluation']} evaluation tasks on the {backend.name} backend "
        f"({'the cluster' if workers is None else workers} worker{'' if workers == 1 else 's'}): "
        f"{seconds['total']:.1f} s in all, evaluation "
        f"{user_periods:,} user-periods in {seconds['evaluation']:.1f} s "
        f"({summary['user_periods_per_second']:,.0f} per second).",
        *(f"- {note}" for note in notes),
    ]
    path = out_dir / "sweep.md"
    path.write_text("\n".join(lines) + "\n")
    return path
