"""Do winback's off-policy estimates find what a policy earns in the world its log came from?

A ground-truth world of ``benchmarks/sim_to_real.py`` (``--from`` its output: the world's settings,
the pipeline's decay model, tuned rules and exported agent) holds the scenario's whole population,
kept as a batch job keeps it (:class:`winback.benchmarks.ground_truth.BatchWorld`: the users table
read by the export's decay model and rules, after a quiet week). The logging policy is the exported
agent under epsilon-greedy exploration, its actions drawn and logged as ``winback decide`` draws them
(:func:`winback.export.runtime.batch.draw_actions`). The candidates: the agent itself (greedy), every
tuned rule, no contact and random contacts.

**One period** (``--logs`` logs): each log draws the week anew (the world's luck
:meth:`~winback.data.synthetic.GroundTruthWorld.with_luck` and the exploration's seed); IPS, SNIPS
and doubly robust estimate each candidate's net value per user that week. The truth: the candidate's
mean net value on the same users and week, averaged over the same draws of the world's luck.
Reported per candidate and estimator: the mean estimate's error, the share of logs within 10% of the
truth, and the share whose 95% interval covers it.

**Several periods** (``--horizon`` weeks, ``--trajectory-logs`` logs): the logging policy runs for
the horizon; per-decision weighted IS, fitted Q evaluation and weighted doubly robust (with FQE's
values) estimate each candidate's return per user, and so does the learned simulator refit on the
shop's log grown by the logged weeks (``winback decay fit`` on it, the candidates run from the users
warm-started at the first logged week: the model-based estimate, which learns the contacts' effects
from the explored ones). The truth is each candidate's return in the world, averaged over
``--truth-draws`` draws of its luck. Reported per log: each estimator's Spearman correlation between
the candidates' estimated and true ranking, and the regret of shipping its best. Beside them, the
learned simulator of the run itself (fitted before the logged weeks: the same for every log).

Writes ``OUT/report.md``, ``OUT/results.json`` and ``OUT/ope_validation.png``.

    python benchmarks/ope_validation.py --from runs/s2r --world strong-season --out runs/ope_validation
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from production_loop import grow_log, refit_decay_model
from scipy import stats as scipy_stats

from winback.agents.base import DecisionContext, Policy
from winback.agents.baselines import RandomContact
from winback.benchmarks.ground_truth import BatchWorld
from winback.benchmarks.ope import (
    OffPolicyEstimate,
    Trajectories,
    artifact_distribution,
    doubly_robust,
    fit_reward_model,
    fitted_q_evaluation,
    fqe_estimate,
    ips,
    per_decision_weighted_is,
    simulator_returns,
    snips,
    weighted_doubly_robust,
)
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import BenchConfig, load_agents, load_finished_bench, make_policies
from winback.data.io import write_event_log
from winback.data.synthetic import EventRecorder, GroundTruthWorld, WorldConfig, WorldStep
from winback.export.runtime import Exploration, ExportedArtifact
from winback.export.runtime.batch import draw_actions
from winback.scenarios.scenario import Scenario
from winback.scenarios.schema import ModelConfig
from winback.simulator.state import SimState
from winback.streams import RandomStreams

RULES = ("interest_threshold", "fixed_cadence", "recency_rule")
RANDOM_RATES = {"push_new_items": 0.10, "coupon": 0.05, "care_message": 0.05}
"""The random candidate's share of user-weeks sent each kind (where allowed)."""
CONTACT_RATE = 0.1
"""As ``benchmarks/sim_to_real.py``'s logging of the world's log (to rebuild where it ended)."""
WITHIN = 0.10
QUIET_SEED = 999
"""The learned simulator's seed of the quiet week before its verdict's weeks."""
LUCK_OFFSET = 1_000
"""The world's luck of draw ``i`` is ``LUCK_OFFSET + i`` (the world's own seed played the log)."""

