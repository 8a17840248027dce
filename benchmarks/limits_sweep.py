"""The sweep over the care team's size and the weekly coupon budget: the agent trained under prices,
the best tuned rule and the allocation-aware rule in every cell, as a table and heatmaps.

Reads the directory of a ``winback sweep`` whose grid's first two keys are
``operations.care_capacity`` and ``operations.coupon_budget_per_period`` (0: unlimited) and writes
``OUT/limits.md`` and ``OUT/limits.png``::

    winback train --scenario benchmarks/scenarios/team_and_budget.toml --timesteps 1000000 \\
        --seed 0 --seed 1 --out runs/scen/agent-team_and_budget
    winback sweep benchmarks/scenarios/team_and_budget.toml \\
        --grid operations.care_capacity=1,2,4,8,0 --grid operations.coupon_budget_per_period=100,300,1000,0 \\
        --policies no_contact,fixed_cadence,interest_threshold,recency_rule,prioritized_rule \\
        --agent runs/scen/agent-team_and_budget --allocation --seeds 2 --tuning-seeds 1 --tuning-users 2000 \\
        --workers 2 --out runs/scen/sweep
    python benchmarks/limits_sweep.py --sweep runs/scen/sweep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from winback.benchmarks.suite import RULES
from winback.benchmarks.whatif import figure

TEAM, BUDGET = "operations.care_capacity", "operations.coupon_budget_per_period"
ALLOCATED_RULE = "prioritized_rule"


def cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the agent, the best tuned rule and the allocation-aware rule, with what the
    agent used of the limits."""
    rows = []
    for (team, budget), cell in table.groupby([TEAM, BUDGET], sort=False):
        by = cell.set_index("policy")
        agent = str(by.index[by["category"] == "agent"][0])
        rules = by.loc[[r for r in RULES if r in by.index]]
        best = str(rules["net_value"].idxmax())
        row = {"team": int(team), "budget": int(budget), "agent": agent, "best_rule": best}
        for key, name in (("agent", agent), ("rule", best), ("allocated", ALLOCATED_RULE)):
            row |= {f"{key}{suffix}": by.loc[name, f"net_value{suffix}"] for suffix in ("", "_low", "_high")}
        for key in ("care_team", "coupon_budget", "deadline_drops", "budget_drops", "periods_over_budget"):
            row[f"agent_{key}"] = by.loc[agent, key] if key in by.columns else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def limit(value: int, unit: str) -> str:
    """A limit's cell label: ``unlimited`` for 0."""
    return "unlimited" if value == 0 else f"{value} {unit}".strip()


def markdown(frame: pd.DataFrame, sweep: Path, seconds: float) -> str:
    lines = [
        "# Care team size x weekly coupon budget",
        "",
        f"From `{sweep}` (sweep wall time {seconds:.0f} s). Net value per user [95% CI]; the best rule "
        "is the best of the tuned rules in the cell; the allocation-aware rule (`prioritized_rule`) "
        "and the agent decide under the allocation; the agent's use of the limits is the mean per "
        "period over seeds (care team: messages written over what the team can write; coupon budget: "
        "coupons sent over the budget).",
        "",
        "| care team | coupon budget | agent | best rule | `prioritized_rule` | agent minus the better "
        "| care team used | coupon budget used | dropped past the deadline | periods over budget |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples():
        better = max(row.rule, row.allocated)
        team_used, budget_used = figure(row.agent_care_team), figure(row.agent_coupon_budget)
        drops, over = figure(row.agent_deadline_drops, ".2f"), figure(row.agent_periods_over_budget, ".0f")
        lines.append(
            f"| {limit(row.team, 'agent' if row.team == 1 else 'agents')} | {limit(row.budget, 'a week')} | "
            f"{row.agent:.2f} [{row.agent_low:.2f}, {row.agent_high:.2f}] | "
            f"`{row.best_rule}` {row.rule:.2f} [{row.rule_low:.2f}, {row.rule_high:.2f}] | "
            f"{row.allocated:.2f} [{row.allocated_low:.2f}, {row.allocated_high:.2f}] | "
            f"{row.agent - better:+.2f} | {team_used} | {budget_used} | {drops} | {over} |"
        )
    lines += ["", "![Net value per user by care team and coupon budget](limits.png)", ""]
    return "\n".join(lines)


def plot(frame: pd.DataFrame, out: Path) -> None:
    teams = list(dict.fromkeys(frame["team"]))
    budgets = list(dict.fromkeys(frame["budget"]))
    panels = {
        "agent (trained under prices)": frame["agent"],
        "best tuned rule": frame["rule"],
        "prioritized_rule (allocation-aware)": frame["allocated"],
        "agent minus the better rule": frame["agent"] - np.maximum(frame["rule"], frame["allocated"]),
    }
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    low = min(float(v.min()) for k, v in panels.items() if "minus" not in k)
    high = max(float(v.max()) for k, v in panels.items() if "minus" not in k)
    for ax, (title, values) in zip(axes, panels.items(), strict=True):
        grid = np.full((len(teams), len(budgets)), np.nan)
        for row, value in zip(frame.itertuples(), values, strict=True):
            grid[teams.index(row.team), budgets.index(row.budget)] = value
        difference = "minus" in title
        span = float(np.nanmax(np.abs(grid))) if difference else None
        image = ax.imshow(
            grid,
            cmap="RdBu" if difference else "viridis",
            vmin=-span if difference else low,
            vmax=span if difference else high,
            aspect="auto",
        )
        for i in range(len(teams)):
            for j in range(len(budgets)):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:+.2f}" if difference else f"{grid[i, j]:.1f}",
                    ha="center",
                    va="center",
                )
        ax.set_xticks(range(len(budgets)), [limit(b, "").strip() for b in budgets])
        ax.set_yticks(range(len(teams)), [limit(t, "").strip() for t in teams])
        ax.set_xlabel("coupons a week")
        ax.set_ylabel("care agents")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Net value per user by care team size and weekly coupon budget")
    fig.tight_layout()
    fig.savefig(out / "limits.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, required=True, help="a winback sweep --out directory")
    parser.add_argument("--out", type=Path, help="where to write (default: the sweep directory)")
    args = parser.parse_args()
    out = args.out or args.sweep
    out.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(args.sweep / "sweep.csv")
    seconds = json.loads((args.sweep / "sweep.json").read_text())["seconds"]["total"]
    frame = cells(table)
    plot(frame, out)
    (out / "limits.md").write_text(markdown(frame, args.sweep, seconds))
    print((out / "limits.md").read_text())


if __name__ == "__main__":
    main()
