"""The built-in scenarios, each with an agent trained on that scenario, against the tuned baselines.

For every built-in scenario, the benchmark ``winback bench`` runs::

    winback bench --policies all --agent AGENTS/agent-<scenario> --scenario <scenario> \\
        --seeds 3 --tuning-seeds 1 --tuning-users 2000 --out OUT/<scenario>

and where the scenario's operations limit coupons or care, with ``--allocation`` and the
allocation-aware rule ``prioritized_rule`` among the baselines (the agent, trained there under the
price of what is limited, reads the price the allocation sets each period). Writes each benchmark's
report to ``OUT/<scenario>/`` (``OUT/results.json`` after each: a stopped run resumes from it), and
``OUT/report.md``: net value per user of every policy by
scenario, the agent against the best tuned baseline (paired by user and seed, 95% CI) with its share
of the oracle's gain, and under limits what the agent used of them and lost to them; with
``OUT/agent_vs_best.png``.

Train the agents first, one per scenario (two seeds, the better on validation users kept)::

    for s in default new_user_surge coupon_costly high_fatigue care_team_limited holiday_peak faster_decay; do
        winback train --algo maskable_ppo --scenario $s --timesteps 1000000 --seed 0 --seed 1 \\
            --out runs/scen/agent-$s
    done
    python benchmarks/scenario_agents.py --agents runs/scen --out runs/scen/bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from winback.benchmarks.suite import ALL_POLICIES, BenchConfig, run_benchmark
from winback.benchmarks.whatif import figure, limits_used
from winback.scenarios.scenario import BUILT_IN, load_scenario

SCENARIOS = (
    "default",
    "new_user_surge",
    "coupon_costly",
    "high_fatigue",
    "care_team_limited",
    "holiday_peak",
    "faster_decay",
)


def bench(scenario: str, args: argparse.Namespace) -> dict:
    """One scenario's benchmark: its table, and the agent's use of the limits."""
    world = load_scenario(scenario)
    under_limits = world.operations.shared
    config = BenchConfig(
        scenario=scenario,
        policies=(*ALL_POLICIES, "prioritized_rule") if under_limits else ALL_POLICIES,
        agents=(args.agents / f"agent-{scenario}",),
        seeds=args.seeds,
        tuning_seeds=args.tuning_seeds,
        tuning_users=args.tuning_users,
        allocation=under_limits,
    )
    started = time.perf_counter()
    result = run_benchmark(config, args.out / scenario, progress=False)
    agent = next(run for run in result.runs if run.category == "agent")
    return {
        "scenario": scenario,
        "allocation": under_limits,
        "seconds": round(time.perf_counter() - started, 1),
        "table": result.table.to_dict("records"),
        "agent_limits": limits_used(world.operations, world.simulator.response.kinds, agent)
        if under_limits
        else None,
        "agent_prices": {
            key: float(agent.operations[key].mean()) for key in ("price_coupons", "price_care_messages")
        },
    }


def report(results: list[dict], args: argparse.Namespace) -> str:
    tables = {r["scenario"]: pd.DataFrame(r["table"]).set_index("policy") for r in results}
    scenarios = [r["scenario"] for r in results]
    baselines = list(dict.fromkeys(p for t in tables.values() for p in t.index[t["category"] != "agent"]))
    command = (
        f"python benchmarks/scenario_agents.py --agents {args.agents} --out {args.out} --seeds {args.seeds} "
        f"--tuning-seeds {args.tuning_seeds} --tuning-users {args.tuning_users}"
    )
    lines = [
        "# The built-in scenarios, each with an agent trained on it",
        "",
        f"```bash\n{command}\n```",
        "",
        "Net value per user over the horizon [95% CI]; the agent of each column was trained on that "
        "scenario (`agent`); scenarios whose operations limit coupons or care run with `--allocation`.",
        "",
        "| policy | " + " | ".join(f"`{s}`" for s in scenarios) + " |",
        "|---|" + "---:|" * len(scenarios),
    ]
    lines.append(
        "| agent trained on the scenario | "
        + " | ".join(_cell(tables[s], _agent(tables[s])) for s in scenarios)
        + " |"
    )
    for policy in baselines:
        cells = [_cell(tables[s], policy) if policy in tables[s].index else "" for s in scenarios]
        lines.append(f"| `{policy}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| scenario | agent | best tuned baseline | agent minus best [95% CI] | share of the oracle's gain | "
        "wall |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        table = tables[r["scenario"]]
        agent = table.loc[_agent(table)]
        baselines = table[table["category"] == "baseline"]
        best = baselines["net_value"].idxmax()
        oracle, floor = table.loc["oracle", "net_value"], table.loc["no_contact", "net_value"]
        share = (agent["net_value"] - floor) / (oracle - floor)
        best_value = baselines.loc[best, "net_value"]
        lines.append(
            f"| `{r['scenario']}` | {agent['net_value']:.2f} | `{best}` {best_value:.2f} | "
            f"{agent['vs_best_baseline']:+.2f} [{agent['vs_best_baseline_low']:+.2f}, "
            f"{agent['vs_best_baseline_high']:+.2f}] | {share:.1%} | {r['seconds']:.0f} s |"
        )
    under = [r for r in results if r["agent_limits"] is not None]
    if under:
        lines += [
            "",
            "The agent under the limits (mean per period over seeds): what it used of each and lost to them.",
            "",
            "| scenario | coupon budget used | periods over budget | care team used "
            "| dropped past the deadline | dropped for the budget | colliding on arrival "
            "| mean price shown per care message | per coupon |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in under:
            used, prices = r["agent_limits"], r["agent_prices"]
            budget, team = figure(used["coupon_budget"]), figure(used["care_team"])
            lines.append(
                f"| `{r['scenario']}` | {budget} | {used['periods_over_budget']:.0f} | {team} | "
                f"{used['deadline_drops']:.2f} | {used['budget_drops']:.2f} | "
                f"{used['collision_drops']:.2f} | "
                f"{prices['price_care_messages']:.3f} | {prices['price_coupons']:.3f} |"
            )
    lines += ["", "![Agent minus the best tuned baseline](agent_vs_best.png)", ""]
    return "\n".join(lines)


def plot(results: list[dict], out: Path) -> None:
    """The agent minus the best tuned baseline per scenario, with its 95% CI."""
    rows = []
    for r in results:
        table = pd.DataFrame(r["table"]).set_index("policy")
        agent = table.loc[_agent(table)]
        rows.append(
            (r["scenario"], *agent[["vs_best_baseline", "vs_best_baseline_low", "vs_best_baseline_high"]])
        )
    names, mid, low, high = zip(*rows, strict=True)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(names))
    ax.bar(x, mid, color=["tab:green" if lo > 0 else "tab:red" for lo in low])
    ax.errorbar(x, mid, yerr=[np.subtract(mid, low), np.subtract(high, mid)], fmt="none", ecolor="black")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("net value per user, agent - best baseline")
    ax.set_title("Each scenario's own agent against its best tuned baseline (paired 95% CI)")
    fig.tight_layout()
    fig.savefig(out / "agent_vs_best.png", dpi=120)
    plt.close(fig)


def _agent(table: pd.DataFrame) -> str:
    return str(table.index[table["category"] == "agent"][0])


def _cell(table: pd.DataFrame, name: str) -> str:
    row = table.loc[name]
    return f"{row['net_value']:.2f} [{row['net_value_low']:.2f}, {row['net_value_high']:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=Path, required=True, help="directory of agent-<scenario> runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=sorted(BUILT_IN))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tuning-seeds", type=int, default=1)
    parser.add_argument("--tuning-users", type=int, default=2000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "results.json"
    results = json.loads(saved.read_text()) if saved.is_file() else []  # a stopped run resumes
    for scenario in args.scenarios:
        if any(r["scenario"] == scenario for r in results):
            continue
        results.append(bench(scenario, args))
        print(f"{scenario}: {results[-1]['seconds']:.0f} s", flush=True)
        saved.write_text(json.dumps(results, indent=2, default=float) + "\n")
    results = [r for s in args.scenarios for r in results if r["scenario"] == s]
    plot(results, args.out)
    (args.out / "report.md").write_text(report(results, args))
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