Probabilities = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""A candidate: its (n, A) probability of each action for users of (n, F) features and (n, A) masks
in a period (0, 1, ...)."""


@dataclass(frozen=True)
class Logged:
    """What a logging run recorded: (n, T, ...) arrays over its periods."""

    observations: np.ndarray
    allowed: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="sim_to_real.py's --out.")
    parser.add_argument("--world", default="strong-season")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epsilon", type=float, default=0.3, help="The logging policy's exploration.")
    parser.add_argument("--logs", type=int, default=50, help="One-period logs.")
    parser.add_argument("--horizon", type=int, default=13, help="Weeks of the multi-period logs.")
    parser.add_argument("--trajectory-logs", type=int, default=5)
    parser.add_argument("--truth-draws", type=int, default=10, help="Draws of luck of a multi-period truth.")
    parser.add_argument(
        "--users",
        type=int,
        help="A world of this many users (the same world's parameters; its log written and its users "
        "warm-started by the run's decay model) instead of the run's own.",
    )
    parser.add_argument("--sim-seeds", type=int, default=3, help="Seeds of the learned simulators' verdicts.")
    parser.add_argument("--quick", action="store_true", help="Tiny refits of the decay model (a smoke run).")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    given = {k: str(v) for k, v in vars(args).items() if k != "out"}
    if (args.out / "args.json").is_file() and json.loads((args.out / "args.json").read_text()) != given:
        parser.error(f"{args.out} holds a run of other settings (its args.json): its refits would be reused")
    (args.out / "args.json").write_text(json.dumps(given, indent=2) + "\n")
    started = time.perf_counter()
    found = setting(args.source, args.world, args.users, args.out)
    batch, candidates, artifact = found.batch, found.candidates, found.artifact
    exploration = Exploration("epsilon", epsilon=args.epsilon)
    print(f"{batch.n_users:,} users; candidates {', '.join(candidates)}", flush=True)
    one = one_period(batch, artifact, candidates, exploration, args.logs) if args.logs else {}
    print(f"one period: {time.perf_counter() - started:.0f}s", flush=True)
    several: dict[str, Any] = {}
    if args.trajectory_logs:
        refit = Refit(args.out, args.sim_seeds, args.quick)
        several = several_periods(
            found, exploration, args.horizon, args.trajectory_logs, args.truth_draws, refit
        )
        verdict = simulator_verdict(found, args.horizon, args.sim_seeds)
        several["simulator"] = {"estimates": verdict, **ranking(verdict, several["truth"])}
    results = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "users": int(batch.n_users),
        "one_period": one,
        "several_periods": several,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "report.md").write_text(markdown(results))
    plot(results, args.out / "ope_validation.png")
    print((args.out / "report.md").read_text())


@dataclass(frozen=True)
class Setting:
    """The world where its log ended, its population kept as a batch job keeps it, the candidates as
    distributions and as policies (for the learned simulators), what the learned simulator needs (its
    scenario names the shop's log), and the quiet week the batch world played after the log (to grow
    the log)."""

    batch: BatchWorld
    candidates: dict[str, Probabilities]
    policies: dict[str, Policy]
    artifact: ExportedArtifact
    scenario: Scenario
    users: SimState
    quiet: WorldStep


def setting(source: Path, name: str, n_users: int | None, out: Path) -> Setting:
    """The world of ``source``'s run ``name`` where its log ended (with ``n_users`` users: another draw
    of the world's users, warm-started by the run's decay model on their own log), and the candidates."""
    run = json.loads((source / "results.json").read_text())
    found = next(w for w in run["worlds"] if w["world"] == name)
    config = WorldConfig(**found["config"])
    bench = load_finished_bench(source / name / "run" / "bench")
    scenario = bench.scenario
    if n_users is not None and n_users != config.n_users:
        config = dataclasses.replace(config, n_users=n_users)
    world = GroundTruthWorld(config)
    state = world.start()
    log = world.write_log(state, int(run["args"]["weeks"]), CONTACT_RATE, seed=int(run["args"]["seed"]))
    if config.n_users != found["config"]["n_users"]:
        path = out / f"world-{config.n_users}.parquet"
        if not path.is_file():
            write_event_log(log.log, path)
        where = dataclasses.replace(scenario.population_config, log=str(path.resolve()))
        scenario = dataclasses.replace(scenario, population_config=where)
    export = source / name / "run" / "export"
    artifact = ExportedArtifact.load(export)
    users = scenario.population()
    quiet: list[WorldStep] = []
    batch = BatchWorld(world, state, artifact, users, record=quiet.append)
    batch.record = None
    params = {family: bench.tuned(family) for family in RULES}
    rules = make_policies(["no_contact", *RULES], params, BenchConfig())
    context = DecisionContext(
        artifact.feature_names, artifact.actions, users.n_users, np.random.default_rng(0), 52, users.keys
    )
    candidates: dict[str, Probabilities] = {"agent": _export(artifact)}
    candidates |= {rule_name: _rule(policy, context) for rule_name, policy in rules.items()}
    candidates["random"] = _random(artifact.actions)
    policies = {"agent": load_agents([export])[0]}
    policies |= make_policies(["no_contact", *RULES], params, BenchConfig())
    policies["random"] = RandomContact(RANDOM_RATES)
    return Setting(batch, candidates, policies, artifact, scenario, users, quiet[0])


def _export(artifact: ExportedArtifact) -> Probabilities:
    def probabilities(observations: np.ndarray, allowed: np.ndarray, period: int) -> np.ndarray:
        return artifact_distribution(artifact, Exploration(), observations)

    return probabilities


def _rule(policy: Policy, context: DecisionContext) -> Probabilities:
    policy.reset(context)

    def probabilities(observations: np.ndarray, allowed: np.ndarray, period: int) -> np.ndarray:
        return np.eye(allowed.shape[1])[policy.act(observations, allowed, period)]

    return probabilities


def _random(actions: tuple[str, ...]) -> Probabilities:
    """:class:`~winback.agents.baselines.RandomContact` of :data:`RANDOM_RATES` as a distribution: a
    kind's rate where allowed, the rest to no contact (its draws fall on ``none`` where masked)."""
    rates = np.array([0.0, *(RANDOM_RATES[kind] for kind in actions[1:])])

    def probabilities(observations: np.ndarray, allowed: np.ndarray, period: int) -> np.ndarray:
        p = np.where(allowed, rates, 0.0)
        p[:, 0] = 1.0 - p[:, 1:].sum(axis=1)
        return p

    return probabilities


