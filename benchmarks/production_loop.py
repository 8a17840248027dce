"""The production loop in a ground-truth world: deploy, log, refit, retrain, gate, deploy again.

Where ``benchmarks/sim_to_real.py`` (``--from`` its output) left a world, its log and the pipeline's
exported agent, the shop's whole population is kept as a batch job keeps it
(:class:`winback.benchmarks.ground_truth.BatchWorld`) and every round of ``--weeks`` weeks:

1. **deploy**: the current export decides every week under epsilon-greedy exploration, its actions
   drawn and logged as ``winback decide`` draws them (propensities of the actions sent);
2. **log**: the world's events of those weeks (every user's views, carts, purchases and the
   contacts sent) are appended to the shop's event log;
3. **refit**: ``winback decay fit`` on the grown log;
4. **retrain**: ``winback pipeline --model`` on it (agents, tuned rules, benchmark, export);
5. **gate**: the new export's features at the logged decisions come from its own decay model (its
   users table warm-started on the log up to the round's start, then fed the round's weeks); the
   doubly robust difference of its value per decision minus the current export's, on the round's
   log, with a 95% interval over users; the new export ships when the interval's lower bound is
   above 0, and then decides from its own users table.

Beside the loop, in copies of the same world under the same luck: the best rule of the first
pipeline (tuned in its learned simulator) and no contact, run greedily from the same start. After
each gate, both exports run greedily for the next ``--weeks`` weeks from where the round ended, so the
gate's call is checked against what shipping would have earned.

Writes ``OUT/report.md``, ``OUT/results.json``, ``OUT/production_loop.png`` and every round's log,
model and pipeline run under ``OUT/round-<r>``. The loop is deterministic, so a stopped run resumes:
a round whose pipeline run finished is not run again (``OUT/args.json`` refuses other settings).

    python benchmarks/production_loop.py --from runs/s2r --world strong-season --out runs/production_loop
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from winback.agents.base import DecisionContext, Policy
from winback.benchmarks.ground_truth import BatchWorld, Ended, UsersTable
from winback.benchmarks.ope import (
    artifact_distribution,
    doubly_robust,
    doubly_robust_difference,
    fit_reward_model,
    simulator_returns,
)
from winback.benchmarks.stats import mean_ci, paired_difference
from winback.benchmarks.suite import load_finished_bench
from winback.cli.pipeline import QUICK_LSTM
from winback.data.io import EventLogWriter, read_event_log
from winback.data.synthetic import EventRecorder, GroundTruthWorld, WorldConfig, WorldState
from winback.export.policy import load_policy_dir
from winback.export.runtime import Exploration, ExportedArtifact
from winback.export.runtime.batch import draw_actions
from winback.export.runtime.card import CARD_FILE
from winback.scenarios.population import cached_population
from winback.streams import RandomStreams

CONTACT_RATE = 0.1
"""As ``benchmarks/sim_to_real.py``'s logging of the world's log (to rebuild where it ended)."""


@dataclass(frozen=True)
class Deployed:
    """The export deciding in the loop, by the round that trained it."""

    name: str
    directory: Path
    artifact: ExportedArtifact


@dataclass(frozen=True)
class RoundLog:
    """One round's decisions: (T, U, ...) arrays over its weeks, and the weeks that ended before each
    decision (T + 1: the week before the round, then each week of it)."""

    observations: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    ended: list[Ended]
    states: list[WorldState]
    """The world before each week of the round (to replay a week under other actions)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="sim_to_real.py's --out.")
    parser.add_argument("--world", default="strong-season")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--rounds", type=int, default=4, help="Rounds deployed (a retrain after each but the last)."
    )
    parser.add_argument("--weeks", type=int, default=13, help="Weeks per round.")
    parser.add_argument("--epsilon", type=float, default=0.1, help="The deployed export's exploration.")
    parser.add_argument(
        "--timesteps", type=int, help="winback pipeline --timesteps (default: sim_to_real's)."
    )
    parser.add_argument("--bench-seeds", type=int, default=3, help="winback pipeline --bench-seeds.")
    parser.add_argument(
        "--seed", type=int, default=1, help="Seed of the exploration and the reward models (not the world's)."
    )
    parser.add_argument("--quick", action="store_true", help="Tiny decay models and agents (a smoke run).")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    given = {k: str(v) for k, v in vars(args).items() if k not in ("rounds", "out")}
    if (args.out / "args.json").is_file() and json.loads((args.out / "args.json").read_text()) != given:
        parser.error(f"{args.out} holds a loop of other settings (its args.json): its rounds would be reused")
    (args.out / "args.json").write_text(json.dumps(given, indent=2) + "\n")
    started = time.perf_counter()
    source = json.loads((args.source / "results.json").read_text())
    found = next(w for w in source["worlds"] if w["world"] == args.world)
    world = GroundTruthWorld(WorldConfig(**found["config"]))
    if args.seed == world.config.seed:
        # Both draw keyed uniforms (seed, user, week, slot): the exploration's would be the world's own
        # luck (slot 1 is its extra purchases), and the actions explored would be those that buy more.
        parser.error(f"--seed {args.seed} is the world's: the exploration's draws would be the world's luck")
    state = world.start()
    world.write_log(state, int(source["args"]["weeks"]), CONTACT_RATE, seed=int(source["args"]["seed"]))
    first = args.source / args.world
    bench = load_finished_bench(first / "run" / "bench")
    deployed = Deployed("round-0", first / "run" / "export", ExportedArtifact.load(first / "run" / "export"))
    users = bench.scenario.population()
    recorder = EventRecorder(world, arm=deployed.name)
    loop = BatchWorld(world, state, deployed.artifact, users, record=recorder.add)
    rule_name = bench.best_rule()
    others = {rule_name: _Greedy(loop.fork(), bench.rule(rule_name), deployed.artifact, users.keys),
              "no_contact": _Greedy(loop.fork(), None, deployed.artifact, users.keys)}  # fmt: skip
    exploration, streams = Exploration("epsilon", epsilon=args.epsilon), RandomStreams(args.seed)
    log_path = first / "log.parquet"
    settings = first / "settings.toml"
    training = source["args"]
    timesteps = args.timesteps or training["timesteps"]
    rounds: list[dict[str, Any]] = []
    print(
        f"{loop.n_users:,} users; best rule {rule_name}; {args.rounds} rounds of {args.weeks} weeks",
        flush=True,
    )
    for r in range(args.rounds):
        greedy = greedy_run(loop.fork(), args.weeks)
        logged = deploy(loop, deployed, exploration, streams, args.weeks)
        row: dict[str, Any] = {
            "round": r,
            "weeks": [int(loop.state.period - args.weeks), int(loop.state.period - 1)],
            "deployed": deployed.name,
            "net": {"loop": _per_week(logged.rewards), "greedy": _per_week(greedy)},
        }
        for name, other in others.items():
            row["net"][name] = _per_week(other.run(args.weeks))
        for key, rewards in (("vs_rule", logged.rewards), ("greedy_vs_rule", greedy)):
            row[key] = _gain(rewards, others[rule_name].last, seed=r)
        print(f"round {r}: net per user-week {row['net']}", flush=True)
        if r + 1 < args.rounds:
            round_dir = args.out / f"round-{r + 1}"
            log_path = grow_log(log_path, recorder, round_dir, args.seed + r)
            recorder = EventRecorder(world, arm=f"round-{r + 1}")
            loop.record = recorder.add
            retrain(
                log_path, settings, round_dir, timesteps, training["imitate"], args.bench_seeds, args.quick
            )
            candidate = ExportedArtifact.load(round_dir / "run" / "export")
            table = candidate_table(loop, candidate, round_dir, logged)
            row["gate"] = gate(loop, deployed, candidate, table.observations, logged, seed=args.seed + r)
            row["gate"]["truth_next_round"] = next_round_truth(loop, table.table, args.weeks)
            row["gate"]["simulator_next_round"] = simulator_gate(loop, round_dir, deployed, args.weeks)
            print(f"  gate {row['gate']}", flush=True)
            if row["gate"]["ship"]:
                loop.deploy(table.table)
                deployed = Deployed(f"round-{r + 1}", round_dir / "run" / "export", candidate)
        rounds.append(row)
        results = {"args": {k: str(v) for k, v in vars(args).items()}, "users": loop.n_users,
                   "best_rule": rule_name, "rounds": rounds,
                   "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "report.md").write_text(markdown(results))
        plot(results, args.out / "production_loop.png")
    print((args.out / "report.md").read_text())


class _Greedy:
    """A rule (``None``: no contact) run greedily in its own copy of the world, by the first export's
    users table; :attr:`last` holds the (T, U) net values of its last :meth:`run`."""

    def __init__(
        self, world: BatchWorld, rule: Policy | None, artifact: ExportedArtifact, keys: np.ndarray
    ) -> None:
        self.world, self.rule, self.period = world, rule, 0
        if rule is not None:
            rule.reset(DecisionContext(artifact.feature_names, artifact.actions, world.n_users,
                                       np.random.default_rng(0), 10_000, keys))  # fmt: skip
        self.last = np.zeros((0, world.n_users))

    def run(self, weeks: int) -> np.ndarray:
        rewards = []
        for _ in range(weeks):
            observed = self.world.observe()
            if self.rule is None:
                actions = np.zeros(self.world.n_users, dtype=np.int64)
            else:
                actions = self.rule.act(observed.observations, observed.allowed, self.period)
            rewards.append(self.world.play(observed, actions))
            self.period += 1
        self.last = np.stack(rewards)
        return self.last


def deploy(
    loop: BatchWorld, deployed: Deployed, exploration: Exploration, streams: RandomStreams, weeks: int
) -> RoundLog:
    """``weeks`` of the deployed export deciding with ``exploration``, as ``winback decide`` logs them."""
    columns: dict[str, list[np.ndarray]] = {
        "observations": [],
        "actions": [],
        "propensities": [],
        "rewards": [],
    }
    ended, states = [loop.ended], []
    for _ in range(weeks):
        states.append(loop.state.copy())
        observed = loop.observe()
        drawn = draw_actions(deployed.artifact, observed, exploration, streams)
        columns["rewards"].append(loop.play(observed, drawn.actions))
        columns["observations"].append(observed.observations)
        columns["actions"].append(drawn.actions)
        columns["propensities"].append(drawn.probabilities[np.arange(len(drawn.actions)), drawn.actions])
        ended.append(loop.ended)
    return RoundLog(
        **{name: np.stack(values) for name, values in columns.items()}, ended=ended, states=states
    )


def grow_log(log_path: Path, recorder: EventRecorder, round_dir: Path, seed: int) -> Path:
    """The shop's log with the recorded weeks appended, written to ``round_dir/log.parquet``."""
    round_dir.mkdir(parents=True, exist_ok=True)
    grown = round_dir / "log.parquet"
    if grown.is_file():
        return grown
    weeks = recorder.event_log(np.random.default_rng(seed), source="production loop", notes=recorder.arm)
    partial = grown.with_suffix(".partial.parquet")
    with EventLogWriter(partial) as writer:
        writer.write(read_event_log(log_path).events)
        writer.write(weeks.events)
    partial.rename(grown)
    return grown


def retrain(
    log_path: Path,
    settings: Path,
    round_dir: Path,
    timesteps: int | None,
    imitate: list[str] | None,
    bench_seeds: int,
    quick: bool,
) -> None:
    """``winback decay fit`` on the grown log, then ``winback pipeline --model`` (skipped when done)."""
    if (round_dir / "run" / "export" / CARD_FILE).is_file():
        print(f"  reusing {round_dir / 'run'}", flush=True)
        return
    for unfinished in ("model", "run"):  # every step is redone
        shutil.rmtree(round_dir / unfinished, ignore_errors=True)
    refit_decay_model(log_path, round_dir / "model", quick)
    subprocess.run(
        [sys.executable, "-m", "winback.cli", "pipeline", "--data", str(log_path),
         "--out", str(round_dir / "run"), "--model", str(round_dir / "model"), "--settings", str(settings),
         *(["--timesteps", str(timesteps)] if timesteps else []),
         "--bench-seeds", str(bench_seeds), "--no-progress", *(["--quick"] if quick else []),
         *[option for start in imitate or [] for option in ("--imitate", start)]],
        check=True,
    )  # fmt: skip


def refit_decay_model(log_path: Path, model_dir: Path, quick: bool) -> None:
    """``winback decay fit`` on the log at ``log_path`` into ``model_dir``, calibrated up to its last day
    (tiny models if ``quick``)."""
    end = (read_event_log(log_path).events["timestamp"].max().date() + dt.timedelta(days=1)).isoformat()
    tiny = [f"--{key.replace('_', '-')}={value}" for key, value in QUICK_LSTM.items()] if quick else []
    subprocess.run([sys.executable, "-m", "winback.cli", "decay", "fit", "--data", str(log_path),
                    "--out", str(model_dir), "--calibration-end", end, *tiny], check=True)  # fmt: skip


@dataclass(frozen=True)
class CandidateTable:
    """The candidate's features at the round's logged decisions ((T, U, F)) and its users table at the
    round's end."""

    observations: np.ndarray
    table: UsersTable


def candidate_table(
    loop: BatchWorld, candidate: ExportedArtifact, round_dir: Path, logged: RoundLog
) -> CandidateTable:
    """The candidate's users table as its decay model keeps it: warm-started on the grown log up to
    the week before the round, then fed the round's weeks (what ``winback decide`` would have read)."""
    scenario = load_finished_bench(round_dir / "run" / "bench").scenario
    weeks = len(logged.ended) - 1
    stored = loop.state.period - 1 - weeks  # the week before the round
    origin = dt.date.fromisoformat(loop.world.config.start)
    until = (origin + dt.timedelta(weeks=stored)).isoformat()
    population = cached_population(
        dataclasses.replace(scenario.population_config, until=until), scenario.model_config
    )
    table = loop.table_of(candidate, population)
    observations = []
    for ended in logged.ended[:-1]:
        observed = table.observe(ended)
        observations.append(observed.observations)
        table = table.moved(observed)
    return CandidateTable(np.stack(observations), table)


def gate(
    loop: BatchWorld,
    current: Deployed,
    candidate: ExportedArtifact,
    candidate_observations: np.ndarray,
    logged: RoundLog,
    *,
    seed: int,
) -> dict[str, Any]:
    """The doubly robust estimates on the round's log of both exports deciding greedily, their paired
    difference, and the call: ship when its lower bound is above 0."""
    periods, n = logged.actions.shape
    n_actions = len(candidate.actions)
    predicted = fit_reward_model(
        logged.observations.reshape(periods * n, -1), logged.actions.ravel(), logged.rewards.ravel(),
        n_actions, seed=seed,
    ).reshape(periods, n, n_actions)  # fmt: skip
    greedy = Exploration()
    current_p = np.stack([artifact_distribution(current.artifact, greedy, x) for x in logged.observations])
    candidate_p = np.stack([artifact_distribution(candidate, greedy, x) for x in candidate_observations])
    rng = np.random.default_rng(seed)
    flat = (logged.rewards.ravel(), logged.propensities.ravel(), logged.actions.ravel())
    values = {
        name: doubly_robust(
            *flat, p.reshape(periods * n, n_actions), predicted.reshape(periods * n, n_actions), rng=rng
        )
        for name, p in (("candidate", candidate_p), ("current", current_p))
    }
    difference = doubly_robust_difference(
        logged.rewards, logged.propensities, logged.actions, candidate_p, current_p, predicted, rng=rng
    )
    return {
        "candidate": dataclasses.asdict(values["candidate"]),
        "current": dataclasses.asdict(values["current"]),
        "difference": difference.to_dict(),
        "truth_one_step": one_step_truth(loop, logged, candidate_p.argmax(axis=2), current_p.argmax(axis=2)),
        "agreement": float(np.mean(candidate_p.argmax(axis=2) == current_p.argmax(axis=2))),
        "ship": bool(difference.low > 0),
    }


def one_step_truth(
    loop: BatchWorld, logged: RoundLog, candidate: np.ndarray, current: np.ndarray
) -> dict[str, Any]:
    """What the gate's estimate estimates, in truth: each logged week replayed from the world's state
    before it (the same luck) with every user sent the candidate's greedy action ((T, U) ``candidate``),
    then the current export's (``current``); net value per user-week of each and their paired
    difference."""
    earned: dict[str, list[np.ndarray]] = {"candidate": [], "current": []}
    for t, state in enumerate(logged.states):
        for name, actions in (("candidate", candidate[t]), ("current", current[t])):
            everyone = np.zeros(loop.world.n_users, dtype=np.int64)
            everyone[loop.index] = actions
            earned[name].append(loop.world.step(state.copy(), everyone).net[loop.index])
    return _versus(np.stack(earned["candidate"]), np.stack(earned["current"]))


def simulator_gate(loop: BatchWorld, round_dir: Path, current: Deployed, weeks: int) -> dict[str, Any]:
    """``winback ope --simulator --ahead``'s gate: the new export's return minus the current one's over
    the next ``weeks`` in the round's learned simulator (its decay model refit on the grown log, where
    the new export trained), from the users where the round ended, per user-week, paired by user and
    seed; ship when its lower bound is above 0."""
    scenario = load_finished_bench(round_dir / "run" / "bench").scenario
    policies = [load_policy_dir(round_dir / "run" / "export"), load_policy_dir(current.directory)]
    returns = simulator_returns(scenario, policies, loop.table.ids, int(loop.state.period), weeks)
    gain = paired_difference(returns[0] / weeks, returns[1] / weeks, rng=np.random.default_rng(0))
    return {**gain.to_dict(), "ship": gain.low > 0}


def next_round_truth(loop: BatchWorld, candidate_table: UsersTable, weeks: int) -> dict[str, Any]:
    """Net value per user-week over the next ``weeks`` of each export deciding greedily from where the
    round ended (copies of the loop's world, the same luck), and their paired difference."""
    shipped = loop.fork()
    shipped.deploy(candidate_table)
    return _versus(greedy_run(shipped, weeks), greedy_run(loop.fork(), weeks))


def greedy_run(world: BatchWorld, weeks: int) -> np.ndarray:
    """(T, U) net values of ``weeks`` of the deployed export deciding greedily in ``world`` (a copy)."""
    rewards = []
    for _ in range(weeks):
        observed = world.observe()
        actions = world.table.artifact.decide_at_prices(observed.observations, observed.allowed, {}).actions
        rewards.append(world.play(observed, actions))
    return np.stack(rewards)


def _versus(candidate: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """Each export's net value per user-week of its (T, U) rewards, and their paired difference."""
    return {"candidate": _per_week(candidate), "current": _per_week(current),
            "difference": _gain(candidate, current)}  # fmt: skip


def _gain(rewards: np.ndarray, reference: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """Net value per user-week of (T, U) ``rewards`` minus ``reference``'s, paired by user (95% CI)."""
    return paired_difference(
        rewards.mean(axis=0)[None], reference.mean(axis=0)[None], rng=np.random.default_rng(seed)
    ).to_dict()


def _per_week(rewards: np.ndarray) -> dict[str, float]:
    """Net value per user and week of (T, U) rewards, with its 95% interval over users."""
    return mean_ci(rewards.mean(axis=0)[None], rng=np.random.default_rng(0)).to_dict()


def markdown(results: dict[str, Any]) -> str:
    args, rule = results["args"], results["best_rule"]
    lines = [
        f"# The production loop in the world ({results['users']:,} users)",
        "",
        f"`python benchmarks/production_loop.py --from {args['source']} --world {args['world']} "
        f"--out {args['out']} --rounds {args['rounds']} --weeks {args['weeks']} --epsilon {args['epsilon']}"
        f"{' --quick' if args['quick'] == 'True' else ''}`",
        "",
        "True net value per user and week in the world (95% CI over users). The loop's export decides "
        f"with epsilon {args['epsilon']}; the same export without exploration, `{rule}` (the first "
        "pipeline's best rule) and no contact run greedily in copies of the world under the same luck.",
        "",
        f"| round | weeks | deployed | loop | greedy | {rule} | no contact | loop - {rule} | greedy - "
        f"{rule} |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rounds"]:
        net = row["net"]
        lines.append(
            f"| {row['round']} | {row['weeks'][0]}-{row['weeks'][1]} | {row['deployed']} | "
            f"{_ci(net['loop'])} | {_ci(net['greedy'])} | {_ci(net[rule])} | {_ci(net['no_contact'])} | "
            f"{_ci(row['vs_rule'], 4)} | {_ci(row['greedy_vs_rule'], 4)} |"
        )
    lines += [
        "",
        "The gate after each round: doubly robust values per decision on the round's log of the current",
        "and the new export deciding greedily, their paired difference (ship when its lower bound is above",
        "0); in truth, what the estimate estimates (every logged week replayed from the world's state",
        "before it, everyone sent the new export's action, then the current's: one week's value at the",
        "logged states), and what shipping earns (each export deciding the next round from where this",
        "one ended); beside them, the learned simulator's gate (`winback ope --simulator --ahead`): the",
        "same next round in the round's refit simulator, the exports seeing its model's features:",
        "",
        "| after round | current (DR) | new (DR) | new - current (DR) | shipped | same action | "
        "new - current (truth, the logged weeks) | new - current (truth, next round) | "
        "new - current (refit simulator, next round) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in results["rounds"]:
        if "gate" not in row:
            continue
        g = row["gate"]
        simulated = g["simulator_next_round"]
        lines.append(
            f"| {row['round']} | {_estimate(g['current'])} | {_estimate(g['candidate'])} | "
            f"{_ci(g['difference'], 4)} | {'yes' if g['ship'] else 'no'} | {g['agreement']:.0%} | "
            f"{_ci(g['truth_one_step']['difference'], 4)} | {_ci(g['truth_next_round']['difference'], 4)} | "
            f"{_ci(simulated, 4)}: {'ship' if simulated['ship'] else 'keep'} |"
        )
    lines += ["", f"{results['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """True net value per user-week per round: the loop against the best rule and no contact; the
    gate's estimate of each new export's gain against the truth."""
    rounds, rule = results["rounds"], results["best_rule"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    x = [row["round"] for row in rounds]
    lines = (("loop", "the loop (deployed export, exploring)", "o"),
             ("greedy", "the deployed export, greedy", "."),
             (rule, f"best rule ({rule})", "s"), ("no_contact", "no contact", "^"))  # fmt: skip
    for name, label, marker in lines:
        means = np.array([row["net"][name]["mean"] for row in rounds])
        low = means - [row["net"][name]["low"] for row in rounds]
        high = [row["net"][name]["high"] for row in rounds] - means
        axes[0].errorbar(x, means, yerr=[low, high], marker=marker, capsize=3, label=label)
    for row in rounds:
        axes[0].annotate(row["deployed"], (row["round"], row["net"]["loop"]["mean"]), fontsize=7,
                         textcoords="offset points", xytext=(4, 6))  # fmt: skip
    axes[0].set(xlabel="round", ylabel="true net value per user-week", title="the loop in the world")
    axes[0].set_xticks(x)
    axes[0].legend(fontsize=8)
    for offset, key, label in (
        (-0.05, "vs_rule", "the loop (exploring)"),
        (0.05, "greedy_vs_rule", "greedy"),
    ):
        means = np.array([row[key]["mean"] for row in rounds])
        low, high = [row[key]["low"] for row in rounds], [row[key]["high"] for row in rounds]
        axes[1].errorbar(np.array(x) + offset, means, yerr=[means - low, high - means], fmt="o", capsize=3,
                         label=label)  # fmt: skip
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(xlabel="round", ylabel=f"minus {rule}, per user-week (paired)", title="against the best rule")
    axes[1].set_xticks(x)
    axes[1].legend(fontsize=8)
    gated = [row for row in rounds if "gate" in row]
    if gated:
        for offset, key, label in ((-0.15, None, "gate: DR difference"),
                                   (0.0, "truth_one_step", "truth, the logged weeks"),
                                   (0.15, "truth_next_round", "truth, next round")):  # fmt: skip
            values = [row["gate"][key]["difference"] if key else row["gate"]["difference"] for row in gated]
            means = np.array([v["mean"] for v in values])
            axes[2].errorbar([row["round"] + offset for row in gated], means,
                             yerr=[means - [v["low"] for v in values], [v["high"] for v in values] - means],
                             fmt="o", capsize=3, label=label)  # fmt: skip
        axes[2].axhline(0, color="grey", lw=0.8)
        axes[2].set(xlabel="after round", ylabel="new export - current, per user-week", title="the gate")
        axes[2].set_xticks([row["round"] for row in gated])
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ci(estimate: dict[str, float], digits: int = 3) -> str:
    return f"{estimate['mean']:.{digits}f} [{estimate['low']:.{digits}f}, {estimate['high']:.{digits}f}]"


def _estimate(estimate: dict[str, Any]) -> str:
    flag = "" if estimate["ess"] >= 0.01 * estimate["n"] else " (untrusted)"
    return f"{estimate['value']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]{flag}"


if __name__ == "__main__":
    main()
