"""Which RL algorithm: every seed's run of each, on validation and on the held-out users.

Each ``--run LABEL=DIR`` names a training run or a directory of several seeds' runs (``winback train
--seed A --seed B``); a label given again adds its runs to the algorithm's. For every run it reads
the best validation value and the training time, and evaluates the best model on a benchmark's
held-out users and seeds (``--bench``: a finished ``winback bench`` directory, whose tuned best rule
is rebuilt from its ``tuning.json`` and runs beside them; common random numbers make its figures the
bench's). Per algorithm, the run it would ship is the one best on validation; that run is compared,
paired by seed and user, with the reference algorithm's shipped run and with the best rule. Writes
``algorithms.md``, ``algorithms.json`` and ``learning_curves.png`` (validation value against
timesteps, every run).

    python benchmarks/algorithms.py --bench runs/bench-end-1m --reference maskable_ppo \\
        --run maskable_ppo=runs/agents/mppo-end-1m --run ppo=runs/agents/algos/ppo-1m --out runs/algorithms
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from winback.agents.sb3 import SB3Policy, seeds_record
from winback.agents.training.curves import read_curve
from winback.benchmarks.report import palette
from winback.benchmarks.rollout import PolicyRun, run_policy
from winback.benchmarks.stats import mean_ci, paired_difference
from winback.benchmarks.suite import SimulatorsBySeed, load_finished_bench
from winback.progress import progress_bar


@dataclass
class Run:
    """One training run of an algorithm and what it scored."""

    directory: Path
    validation: float
    """Best validation net value per user (the model evaluated)."""
    best_timesteps: int
    wall_seconds: float


def runs_of(directory: Path) -> list[Run]:
    """The training runs ``directory`` holds: itself, or every seed's run of a seeds directory."""
    record = seeds_record(directory)
    paths = [directory] if record is None else [directory / run["run"] for run in record["runs"]]
    runs = []
    for path in paths:
        summary = json.loads((path / "train.json").read_text())
        runs.append(
            Run(
                path,
                summary["best_validation_net_value"],
                summary["best_timesteps"],
                summary["wall_seconds"],
            )
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=DIR", help="repeatable")
    parser.add_argument("--bench", type=Path, required=True, help="a winback bench output directory")
    parser.add_argument("--reference", required=True, help="the LABEL every algorithm is compared with")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the simulator's blocks too)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    algorithms: dict[str, list[Run]] = {}
    for given in args.run:
        label, separator, directory = given.partition("=")
        if not (label and separator and directory):
            parser.error(f"--run {given!r}: expected LABEL=DIR")
        algorithms.setdefault(label, []).extend(runs_of(Path(directory)))
    if args.reference not in algorithms:
        parser.error(f"--reference {args.reference!r} is not one of the --run labels {sorted(algorithms)}")

    bench = load_finished_bench(args.bench)
    scenario, users, seeds = bench.scenario, bench.users, bench.seeds
    simulators = SimulatorsBySeed(scenario)
    best_rule = bench.best_rule()
    rule = bench.rule(best_rule)
    every_run = [run for runs in algorithms.values() for run in runs]
    with progress_bar() as bar:
        task = bar.add_task("held-out runs", total=len(every_run) + 1)
        rule_run: PolicyRun = run_policy(rule, scenario, users, seeds, simulators=simulators)
        bar.advance(task)
        held_out: dict[Path, np.ndarray] = {}
        for run in every_run:
            policy = SB3Policy.load(run.directory, which="best")
            result = run_policy(policy, scenario, users, seeds, simulators=simulators)
            held_out[run.directory] = result.metrics["net_value"]
            bar.advance(task)

    rule_values = rule_run.metrics["net_value"]
    table, record = _table(algorithms, held_out, args.reference, best_rule, rule_values, users.n_users, seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "algorithms.md").write_text(table)
    (args.out / "algorithms.json").write_text(json.dumps(record, indent=2) + "\n")
    _plot_curves(algorithms).savefig(args.out / "learning_curves.png", dpi=120)
    print(table)


def _shipped(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.validation)


def _table(
    algorithms: dict[str, list[Run]],
    held_out: dict[Path, np.ndarray],
    reference: str,
    best_rule: str,
    rule_values: np.ndarray,
    n_users: int,
    seeds: list[int],
) -> tuple[str, dict]:
    rng = np.random.default_rng(0)
    reference_values = held_out[_shipped(algorithms[reference]).directory]
    header = (
        "| algorithm | validation, each run | validation mean | held-out, each run | held-out mean "
        f"| shipped run: held-out [95% CI] | shipped minus {reference}'s [95% CI] "
        f"| shipped minus {best_rule} [95% CI] | training wall per run (s) |"
    )
    lines = [
        f"Net value per user over the horizon: {n_users} held-out users x seeds {seeds}; CIs bootstrap "
        "over users, differences paired by seed and user. Each algorithm ships its run best on "
        f"validation. Best tuned rule: {best_rule}, {rule_values.mean():.2f} on the held-out users.",
        "",
        header,
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    record: dict[str, dict] = {}
    for label, runs in algorithms.items():
        shipped = held_out[_shipped(runs).directory]
        ci = mean_ci(shipped, rng=rng)
        vs_reference = paired_difference(shipped, reference_values, rng=rng)
        vs_rule = paired_difference(shipped, rule_values, rng=rng)
        means = [float(held_out[run.directory].mean()) for run in runs]
        validation = [run.validation for run in runs]
        lines.append(
            f"| {label} | {', '.join(f'{v:.2f}' for v in validation)} | {np.mean(validation):.2f} "
            f"| {', '.join(f'{v:.2f}' for v in means)} | {np.mean(means):.2f} "
            f"| {ci.mean:.2f} [{ci.low:.2f}, {ci.high:.2f}] "
            f"| {vs_reference.mean:+.2f} [{vs_reference.low:+.2f}, {vs_reference.high:+.2f}] "
            f"| {vs_rule.mean:+.2f} [{vs_rule.low:+.2f}, {vs_rule.high:+.2f}] "
            f"| {', '.join(f'{run.wall_seconds:.0f}' for run in runs)} |"
        )
        record[label] = {
            "runs": [str(run.directory) for run in runs],
            "validation": validation,
            "best_timesteps": [run.best_timesteps for run in runs],
            "wall_seconds": [run.wall_seconds for run in runs],
            "held_out": means,
            "shipped": str(_shipped(runs).directory),
            "shipped_held_out": [ci.mean, ci.low, ci.high],
            "shipped_minus_reference": [vs_reference.mean, vs_reference.low, vs_reference.high],
            "shipped_minus_best_rule": [vs_rule.mean, vs_rule.low, vs_rule.high],
        }
    return "\n".join(lines) + "\n", record


def _plot_curves(algorithms: dict[str, list[Run]]) -> Figure:
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    for color, (label, runs) in zip(palette(len(algorithms)), algorithms.items(), strict=False):
        for i, run in enumerate(runs):
            curve = read_curve(run.directory)
            axes.plot(
                [row[0] for row in curve],
                [row[2] for row in curve],
                color=color,
                alpha=0.8,
                label=label if i == 0 else None,
            )
    axes.set_xlabel("timesteps (user-periods)")
    axes.set_ylabel("validation net value per user ($)")
    axes.set_title("Learning curves by algorithm, every seed's run")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


if __name__ == "__main__":
    main()