def log_weeks(
    batch: BatchWorld,
    artifact: ExportedArtifact,
    exploration: Exploration,
    weeks: int,
    seed: int,
    record: Callable[[WorldStep], None] | None = None,
) -> Logged:
    """The logging policy for ``weeks`` from ``batch`` (forked: ``batch`` is unchanged) in the world of
    luck ``LUCK_OFFSET + seed``, its draws seeded by ``seed``, every week played handed to ``record``."""
    world, streams = batch.fork(LUCK_OFFSET + seed), RandomStreams(seed)
    world.record = record
    columns: dict[str, list[np.ndarray]] = {f: [] for f in Logged.__dataclass_fields__}
    for _ in range(weeks):
        observed = world.observe()
        drawn = draw_actions(artifact, observed, exploration, streams)
        rewards = world.play(observed, drawn.actions)
        rows = np.arange(len(drawn.actions))
        for field, value in (
            ("observations", observed.observations),
            ("allowed", observed.allowed),
            ("actions", drawn.actions),
            ("propensities", drawn.probabilities[rows, drawn.actions]),
            ("rewards", rewards),
        ):
            columns[field].append(value)
    return Logged(**{field: np.stack(values, axis=1) for field, values in columns.items()})


def true_value(batch: BatchWorld, candidate: Probabilities, weeks: int, draws: list[int]) -> np.ndarray:
    """(draws,) the candidate's mean return per user over ``weeks`` in each of the world's ``draws``
    of luck (its own draws, for a random candidate, keyed by the user, the week and the draw)."""
    values = []
    for draw in draws:
        world, streams, total = batch.fork(LUCK_OFFSET + draw), RandomStreams(draw), 0.0
        for period in range(weeks):
            observed = world.observe()
            p = candidate(observed.observations, observed.allowed, period)
            uniforms = streams.uniforms(observed.keys, observed.states.period, 1)[:, 0]
            total += float(world.play(observed, Exploration().draw(p, uniforms)).mean())
        values.append(total)
    return np.array(values)


def targets(candidate: Probabilities, logged: Logged) -> np.ndarray:
    """(n, T, A) the candidate's probabilities in every logged state."""
    periods = logged.actions.shape[1]
    return np.stack(
        [candidate(logged.observations[:, t], logged.allowed[:, t], t) for t in range(periods)], axis=1
    )


