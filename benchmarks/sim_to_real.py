"""Does a policy that wins in winback's learned simulator win in the world its log came from?

For each ground-truth world (:class:`winback.data.synthetic.GroundTruthWorld`, parameters below):

1. the world writes ``--weeks`` of event log for ``--users`` users under randomized contacts;
2. ``winback pipeline`` runs on that log as a shop would run it: decay models, the population warm-
   started where the log ends, agents trained and baselines tuned in the learned simulator, benchmark;
3. the agent, every tuned baseline and the A/B-test practice run again, in the learned simulator
   (the benchmark's seeds) and in the true world (from where its log ended, the same evaluation users,
   their state tracked by the decay model as a platform would), over the scenario's horizon.

The scenario gets the world's economics, fatigue and opt-outs (``--settings``), its wear-out of
over-contacted users included unless ``--no-wear-out``: what a shop knows or must assume, since a log
shows only purchases and contacts. ``--models-from`` reuses an earlier run's decay models.

A world whose pipeline run finished (``OUT/<world>/run/export`` holds a card) is not run again: the
world and its log are deterministic, so a stopped benchmark resumes at the world it was in.

Reported per world and policy: net value per user in the learned simulator and in the world, the
paired difference to the best baseline *chosen in the simulator* in both (95% CI over users), the
simulator's relative error, and whether the ranking holds. Writes ``OUT/report.md``,
``OUT/results.json`` and ``OUT/sim_vs_world.png``.

    python benchmarks/sim_to_real.py --out runs/sim_to_real
    python benchmarks/sim_to_real.py --out runs/sim_to_real-quick --users 800 --weeks 60 --quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from winback.agents.base import Policy
from winback.benchmarks.ground_truth import run_in_world
from winback.benchmarks.rollout import PolicyRun, run_policy
from winback.benchmarks.stats import mean_ci, paired_difference
from winback.benchmarks.suite import BASELINES, BenchConfig, load_agents, load_finished_bench, make_policies
from winback.data.io import write_event_log
from winback.data.schema import CONTACTS
from winback.data.synthetic import GroundTruthWorld, WorldConfig
from winback.export.runtime.card import CARD_FILE
from winback.scenarios.files import dumps

WORLDS: dict[str, dict[str, float]] = {
    "strong-season": {"contact_strength": 1.0, "season_amplitude": 0.4},
    "weak-season": {"contact_strength": 0.3, "season_amplitude": 0.4},
    "strong-flat": {"contact_strength": 1.0, "season_amplitude": 0.0},
}
"""Each world's departures from :class:`WorldConfig`'s defaults: strong or weak contact effects
(``contact_strength`` scales every effect and revival), with or without the yearly season."""
CONTACT_RATE = 0.1
"""Share of user-weeks the logging policy sends a randomized contact (split evenly over the kinds)."""
LEVEL = 0.95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--horizon", type=int, default=52)
    parser.add_argument(
        "--timesteps", type=int, help="winback pipeline --timesteps (default: the pipeline's)."
    )
    parser.add_argument("--worlds", default=",".join(WORLDS))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the worlds and their logs.")
    parser.add_argument("--quick", action="store_true", help="The pipeline's quick mode (a smoke run).")
    parser.add_argument(
        "--no-wear-out", action="store_true", help="Leave the world's wear-out out of the scenario."
    )
    parser.add_argument(
        "--imitate",
        action="append",
        help="winback pipeline --imitate (repeatable): what the agents start from (default: the pipeline's).",
    )
    parser.add_argument(
        "--models-from",
        type=Path,
        help="An earlier run's OUT: each world's decay model (and decay table) is taken from it.",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for name in args.worlds.split(","):
        started = time.perf_counter()
        results.append(run_world(name, args))
        results[-1]["seconds"] = round(time.perf_counter() - started, 1)
        print(f"{name}: done in {results[-1]['seconds']:.0f}s", flush=True)
        (args.out / "results.json").write_text(
            json.dumps({"args": _plain(vars(args)), "worlds": results}, indent=2)
        )
        (args.out / "report.md").write_text(markdown(results, args))
        plot(results, args.out / "sim_vs_world.png")
    print((args.out / "report.md").read_text())


def run_world(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One world: its log, the pipeline on it, then every policy in the simulator and in the world."""
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    config = WorldConfig(n_users=args.users, birth_weeks=args.weeks, seed=args.seed, **WORLDS[name])
    world = GroundTruthWorld(config)
    state = world.start()
    log = world.write_log(state, args.weeks, CONTACT_RATE, seed=args.seed)
    write_event_log(log.log, out / "log.parquet")
    (out / "settings.toml").write_text(dumps(settings(config, wear_out=not args.no_wear_out)))
    earlier = None if args.models_from is None else args.models_from / name / "run"
    command = [
        sys.executable, "-m", "winback.cli", "pipeline", "--data", str(out / "log.parquet"),
        "--out", str(out / "run"), "--horizon", str(args.horizon),
        *(["--timesteps", str(args.timesteps)] if args.timesteps else []),
        "--settings", str(out / "settings.toml"),
        *[option for start in args.imitate or [] for option in ("--imitate", start)],
        *(["--quick"] if args.quick else []), *(["--model", str(earlier / "model")] if earlier else []),
    ]  # fmt: skip
    if (out / "run" / "export" / CARD_FILE).is_file():
        print(f"reusing the finished pipeline run in {out / 'run'}", flush=True)
    else:
        shutil.rmtree(out / "run", ignore_errors=True)  # an unfinished run: every step is redone
        print(" ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)

    bench = load_finished_bench(out / "run" / "bench")
    scenario, users = bench.scenario, bench.users
    params = {family: bench.tuned(family) for family in bench.tuning}
    policies: dict[str, tuple[Policy, str]] = {
        policy_name: (policy, "baseline")
        for policy_name, policy in make_policies(
            [p for p in BASELINES if p != "random"], params, BenchConfig(quick=args.quick)
        ).items()
    }
    policies |= {agent.name: (agent, "agent") for agent in load_agents([out / "run" / "agent"])}
    sim: dict[str, PolicyRun] = {}
    real: dict[str, PolicyRun] = {}
    for policy_name, (policy, category) in policies.items():
        sim[policy_name] = run_policy(
            policy, scenario, users, bench.seeds, category=category, name=policy_name
        )
        real[policy_name] = run_in_world(
            policy, scenario, users, world, state, category=category, name=policy_name
        )
        print(
            f"  {policy_name}: simulator {sim[policy_name].metrics['net_value'].mean():.3f}, "
            f"world {real[policy_name].metrics['net_value'].mean():.3f}",
            flush=True,
        )
    return {
        "world": name,
        "config": asdict(config),
        "log": {
            "events": len(log.log.events),
            "users": log.log.n_users,
            "origin": log.origin,
            "end": log.end,
        },
        "true_effects": log.true_effects,
        "evaluation_users": users.n_users,
        "decay_models": json.loads(((earlier or out / "run") / "decay" / "metrics.json").read_text()),
        "wear_out_in_scenario": not args.no_wear_out,
        "policies": compare(sim, real),
    }


def settings(config: WorldConfig, *, wear_out: bool) -> dict[str, Any]:
    """The scenario keys a shop knows of its world: margin, contact costs, coupon terms, fatigue and
    opt-outs (from its own e-mail statistics), and the wear-out of over-contacted users (an
    assumption it must make: the logging policy never over-contacts, so the log cannot show it)."""
    contacts: dict[str, dict[str, Any]] = {
        kind: {
            "cost": getattr(config, f"{kind}_cost"),
            "fatigue": getattr(config, f"{kind}_fatigue"),
            "opt_out": config.opt_out,
        }
        for kind in CONTACTS
    }
    contacts["coupon"] |= {"discount": config.coupon_discount, "validity": config.coupon_validity}
    fatigue: dict[str, Any] = {
        "half_life": config.fatigue_half_life,
        "scale": config.fatigue_scale,
        "opt_out_per_fatigue": config.opt_out_per_fatigue,
    }
    if wear_out:
        fatigue |= {"annoyance": config.fatigue_annoyance, "tolerance": config.fatigue_tolerance}
    return {"economics": {"margin": config.margin}, "contacts": contacts, "fatigue": fatigue}


def compare(sim: dict[str, PolicyRun], real: dict[str, PolicyRun]) -> list[dict[str, Any]]:
    """Per policy: net value in both worlds, the paired difference to the simulator's best baseline in
    both, the simulator's relative error; the simulator's best baseline and agent flagged."""
    rng = np.random.default_rng(0)
    baselines = [name for name, run in sim.items() if run.category == "baseline"]
    best = max(baselines, key=lambda name: sim[name].metrics["net_value"].mean())
    rows = []
    for name in sim:
        row: dict[str, Any] = {"policy": name, "category": sim[name].category, "best_baseline": name == best}
        for where, runs in (("sim", sim), ("world", real)):
            net = runs[name].metrics["net_value"]
            row[where] = mean_ci(net, rng=rng, level=LEVEL).to_dict()
            row[f"{where}_vs_best"] = paired_difference(
                net, runs[best].metrics["net_value"], rng=rng, level=LEVEL
            ).to_dict()
        row["relative_error"] = (row["sim"]["mean"] - row["world"]["mean"]) / abs(row["world"]["mean"])
        rows.append(row)
    sim_rank = np.argsort(np.argsort([-r["sim"]["mean"] for r in rows]))
    world_rank = np.argsort(np.argsort([-r["world"]["mean"] for r in rows]))
    for row, s, w in zip(rows, sim_rank, world_rank, strict=True):
        row["sim_rank"], row["world_rank"] = int(s) + 1, int(w) + 1
    return sorted(rows, key=lambda r: r["sim_rank"])


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Sim-to-real: the learned simulator's verdicts in the world its log came from",
        "",
        f"`python benchmarks/sim_to_real.py --out {args.out} --users {args.users} --weeks {args.weeks} "
        f"--horizon {args.horizon}{f' --timesteps {args.timesteps}' if args.timesteps else ''}"
        f"{' --quick' if args.quick else ''}"
        f"{' --no-wear-out' if args.no_wear_out else ''}"
        f"{''.join(f' --imitate {start}' for start in args.imitate or [])}"
        f"{f' --models-from {args.models_from}' if args.models_from else ''}`",
        "",
        f"Net value per user over {args.horizon} weeks; 95% CIs over users; `vs best` is the paired "
        "difference to the best baseline chosen in the simulator (marked *), in each world.",
    ]
    for result in results:
        lines += [
            "",
            f"## {result['world']}: {WORLDS[result['world']]}",
            "",
            f"{result['log']['users']:,} users, {result['log']['events']:,} events from "
            f"{result['log']['origin']} to {result['log']['end']}; "
            f"{result['evaluation_users']:,} evaluation users; {result['seconds']:.0f} s. The scenario's "
            f"wear-out: {'the world' + chr(39) + 's' if result['wear_out_in_scenario'] else 'none'}.",
            "",
            "| policy | simulator | world | sim vs best | world vs best | sim error | rank sim / world |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in result["policies"]:
            mark = " *" if row["best_baseline"] else ""
            lines.append(
                f"| {row['policy']}{mark} | {_ci(row['sim'])} | {_ci(row['world'])} | "
                f"{_ci(row['sim_vs_best'])} | {_ci(row['world_vs_best'])} | "
                f"{row['relative_error']:+.1%} | {row['sim_rank']} / {row['world_rank']} |"
            )
        agent = next(row for row in result["policies"] if row["category"] == "agent")
        verdict = agent["world_vs_best"]
        holds = [row["policy"] for row in result["policies"] if row["sim_rank"] != row["world_rank"]]
        lines += [
            "",
            f"Agent vs the simulator's best baseline in the world: {_ci(verdict)} ({_verdict(verdict)}). "
            f"Largest simulator error: {max(abs(r['relative_error']) for r in result['policies']):.1%}. "
            f"Ranking {'holds' if not holds else 'differs for ' + ', '.join(holds)}.",
        ]
        decay = result["decay_models"]
        lines += [
            "",
            "Decay models on this log (calibration / holdout of `winback pipeline`):",
            "",
            _decay_table(decay),
        ]
    return "\n".join(lines) + "\n"


def _decay_table(metrics: dict[str, Any]) -> str:
    models = metrics["models"]
    names = list(models)
    keys = ["holdout_bias_pct", "rmse", "weekly_mape", "auc_any", "log_score"]
    rows = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name in names:
        rows.append(f"| {name} | " + " | ".join(f"{models[name][k]:.4g}" for k in keys) + " |")
    return "\n".join(rows)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for row in result["policies"]:
            world, sim = row["world"], row["sim"]
            marker = "*" if row["category"] == "agent" else "o"
            ax.errorbar(
                world["mean"], sim["mean"],
                xerr=[[world["mean"] - world["low"]], [world["high"] - world["mean"]]],
                yerr=[[sim["mean"] - sim["low"]], [sim["high"] - sim["mean"]]],
                fmt=marker, markersize=10 if marker == "*" else 5, label=row["policy"],
            )  # fmt: skip
        low = min(min(r["world"]["low"], r["sim"]["low"]) for r in result["policies"])
        high = max(max(r["world"]["high"], r["sim"]["high"]) for r in result["policies"])
        ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
        ax.set(
            title=result["world"], xlabel="net value per user in the world", ylabel="in the learned simulator"
        )
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _verdict(estimate: dict[str, float]) -> str:
    if estimate["low"] > 0:
        return "CI above zero"
    return "CI spans zero" if estimate["high"] >= 0 else "CI below zero"


def _ci(estimate: dict[str, float]) -> str:
    return f"{estimate['mean']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


if __name__ == "__main__":
    main()
