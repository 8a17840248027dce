"""The what-if report: the policies of a benchmark under a scenario's operations, side by side.

``winback whatif`` runs the benchmark (:func:`~winback.benchmarks.suite.run_benchmark`: tuned
baselines, agents and the oracle, through the scenario's operations) and adds ``whatif.md`` with
net value and retention beside what operations did: contacts requested and served, why the others
were dropped, the care team's queue and the coupon budget's use, as tables and PNGs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from winback.benchmarks.backends import Backend
from winback.benchmarks.report import CATEGORY_LINES, LEVEL, interval, palette
from winback.benchmarks.rollout import PolicyRun
from winback.benchmarks.suite import BenchConfig, run_benchmark
from winback.scenarios.operations import DROPS
from winback.scenarios.scenario import Scenario, load_scenario
from winback.scenarios.schema import Operations
from winback.simulator.response import CARE

PLOTS = {
    "contacts.png": "Contacts per period: requested (dashed) and served (solid)",
    "care_queue.png": "Care messages waiting for an agent at the end of each period",
    "budget.png": "Coupons sent per period (taken from the budget, when there is one)",
}


def run_whatif(
    config: BenchConfig, out_dir: Path, *, progress: bool = True, backend: Backend | None = None
) -> Path:
    """The benchmark of ``config`` (its evaluation on ``backend``, :func:`run_benchmark`) into
    ``out_dir`` and its what-if report; returns ``whatif.md``."""
    result = run_benchmark(config, out_dir, progress=progress, backend=backend)
    return write_whatif_report(result.runs, result.table, load_scenario(config.scenario), out_dir)


def operations_table(runs: Sequence[PolicyRun], kinds: Sequence[str]) -> pd.DataFrame:
    """One row per policy and contact kind: contacts per period (mean over seeds and periods)
    requested, served and dropped by reason, with the share served."""
    rows = []
    for run in runs:
        ops = run.operations
        for k, kind in enumerate(kinds):
            requested = float(ops["requested"][:, :, k].mean())
            row = {"policy": run.policy, "kind": kind, "requested": requested}
            row["from_campaigns"] = float(ops["campaign"][:, :, k].mean())
            row["served"] = float(ops["served"][:, :, k].mean())
            row |= {f"dropped_{reason}": float(ops[f"dropped_{reason}"][:, :, k].mean()) for reason in DROPS}
            row["served_share"] = row["served"] / requested if requested else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def write_whatif_report(
    runs: Sequence[PolicyRun], table: pd.DataFrame, scenario: Scenario, out_dir: Path
) -> Path:
    """Write ``whatif.md``, ``operations.csv`` and :data:`PLOTS` into ``out_dir`` (beside the
    benchmark's leaderboard and plots); ``table`` is the leaderboard's rows
    (:func:`~winback.benchmarks.report.summarize` of ``runs``). Returns the path of ``whatif.md``."""
    kinds = scenario.simulator.response.kinds
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {run.policy: run for run in runs}
    ordered = [by_name[name] for name in table["policy"]]
    operations = operations_table(ordered, kinds)
    operations.to_csv(out_dir / "operations.csv", index=False)
    figures = {
        "contacts.png": _plot_contacts(ordered, kinds),
        "care_queue.png": _plot_series(ordered, "care_queue", "care_queue.png", "messages waiting"),
        "budget.png": _plot_series(
            ordered, "coupons_used", "budget.png", "coupons", scenario.operations.coupon_budget_per_period
        ),
    }
    for name, figure in figures.items():
        figure.savefig(out_dir / name, dpi=110)
    path = out_dir / "whatif.md"
    path.write_text(_markdown(scenario, table, ordered, operations))
    return path


def describe_operations(operations: Operations) -> list[str]:
    """The limits in force, one line each (``no limits`` when there are none)."""
    lines = []
    if operations.coupon_budget_per_period:
        lines.append(f"coupon budget: {operations.coupon_budget_per_period} coupons per period")
    if operations.care_capacity:
        rate = operations.care_capacity / operations.care_service_time
        lines.append(
            f"care team: {operations.care_capacity} agents, {operations.care_service_time:g} periods per "
            f"message (about {rate:.4g} messages per period), a message "
            f"waits at most {_periods(operations.care_deadline)} after the one it was sent in"
        )
    lines += [
        f"delivery delay of {kind}: {_periods(delay)}"
        for kind, delay in operations.delivery_delay.items()
        if delay
    ]
    return lines or ["no limits: every contact reaches its user in the period it is sent"]


def _periods(count: int) -> str:
    return f"{count} period" if count == 1 else f"{count} periods"


def _markdown(
    scenario: Scenario, table: pd.DataFrame, runs: Sequence[PolicyRun], operations: pd.DataFrame
) -> str:
    seeds, users = runs[0].metrics["net_value"].shape
    lines = [
        f"# What if: scenario `{scenario.name}`",
        "",
        scenario.description,
        "",
        f"{users} held-out users x {seeds} seeds over {scenario.horizon} periods; the full benchmark "
        "(paired differences, costs, action maps) is in [leaderboard.md](leaderboard.md).",
        "",
        "Operations:",
        "",
        *(f"- {line}" for line in describe_operations(scenario.operations)),
        *(
            f"- demand shock: odds of buying x{shock.multiplier:g} in periods {shock.start}-{shock.end - 1}"
            for shock in scenario.shocks
        ),
        *(
            f"- campaign: {campaign.kind} to every user the policy leaves alone in period {campaign.period}"
            for campaign in scenario.campaigns
        ),
        "",
        "## Net value and retention",
        "",
        f"| policy | net value per user [{LEVEL:.0%} CI] | active at end | opted out | contacts per user |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in table.to_dict("records"):
        lines.append(
            f"| `{row['policy']}` | {interval(row, 'net_value', '{:.2f}')} | {row['active_at_end']:.1%} "
            f"| {row['opted_out']:.1%} | {row['contacts']:.2f} |"
        )
    lines += [
        "",
        "![net value](net_value.png)",
        "",
        "![retention](retention.png)",
        "",
        "## Operations",
        "",
        "Contacts per period (mean over seeds and periods): requested by the policy and campaigns (of "
        "which by campaigns), served (delivered to users), and dropped: "
        + "; ".join(f"`{reason}`: {text}" for reason, text in DROPS.items())
        + ".",
        "",
        "| policy | kind | requested | by campaigns | served | served share | "
        + " | ".join(f"`{reason}`" for reason in DROPS)
        + " |",
        "|---|---|" + "---:|" * (4 + len(DROPS)),
    ]
    for row in operations.to_dict("records"):
        if row["requested"] == 0:
            continue
        drops = " | ".join(f"{row[f'dropped_{reason}']:.1f}" for reason in DROPS)
        lines.append(
            f"| `{row['policy']}` | {row['kind']} | {row['requested']:.1f} | {row['from_campaigns']:.1f} | "
            f"{row['served']:.1f} | {row['served_share']:.1%} | {drops} |"
        )
    lines += [
        "",
        "Coupons redeemed: the share of expired coupons under which the user bought (the discount was "
        "paid on purchases the coupon may or may not have caused).",
        "",
        "| policy | care queue, mean | care queue, max | coupons per period | coupons redeemed | "
        "in flight at the end |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        ops = run.operations
        expired = ops["coupons_expired"].sum()
        redeemed = f"{ops['coupons_redeemed'].sum() / expired:.1%}" if expired else "n/a"
        lines.append(
            f"| `{run.policy}` | {ops['care_queue'].mean():.1f} | {ops['care_queue'].max()} | "
            f"{ops['coupons_used'].mean():.1f} | {redeemed} | {ops['in_flight'][:, -1].mean():.1f} |"
        )
    lines += _limits_used(scenario, runs)
    lines += ["", *(f"![{title}]({name})\n" for name, title in PLOTS.items())]
    return "\n".join(lines)


def limits_used(operations: Operations, kinds: Sequence[str], run: PolicyRun) -> dict[str, float]:
    """How much of each limit ``run`` used, mean over seeds and periods (NaN where there is no such
    limit): ``coupon_budget`` (coupons sent over the budget), ``care_team`` (care messages written:
    delivered, refused on arrival or colliding, over what the team can write in a period); and what it
    lost to them: ``budget_drops`` and ``deadline_drops`` per period, ``periods_over_budget``, and
    ``collision_drops`` per period (contacts that arrived late, in a period that already held one)."""
    ops, budget = run.operations, operations.coupon_budget_per_period
    used = {"coupon_budget": np.nan, "care_team": np.nan}
    if budget:
        used["coupon_budget"] = float(ops["coupons_used"].mean() / budget)
    if operations.care_capacity:
        care = list(kinds).index(CARE)
        written = sum(ops[key][:, :, care] for key in ("served", "dropped_refused", "dropped_collision"))
        used["care_team"] = float(written.mean() / (operations.care_capacity / operations.care_service_time))
    return {
        **used,
        "budget_drops": float(ops["dropped_budget"].sum(axis=2).mean()),
        "deadline_drops": float(ops["dropped_deadline"].sum(axis=2).mean()),
        "periods_over_budget": float((ops["coupons_used"] > budget).sum()) if budget else 0.0,
        "collision_drops": float(ops["dropped_collision"].sum(axis=2).mean()),
    }


def figure(value: float, spec: str = ".1%") -> str:
    """``value`` formatted by ``spec`` for a report, ``n/a`` where it is NaN (no such limit)."""
    return "n/a" if np.isnan(value) else format(value, spec)


def _limits_used(scenario: Scenario, runs: Sequence[PolicyRun]) -> list[str]:
    """How much of each limit every policy used (mean over seeds and periods), and the allocation's
    prices where it ran: what a budget or a team leaves unused, and what it costs at the margin."""
    operations = scenario.operations
    if not operations.shared:
        return []
    lines = [
        "",
        "Limits used: coupons sent over the budget, and care messages written (delivered, refused on "
        "arrival or colliding) over what the team can write in a period; the allocation's prices "
        "(`--allocation`: a contact goes to a user whose score gains more than the price; for an agent "
        "trained under prices, the price in dollars it was shown) are 0 where it did not run.",
        "",
        "| policy | coupon budget used | care team used | price per coupon | price per care message |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        used = limits_used(operations, scenario.simulator.response.kinds, run)
        budget, team = figure(used["coupon_budget"]), figure(used["care_team"])
        ops = run.operations
        lines.append(
            f"| `{run.policy}` | {budget} | {team} | {ops['price_coupons'].mean():.3f} | "
            f"{ops['price_care_messages'].mean():.3f} |"
        )
    return lines


def _plot_contacts(runs: Sequence[PolicyRun], kinds: Sequence[str]) -> Figure:
    figure = Figure(figsize=(5 * len(kinds), 4.2), layout="constrained")
    axes = figure.subplots(1, len(kinds), squeeze=False)[0]
    colors = palette(len(runs))
    for axis, (k, kind) in zip(axes, enumerate(kinds), strict=True):
        for run, color in zip(runs, colors, strict=False):
            requested = run.operations["requested"][:, :, k].mean(axis=0)
            served = run.operations["served"][:, :, k].mean(axis=0)
            if not requested.any():
                continue
            periods = np.arange(len(served))
            axis.plot(periods, served, "-", color=color, label=run.policy)
            axis.plot(periods, requested, "--", color=color, lw=0.8)
        axis.set(title=kind, xlabel="period", ylabel="contacts (mean over seeds)")
        if axis.lines:
            axis.legend(fontsize=7)
    figure.suptitle(PLOTS["contacts.png"])
    return figure


def _plot_series(runs: Sequence[PolicyRun], key: str, plot: str, ylabel: str, limit: int = 0) -> Figure:
    """The (S, T) operations series ``key`` of each run, averaged over seeds, with an optional limit line."""
    figure = Figure(figsize=(8, 4.2), layout="constrained")
    axis = figure.add_subplot()
    for run, color in zip(runs, palette(len(runs)), strict=False):
        curve = run.operations[key].mean(axis=0)
        axis.plot(np.arange(len(curve)), curve, CATEGORY_LINES[run.category], color=color, label=run.policy)
    if limit:
        axis.axhline(limit, color="grey", ls=":", lw=1, label="budget")
    axis.set(title=f"{PLOTS[plot]} (mean over seeds)", xlabel="period", ylabel=ylabel)
    axis.legend(fontsize=8, ncols=2)
    return figure