def one_period(
    batch: BatchWorld,
    artifact: ExportedArtifact,
    candidates: dict[str, Probabilities],
    exploration: Exploration,
    logs: int,
) -> dict[str, Any]:
    """Each candidate's truth and, per log, the three estimates of its value in the first week."""
    draws = list(range(logs))
    truth = {name: true_value(batch, candidate, 1, draws) for name, candidate in candidates.items()}
    estimates: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in candidates}
    for seed in draws:
        logged = log_weeks(batch, artifact, exploration, 1, seed)
        features, actions = logged.observations[:, 0], logged.actions[:, 0]
        rewards, propensities = logged.rewards[:, 0], logged.propensities[:, 0]
        predicted = fit_reward_model(features, actions, rewards, len(artifact.actions), seed=seed)
        rng = np.random.default_rng(seed)
        for name, candidate in candidates.items():
            target = targets(candidate, logged)[:, 0]
            on_logged = target[np.arange(len(actions)), actions]
            for estimate in (
                ips(rewards, propensities, on_logged, rng=rng),
                snips(rewards, propensities, on_logged, rng=rng),
                doubly_robust(rewards, propensities, actions, target, predicted, rng=rng),
            ):
                estimates[name].setdefault(estimate.estimator, []).append(_plain(estimate))
        print(f"  one-period log {seed + 1}/{logs}", flush=True)
    return {
        name: {
            "truth": float(truth[name].mean()),
            "truth_sd": float(truth[name].std(ddof=1)),
            "estimators": {
                estimator: summary(values, float(truth[name].mean()))
                for estimator, values in estimates[name].items()
            },
        }
        for name in candidates
    }


def several_periods(
    found: Setting, exploration: Exploration, horizon: int, logs: int, truth_draws: int, refit: Refit
) -> dict[str, Any]:
    """Each candidate's true return over ``horizon`` weeks, and per log the multi-period estimates (the
    refit learned simulator's among them) and each estimator's Spearman correlation with the true
    ranking."""
    batch, artifact, candidates = found.batch, found.artifact, found.candidates
    draws = list(range(truth_draws))
    truth = {name: true_value(batch, candidate, horizon, draws) for name, candidate in candidates.items()}
    per_log = []
    for seed in range(logs):
        recorder = EventRecorder(batch.world, arm="logging")
        recorder.add(found.quiet)
        logged = log_weeks(batch, artifact, exploration, horizon, seed, recorder.add)
        rng = np.random.default_rng(seed)
        estimates: dict[str, dict[str, dict[str, float]]] = {}
        for name, candidate in candidates.items():
            target = targets(candidate, logged)
            on_logged = np.take_along_axis(target, logged.actions[..., None], axis=2)[..., 0]
            fitted = fitted_q_evaluation(
                logged.observations, logged.actions, logged.rewards, target, seed=seed
            )
            trajectories = Trajectories(
                logged.rewards, logged.propensities, on_logged, fitted.predicted(logged.actions),
                fitted.state_values(target),
            )  # fmt: skip
            estimates[name] = {
                e.estimator: _plain(e)
                for e in (
                    per_decision_weighted_is(trajectories, rng=rng),
                    fqe_estimate(fitted, target, rng=rng),
                    weighted_doubly_robust(trajectories, rng=rng),
                )
            }
        for name, value in refit.verdict(found, recorder, seed, horizon).items():
            estimates[name]["refit_simulator"] = {"value": value}
        true_values = {name: float(truth[name].mean()) for name in candidates}
        spearman, regret = {}, {}
        for estimator in estimates[next(iter(candidates))]:
            verdict = ranking({n: estimates[n][estimator]["value"] for n in candidates}, true_values)
            spearman[estimator], regret[estimator] = verdict["spearman"], verdict["regret"]
        per_log.append({"estimates": estimates, "spearman": spearman, "regret": regret})
        print(f"  {horizon}-week log {seed + 1}/{logs}: Spearman {spearman}, regret {regret}", flush=True)
    return {
        "horizon": horizon,
        "truth": {name: float(truth[name].mean()) for name in candidates},
        "truth_sd": {name: float(truth[name].std(ddof=1)) for name in candidates},
        "logs": per_log,
    }


