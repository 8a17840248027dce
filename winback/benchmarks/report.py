"""The leaderboard of a benchmark: per-user means with bootstrap CIs, paired differences against the best
baseline, and plots of net value, retention, interest and each policy's action map.

:func:`summarize` makes the table; :func:`write_report` writes it as ``leaderboard.md`` (CleanRL-style),
``results.csv`` and ``results.json`` beside four PNGs. Every CI is a bootstrap over users
(:mod:`winback.benchmarks.stats`) seeded from ``seed`` and the policy's name, so a policy's numbers do not
change when other policies join the comparison.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from winback.benchmarks.rollout import ACTIVE_WINDOW, INTEREST_BINS, RECENCY_BINS, USER_METRICS, PolicyRun
from winback.benchmarks.stats import Estimate, mean_ci, paired_difference

CATEGORY_COLORS = {"agent": "tab:blue", "baseline": "tab:orange", "reference": "tab:green"}
"""The categories of :class:`PolicyRun` and their color in the plots."""
CATEGORY_LINES = {"agent": "-", "baseline": "--", "reference": ":"}
NO_CONTACT = "no_contact"
"""Name of the run that never contacts: the zero of the share of oracle gain."""
AB_TEST = "ab_test"
"""The A/B-test-then-rollout baseline: teams' practice, which every policy is also compared with."""
LEVEL = 0.95
"""Confidence level of every interval."""
MEAN_METRICS = ("revenue", "margin", "discounts", "contact_costs", "contacts")
"""Per-user metrics reported as plain means (before the ``contacts_<kind>`` columns)."""
RATE_METRICS = ("opted_out", "active_at_end")
"""Per-user 0/1 metrics reported as shares of users."""
PLOTS = {
    "net_value.png": "Net value per user",
    "retention.png": "Share of users active",
    "interest.png": "Mean interest",
    "action_map.png": "Action maps",
}


def best_baseline(runs: Sequence[PolicyRun]) -> PolicyRun | None:
    """The ``baseline`` run with the highest mean net value (None without baselines)."""
    baselines = [run for run in runs if run.category == "baseline"]
    return max(baselines, key=lambda run: run.metrics["net_value"].mean(), default=None)


def summarize(runs: Sequence[PolicyRun], *, seed: int = 0) -> pd.DataFrame:
    """One row per policy, sorted by mean net value per user (descending).

    Columns: ``policy``, ``category``; ``net_value`` with ``net_value_low``/``_high`` (95% CI over
    users); ``vs_best_baseline`` with ``_low``/``_high``, the paired difference in net value against
    :func:`best_baseline` (if any baseline ran); ``vs_ab_test`` likewise against the :data:`AB_TEST`
    run (if it ran and is not the best baseline); ``share_of_oracle_gain``, (policy - no_contact) /
    (oracle - no_contact) in mean net value, where the oracle is the best ``reference`` run (if both
    it and a :data:`NO_CONTACT` run ran); the means of :data:`MEAN_METRICS` and every
    ``contacts_<kind>``; the shares :data:`RATE_METRICS`; and ``seconds`` of wall time.
    """
    _check(runs)
    best = best_baseline(runs)
    oracle = max(
        (run for run in runs if run.category == "reference"),
        key=lambda run: run.metrics["net_value"].mean(),
        default=None,
    )
    no_contact = next((run for run in runs if run.policy == NO_CONTACT), None)
    ab_test = next((run for run in runs if run.policy == AB_TEST and run is not best), None)
    compared = {"vs_best_baseline": best, "vs_ab_test": ab_test}
    kinds = [key for key in runs[0].metrics if key.startswith("contacts_")]
    rows = []
    for run in runs:
        net = run.metrics["net_value"]
        row: dict[str, Any] = {"policy": run.policy, "category": run.category}
        row |= _columns("net_value", mean_ci(net, rng=_rng(seed, run.policy, "net_value"), level=LEVEL))
        for name, other in compared.items():
            if other is not None:
                difference = paired_difference(
                    net, other.metrics["net_value"], rng=_rng(seed, run.policy, name), level=LEVEL
                )
                row |= _columns(name, difference)
        if oracle is not None and no_contact is not None:
            zero = no_contact.metrics["net_value"].mean()
            gain = oracle.metrics["net_value"].mean() - zero
            row["share_of_oracle_gain"] = float((net.mean() - zero) / gain) if gain != 0 else math.nan
        row |= {key: float(run.metrics[key].mean()) for key in (*MEAN_METRICS, *kinds, *RATE_METRICS)}
        row["seconds"] = float(run.seconds)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("net_value", ascending=False, kind="stable", ignore_index=True)


