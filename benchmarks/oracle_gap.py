"""Where the oracle's gain comes from: the agent against look-ahead references with and without luck.

Reruns, on the evaluation users and seeds of a finished ``winback bench`` run, the agent, the tuned
best rule and the tuned A/B test (rebuilt from the bench's ``tuning.json``; common random numbers
make them reproduce the bench's figures exactly), and six look-ahead references: the oracle
(replays each user's own luck) and the planner (true model and state, sampled luck), each looking 1
and 4 periods ahead with nothing sent after the first action; and two rollout planners, sampled luck
over ``--rollout-periods`` periods with the best rule or the agent acting after the first action (one
step of policy improvement over that policy). Prints and writes a markdown table: net value per user
with 95% CIs, the agent's paired difference against each policy, and each policy's share of each
reference's gain.

    python benchmarks/oracle_gap.py --agent runs/agents/mppo-1m-s1 --bench runs/bench-default \\
        --out runs/oracle_gap --threads 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from winback.agents.base import Policy
from winback.agents.baselines import NoContact
from winback.agents.experiments import ABTestThenRollout
from winback.agents.oracle import Oracle
from winback.agents.sb3 import SB3Policy
from winback.benchmarks.rollout import PolicyRun, run_policy
from winback.benchmarks.stats import mean_ci, paired_difference
from winback.benchmarks.suite import RULES, SimulatorsBySeed, ab_candidates, load_finished_bench, sample_users
from winback.progress import progress_bar


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agent", type=Path, required=True, help="training run directory")
    parser.add_argument("--bench", type=Path, required=True, help="a winback bench output directory")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=8, help="futures the planner averages per action")
    parser.add_argument("--rollout-periods", type=int, default=12, help="look-ahead of the rollout planners")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the simulator's blocks too)")
    parser.add_argument("--seeds", type=int, default=None, help="evaluation seeds (default: the bench's)")
    parser.add_argument("--users", type=int, default=None, help="evaluation users (default: the bench's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        table = measure(args.agent, args.bench, args.samples, args.rollout_periods, args.seeds, args.users)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle_gap.md").write_text(table)
    print(table)


def measure(
    agent_dir: Path,
    bench_dir: Path,
    samples: int,
    rollout_periods: int,
    n_seeds: int | None,
    n_users: int | None,
) -> str:
    bench = load_finished_bench(bench_dir)
    scenario = bench.scenario
    users = bench.users if n_users is None else sample_users(scenario.eval_users(), n_users, seed=0)
    seeds = bench.seeds if n_seeds is None else list(range(n_seeds))
    rules = {family: bench.rule(family) for family in RULES}
    candidates = ab_candidates(rules)
    agent = SB3Policy.load(agent_dir, which="best")
    best_rule = bench.best_rule()
    policies: dict[str, Policy] = {
        "no_contact": NoContact(),
        f"best rule ({best_rule})": rules[best_rule],
        "ab_test": ABTestThenRollout(candidates, **bench.tuned("ab_test"), name="ab_test"),
        f"agent ({agent.name}, {agent_dir.name})": agent,
        "planner, 1 period": Oracle(lookahead=1, clairvoyant=False, samples=samples, name="planner"),
        "planner, 4 periods": Oracle(lookahead=4, clairvoyant=False, samples=samples, name="planner"),
        f"planner, {rollout_periods} periods, then the best rule": Oracle(
            lookahead=rollout_periods,
            clairvoyant=False,
            samples=samples,
            base=bench.rule(best_rule),
            name="planner",
        ),
        f"planner, {rollout_periods} periods, then the agent": Oracle(
            lookahead=rollout_periods,
            clairvoyant=False,
            samples=samples,
            base=SB3Policy.load(agent_dir, which="best"),
            name="planner",
        ),
        "oracle, 1 period": Oracle(lookahead=1, name="oracle"),
        "oracle, 4 periods": Oracle(lookahead=4, name="oracle"),
    }
    simulators = SimulatorsBySeed(scenario)
    runs: dict[str, PolicyRun] = {}
    with progress_bar() as bar:
        task = bar.add_task("policies", total=len(policies))
        for label, policy in policies.items():
            runs[label] = run_policy(policy, scenario, users, seeds, name=policy.name, simulators=simulators)
            bar.advance(task)
    return _table(
        runs,
        agent_label=next(label for label in runs if label.startswith("agent")),
        users=users.n_users,
        seeds=seeds,
    )


def _table(runs: dict[str, PolicyRun], *, agent_label: str, users: int, seeds: list[int]) -> str:
    rng = np.random.default_rng(0)
    value = {label: run.metrics["net_value"] for label, run in runs.items()}
    base = value["no_contact"].mean()
    references = [label for label in runs if label.startswith(("planner", "oracle"))]
    header = [
        "policy",
        "net value [95% CI]",
        f"{agent_label} minus policy [95% CI]",
        *(f"share of {r} gain" for r in references),
    ]
    lines = [
        f"Net value per user over 52 weeks: {users} evaluation users x seeds {seeds}; "
        "CIs bootstrap over users; "
        "differences paired by seed and user.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for label, values in value.items():
        ci = mean_ci(values, rng=rng)
        diff = paired_difference(value[agent_label], values, rng=rng)
        shares = [(values.mean() - base) / (value[r].mean() - base) for r in references]
        lines.append(
            f"| {label} | {ci.mean:.2f} [{ci.low:.2f}, {ci.high:.2f}] | "
            f"{diff.mean:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}] | "
            + " | ".join(f"{s:.1%}" for s in shares)
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