@dataclass(frozen=True)
class Refit:
    """The model-based estimate (:func:`~winback.benchmarks.ope.simulator_returns`, ``winback ope
    --simulator``): the learned simulator refit on the shop's log grown by a log's weeks, its files under
    ``out/refit-SEED`` (reused when a stopped run resumes)."""

    out: Path
    seeds: int
    quick: bool

    def verdict(self, found: Setting, recorder: EventRecorder, seed: int, horizon: int) -> dict[str, float]:
        """Each candidate's mean return per user over ``horizon`` weeks in the learned simulator whose
        decay model is refit on the shop's log grown by ``recorder``'s weeks (the quiet week, then the
        logged ones), from the users warm-started at the first logged week."""
        directory = self.out / f"refit-{seed}"
        grown = grow_log(Path(found.scenario.population_config.log), recorder, directory, seed)
        model = directory / "model"
        if not (model / "model.json").is_file():
            shutil.rmtree(model, ignore_errors=True)
            refit_decay_model(grown, model, self.quick)
        where = dataclasses.replace(found.scenario.population_config, log=str(grown.resolve()))
        scenario = dataclasses.replace(
            found.scenario, population_config=where, model_config=ModelConfig(str(model.resolve()))
        )
        returns = simulator_returns(
            scenario, list(found.policies.values()), found.batch.table.ids, found.quiet.period + 1, horizon,
            seeds=self.seeds,
        )  # fmt: skip
        return {name: float(r.mean()) for name, r in zip(found.policies, returns, strict=True)}


def simulator_verdict(found: Setting, horizon: int, seeds: int) -> dict[str, float]:
    """Each candidate's mean return per user over ``horizon`` weeks in the learned simulator (the run's
    scenario: its decay model fitted on the shop's log before the logged weeks), from the users where
    the world's log ended after a quiet week (drawn by a seed of its own), as the batch world starts;
    it uses no logged trajectory, so it is the same for every log."""
    users = found.users.copy()
    found.scenario.simulator_for(QUIET_SEED).step(users, np.zeros(users.n_users, dtype=np.int64))
    return returns(found.policies, dataclasses.replace(found.scenario, horizon=horizon), users, seeds)


def returns(policies: dict[str, Policy], scenario: Scenario, users: SimState, seeds: int) -> dict[str, float]:
    """Each policy's mean net value per user over the scenario's horizon from ``users``, over ``seeds``."""
    return {
        name: float(
            run_policy(policy, scenario, users, list(range(seeds)), name=name).metrics["net_value"].mean()
        )
        for name, policy in policies.items()
    }