def write_report(
    runs: Sequence[PolicyRun],
    out_dir: Path,
    *,
    title: str,
    actions: tuple[str, ...],
    notes: Sequence[str] = (),
    seed: int = 0,
    table: pd.DataFrame | None = None,
) -> Path:
    """Write ``leaderboard.md``, ``results.csv``, ``results.json`` and the PNGs into ``out_dir``.

    ``actions`` names the actions indexed by :attr:`PolicyRun.action_map`, no contact (``none``) first
    as in the simulator; ``table`` is :func:`summarize` of ``runs`` with ``seed`` when the caller
    already has it (the bootstrap is not repeated). Returns the path of ``leaderboard.md``.
    """
    cells = (len(actions), len(INTEREST_BINS) - 1, len(RECENCY_BINS) - 1)
    for run in runs:
        if run.action_map.shape != cells:
            raise ValueError(
                f"{run.policy}: action map has shape {run.action_map.shape}, expected {cells} "
                f"for actions {actions} by interest and recency bins"
            )
    table = summarize(runs, seed=seed) if table is None else table
    by_name = {run.policy: run for run in runs}
    ordered = [by_name[name] for name in table["policy"]]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best = best_baseline(runs)
    table.to_csv(out_dir / "results.csv", index=False)
    results = {
        "title": title,
        "seed": seed,
        "level": LEVEL,
        "seeds": runs[0].seeds.tolist(),
        "users": runs[0].metrics["net_value"].shape[1],
        "periods": runs[0].retention.shape[1],
        "best_baseline": best.policy if best else None,
        "actions": list(actions),
        "interest_bins": INTEREST_BINS.tolist(),
        "recency_bins": RECENCY_BINS.tolist(),
        "notes": list(notes),
        "policies": [_plain_row(row) | _curves(by_name[row["policy"]]) for row in table.to_dict("records")],
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    no_contact = by_name.get(NO_CONTACT)
    figures = {
        "net_value.png": _plot_net_value(table, no_contact),
        "retention.png": _plot_curves(
            ordered, "retention", f"share of users active (bought within {ACTIVE_WINDOW} periods)"
        ),
        "interest.png": _plot_curves(ordered, "interest", "mean interest P(active next period)"),
        "action_map.png": _plot_action_maps(ordered, actions),
    }
    for name, figure in figures.items():  # pyplot-free figures: Agg renders, nothing to close
        figure.savefig(out_dir / name, dpi=110)
    leaderboard = out_dir / "leaderboard.md"
    leaderboard.write_text(_markdown(table, runs, title, best, notes))
    return leaderboard


def _check(runs: Sequence[PolicyRun]) -> None:
    if not runs:
        raise ValueError("no runs to summarize")
    names = [run.policy for run in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    first = runs[0]
    shape, keys = first.metrics["net_value"].shape, set(first.metrics)
    for run in runs:
        if run.category not in CATEGORY_COLORS:
            raise ValueError(f"{run.policy}: category {run.category!r} is not one of {list(CATEGORY_COLORS)}")
        if missing := set(USER_METRICS) - set(run.metrics):
            raise ValueError(f"{run.policy}: metrics lack {sorted(missing)}")
        if set(run.metrics) != keys or any(values.shape != shape for values in run.metrics.values()):
            raise ValueError(
                f"{run.policy}: metrics differ in names or (seeds, users) shape from {first.policy}'s; "
                "runs must cover the same users and seeds to be paired"
            )
        if not np.array_equal(run.seeds, first.seeds):
            raise ValueError(
                f"{run.policy} ran seeds {run.seeds.tolist()}, {first.policy} {first.seeds.tolist()}"
            )


def _rng(seed: int, policy: str, statistic: str) -> np.random.Generator:
    """A bootstrap generator fixed by ``seed``, the policy and the statistic (independent of run order)."""
    return np.random.default_rng([seed, zlib.crc32(f"{policy}/{statistic}".encode())])


def _columns(name: str, estimate: Estimate) -> dict[str, float]:
    return {name: estimate.mean, f"{name}_low": estimate.low, f"{name}_high": estimate.high}


def _plain(values: np.ndarray) -> Any:
    """Nested lists of floats with None where ``values`` is NaN (plain JSON)."""
    return np.where(np.isnan(values), None, values).tolist()


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in row.items()}


def _curves(run: PolicyRun) -> dict[str, Any]:
    """Seed-averaged retention and interest curves, and each action's share of decisions per map cell."""
    decisions = run.action_map.sum(axis=0)
    shares = np.divide(
        run.action_map, decisions, out=np.full(run.action_map.shape, np.nan), where=decisions > 0
    )
    return {
        "retention": run.retention.mean(axis=0).tolist(),
        "interest": run.interest.mean(axis=0).tolist(),
        "action_decisions": decisions.tolist(),
        "action_shares": _plain(shares),
    }


def _markdown(
    table: pd.DataFrame, runs: Sequence[PolicyRun], title: str, best: PolicyRun | None, notes: Sequence[str]
) -> str:
    seeds, users = runs[0].metrics["net_value"].shape
    kinds = [key for key in table.columns if key.startswith("contacts_")]
    columns: dict[str, Callable[[dict[str, Any]], str]] = {
        "policy": lambda r: f"`{r['policy']}`",
        "category": lambda r: r["category"],
        "net value [95% CI]": lambda r: interval(r, "net_value", "{:,.2f}"),
    }
    if best is not None:
        columns[f"vs `{best.policy}` [95% CI]"] = lambda r: interval(r, "vs_best_baseline", "{:+,.2f}")
    if "vs_ab_test" in table:
        columns[f"vs `{AB_TEST}` [95% CI]"] = lambda r: interval(r, "vs_ab_test", "{:+,.2f}")
    if "share_of_oracle_gain" in table:
        columns["share of oracle gain"] = lambda r: _percent(r["share_of_oracle_gain"])
    for key in MEAN_METRICS:
        columns[key.replace("_", " ")] = lambda r, key=key: f"{r[key]:,.2f}"
    for key in kinds:
        columns[key.removeprefix("contacts_")] = lambda r, key=key: f"{r[key]:.2f}"
    columns |= {
        "opted out": lambda r: _percent(r["opted_out"]),
        "active at end": lambda r: _percent(r["active_at_end"]),
        "seconds": lambda r: f"{r['seconds']:,.1f}",
    }
    lines = ["| " + " | ".join(columns) + " |", "|:---|:---|" + "---:|" * (len(columns) - 2)]
    lines += [
        "| " + " | ".join(cell(row) for cell in columns.values()) + " |" for row in table.to_dict("records")
    ]
    paired = oracle = ""
    if best is not None:
        paired = (
            f" The vs `{best.policy}` column is the paired difference in net value against `{best.policy}`, "
            "the baseline with the highest mean net value, paired by seed and user (common random numbers)"
            + (f"; vs `{AB_TEST}` likewise against the A/B test" if "vs_ab_test" in table else "")
            + "."
        )
    if "share_of_oracle_gain" in table:
        name = table.loc[table["category"] == "reference", "policy"].iloc[0]
        oracle = (
            f" Share of oracle gain is (policy - `{NO_CONTACT}`) / (`{name}` - `{NO_CONTACT}`) in mean net "
            "value."
        )
    kind_text = f" ({', '.join(k.removeprefix('contacts_') for k in kinds)} by kind)" if kinds else ""
    description = (
        f"Each number is per user over the {runs[0].retention.shape[1]}-period horizon, averaged over "
        f"{seeds} seeds x {users:,} users. Net value is margin - discounts - contact costs. Brackets are "
        f"{LEVEL:.0%} bootstrap CIs (BCa) over users, the independent unit: each user is averaged over seeds "
        f"first.{paired}{oracle} Contacts are delivered contacts per user{kind_text}; opted out and active "
        "at end are shares of users; seconds is the wall time of the policy's runs."
    )
    note_text = "## Notes\n\n" + "\n".join(f"- {note}" for note in notes) + "\n\n" if notes else ""
    figures = "\n\n".join(f"![{caption}]({name})" for name, caption in PLOTS.items())
    return f"# {title}\n\n{description}\n\n" + "\n".join(lines) + f"\n\n{note_text}## Plots\n\n{figures}\n"


def interval(row: dict[str, Any], name: str, style: str) -> str:
    low, mean, high = (style.format(row[key]) for key in (f"{name}_low", name, f"{name}_high"))
    return f"{mean} [{low}, {high}]"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def palette(n: int) -> tuple:
    return colormaps["tab10" if n <= 10 else "tab20"].colors


def _plot_net_value(table: pd.DataFrame, no_contact: PolicyRun | None) -> Figure:
    figure = Figure(figsize=(7.5, 1.4 + 0.35 * len(table)), layout="constrained")
    axis = figure.add_subplot()
    y = np.arange(len(table))[::-1]
    for category, color in CATEGORY_COLORS.items():
        rows = (table["category"] == category).to_numpy()
        if rows.any():
            mean = table["net_value"].to_numpy()[rows]
            errors = [
                mean - table["net_value_low"].to_numpy()[rows],
                table["net_value_high"].to_numpy()[rows] - mean,
            ]
            axis.errorbar(mean, y[rows], xerr=errors, fmt="o", capsize=3, color=color, label=category)
    if no_contact is not None:
        axis.axvline(no_contact.metrics["net_value"].mean(), color="grey", ls="--", lw=1, label=NO_CONTACT)
    axis.set_yticks(y, table["policy"])
    axis.set(title=PLOTS["net_value.png"], xlabel=f"net value per user ({LEVEL:.0%} CI over users)")
    axis.legend(fontsize=8)
    return figure


def _plot_curves(runs: Sequence[PolicyRun], attribute: str, ylabel: str) -> Figure:
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.add_subplot()
    for run, color in zip(runs, palette(len(runs)), strict=False):
        curve = getattr(run, attribute).mean(axis=0)
        axis.plot(np.arange(len(curve)), curve, CATEGORY_LINES[run.category], color=color, label=run.policy)
    title = PLOTS[f"{attribute}.png"]
    axis.set(title=f"{title} (mean over seeds)", xlabel="period", ylabel=ylabel)
    axis.legend(fontsize=8, ncols=2)
    return figure


def _plot_action_maps(runs: Sequence[PolicyRun], actions: tuple[str, ...]) -> Figure:
    columns = min(3, len(runs))
    rows = -(-len(runs) // columns)
    figure = Figure(figsize=(4.8 * columns, 3.8 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    colormap = ListedColormap(palette(len(actions))[: len(actions)])
    for axis, run in zip(axes.flat, runs, strict=False):
        decisions = run.action_map.sum(axis=0)
        top = np.ma.masked_where(decisions == 0, run.action_map.argmax(axis=0))
        axis.imshow(top, cmap=colormap, vmin=-0.5, vmax=len(actions) - 0.5, origin="lower", aspect="auto")
        contacts = 1 - run.action_map[0] / np.maximum(decisions, 1)
        for i, r in zip(*np.nonzero(decisions), strict=True):
            axis.text(r, i, f"{contacts[i, r]:.0%}", ha="center", va="center", fontsize=7)
        axis.set_xticks(range(len(RECENCY_BINS) - 1), _recency_labels(), rotation=45)
        axis.set_yticks(range(len(INTEREST_BINS) - 1), _interest_labels())
        axis.set(title=run.policy, xlabel="recency (periods)", ylabel="interest")
    for axis in axes.flat[len(runs) :]:
        axis.set_visible(False)
    figure.legend(
        handles=[Patch(color=colormap(k), label=name) for k, name in enumerate(actions)],
        loc="outside lower center",
        ncols=min(len(actions), 6),
        title="most frequent action per cell (blank: no users); text: share of decisions that contact",
        fontsize=8,
        title_fontsize=8,
    )
    return figure


def _interest_labels() -> list[str]:
    return [f"{low:g}-{high:g}" for low, high in pairwise(INTEREST_BINS)]


def _recency_labels() -> list[str]:
    labels = []
    for low, high in pairwise(RECENCY_BINS):
        if high == RECENCY_BINS[-1]:
            labels.append(f"{low}+")
        else:
            labels.append(f"{low}" if high - low == 1 else f"{low}-{high - 1}")
    return labels