def ranking(estimated: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    """The Spearman correlation of the candidates' ``estimated`` values with their ``truth``, and the
    regret of shipping the estimated best (the true best's value minus the pick's)."""
    names = list(truth)
    guess, real = np.array([estimated[n] for n in names]), np.array([truth[n] for n in names])
    return {
        "spearman": float(scipy_stats.spearmanr(guess, real).statistic),
        "regret": float(real.max() - real[int(np.argmax(guess))]),
    }


def summary(values: list[dict[str, float]], truth: float) -> dict[str, float]:
    """An estimator's record over the logs: mean estimate, its relative error, the share of logs within
    :data:`WITHIN` of the truth and whose interval covers it, and the mean effective sample share."""
    estimates = np.array([v["value"] for v in values])
    return {
        "mean": float(estimates.mean()),
        "error": float((estimates.mean() - truth) / abs(truth)),
        "within": float(np.mean(np.abs(estimates - truth) <= WITHIN * abs(truth))),
        "worst": float(np.max(np.abs(estimates - truth)) / abs(truth)),
        "coverage": float(np.mean([v["low"] <= truth <= v["high"] for v in values])),
        "ess_share": float(np.mean([v["ess"] / v["n"] for v in values])),
    }


def _plain(estimate: OffPolicyEstimate) -> dict[str, float]:
    return {k: float(v) for k, v in asdict(estimate).items() if k != "estimator"}


def markdown(results: dict[str, Any]) -> str:
    one, several = results["one_period"], results["several_periods"]
    lines = [f"# Off-policy estimates against the world's truth ({results['users']:,} users)"]
    if one:
        lines += [
            "",
            f"One period, {results['args']['logs']} logs (the logging policy: the agent, epsilon "
            f"{results['args']['epsilon']}). Truth: net value per user in the week, mean over the same "
            "draws.",
            "",
            "| candidate | truth | estimator | mean estimate | error | within 10% | 95% CI covers "
            "| ESS share |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in one.items():
            for i, (estimator, s) in enumerate(row["estimators"].items()):
                lines.append(
                    f"| {name if i == 0 else ''} | {row['truth']:.4f} | {estimator} | {s['mean']:.4f} | "
                    f"{s['error']:+.1%} | {s['within']:.0%} | {s['coverage']:.0%} | {s['ess_share']:.2f} |"
                )
    if several:
        estimators = list(several["logs"][0]["spearman"])
        lines += [
            "",
            f"{several['horizon']} weeks, {len(several['logs'])} logs. Truth: return per user over the "
            "horizon. refit_simulator: the learned simulator refit on the shop's log grown by the logged "
            "weeks, the candidates run from the first logged week. The learned simulator before the log: the "
            "candidate run in the scenario the policies were trained in (no logged trajectory used: the same "
            "for every log).",
            "",
            "| candidate | truth | "
            + " | ".join(f"{e} (mean over logs)" for e in estimators)
            + " | learned simulator before the log |",
            "|---|---:|" + "---:|" * (len(estimators) + 1),
        ]
        for name, truth in several["truth"].items():
            means = [
                np.mean([log["estimates"][name][e]["value"] for log in several["logs"]]) for e in estimators
            ]
            lines.append(
                f"| {name} | {truth:.3f} | "
                + " | ".join(f"{m:.3f}" for m in means)
                + f" | {several['simulator']['estimates'][name]:.3f} |"
            )
        lines += [
            "",
            "Per log: the Spearman correlation of the candidates' estimated ranking with the true one, and",
            "the regret of shipping the estimator's best (the true best's return minus the pick's):",
            "",
        ]
        for e in estimators:
            values = [log["spearman"][e] for log in several["logs"]]
            regrets = [log["regret"][e] for log in several["logs"]]
            lines.append(
                f"- {e}: Spearman "
                + ", ".join(f"{v:.2f}" for v in values)
                + f" (median {np.median(values):.2f});"
                " regret " + ", ".join(f"{v:.3f}" for v in regrets)
            )
        simulator = several["simulator"]
        lines.append(
            f"- learned simulator before the log: Spearman {simulator['spearman']:.2f}; "
            f"regret {simulator['regret']:.3f}"
        )
    lines += ["", f"{results['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Each candidate's truth against each estimator's mean estimate (one period, several periods)."""
    one, several = results["one_period"], results["several_periods"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    if one:
        names = list(one)
        x = np.arange(len(names))
        estimators = list(one[names[0]]["estimators"])
        width = 0.8 / (len(estimators) + 1)
        axes[0].bar(x, [one[n]["truth"] for n in names], width, label="truth", color="black")
        for i, e in enumerate(estimators):
            axes[0].bar(x + (i + 1) * width, [one[n]["estimators"][e]["mean"] for n in names], width, label=e)
        axes[0].set_xticks(x + 0.4 - width / 2, names, rotation=30, ha="right")
        axes[0].set_title("one week: net value per user")
        axes[0].legend(fontsize=8)
    if several:
        names = list(several["truth"])
        truth = [several["truth"][n] for n in names]
        for e in several["logs"][0]["spearman"]:
            means = [np.mean([log["estimates"][n][e]["value"] for log in several["logs"]]) for n in names]
            axes[1].scatter(truth, means, label=e)
        simulated = [several["simulator"]["estimates"][n] for n in names]
        axes[1].scatter(truth, simulated, label="learned simulator before the log", marker="x")
        low, high = min(truth), max(truth)
        axes[1].plot([low, high], [low, high], color="grey", lw=0.8)
        axes[1].set_xlabel("true return per user")
        axes[1].set_ylabel("estimate (mean over logs)")
        axes[1].set_title(f"{several['horizon']} weeks")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
