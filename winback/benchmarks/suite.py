"""The benchmark: tuned baselines, trained agents and the oracle on held-out users, paired by seed and user.

1. Each baseline family is tuned by grid search on training users under training seeds
   (:mod:`winback.agents.tuning`); the A/B test's candidates are the tuned rules and every fixed
   single action.
2. Every policy then runs on the scenario's evaluation users (disjoint from training and validation
   users) under the evaluation seeds, with common random numbers: each user meets the same luck
   under every policy.
3. ``random`` sends contacts at the rates of the best agent (or, without agents, of the best rule),
   both measured on the tuning users under the tuning seeds: the same number of contacts of each
   kind, sent to nobody in particular.
4. Two references that no deployable policy is: the ``oracle`` replays each user's own luck in the
   true simulator (it knows which contacts will tip whom), the ``planner`` plans in the true
   simulator from each user's true state but with sampled luck (:mod:`winback.agents.oracle`).
5. The report (:mod:`winback.benchmarks.report`) gives means with 95% bootstrap CIs and paired
   differences against the best baseline.

Step 2 runs as tasks (:func:`evaluation_tasks`), one after the other in this process or in parallel
on a :class:`~winback.benchmarks.backends.Backend`: with ``shard_users``, each policy that decides
for each user alone in shards of users (of a population in shards, of its shards), the rest whole;
the runs are joined in user order (:func:`~winback.benchmarks.rollout.concatenate_runs`), so the
table is the one of a single run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback.agents.base import Policy
from winback.agents.baselines import (
    CARE,
    COUPON,
    PUSH,
    FixedCadence,
    NoContact,
    Prioritized,
    Priority,
    RandomContact,
)
from winback.agents.experiments import ABTestThenRollout, UpliftTargeting
from winback.agents.oracle import Oracle
from winback.agents.tuning import FAMILIES, Family, TuningResult, tune
from winback.benchmarks.backends import Backend
from winback.benchmarks.report import summarize, write_report
from winback.benchmarks.rollout import PolicyRun, concatenate_runs, run_policy
from winback.errors import ConfigError
from winback.export.policy import load_policy_dir
from winback.scenarios.scenario import Scenario, load_scenario
from winback.simulator.core import Simulator
from winback.simulator.state import SimState

RULES = ("fixed_cadence", "recency_rule", "interest_threshold")
BASELINES = ("no_contact", *RULES, "ab_test", "uplift", "random")
REFERENCES = ("oracle", "planner")
ALLOCATED = ("prioritized_rule",)
"""Baselines for ``--allocation`` only: the best rule whose requests carry a tuned priority."""
KNOWN_POLICIES = (*BASELINES, *ALLOCATED, *REFERENCES)
ALL_POLICIES = (*BASELINES, "oracle")
"""What ``--policies all`` runs: the planner is left out (it costs 30x a rule; name it to run it)."""
TUNING_SEED_OFFSET = 10_000
"""Tuning seeds start here, far from the evaluation seeds."""

EXPERIMENT_GRIDS: dict[str, tuple[dict[str, list[Any]], dict[str, list[Any]]]] = {
    "ab_test": (
        {"window": [4, 8, 13, 26], "test_share": [0.1, 0.2, 0.4, 1.0], "alpha": [0.05, 0.2]},
        {"window": [4], "test_share": [0.2]},
    ),
    "uplift": ({"window": [4, 8], "gap": [2, 4, 8]}, {"window": [4], "gap": [4]}),
    "prioritized_rule": (
        {"rule": list(RULES), "priority": ["at_risk", "engaged"]},
        {"rule": list(RULES), "priority": ["at_risk", "engaged"]},
    ),
}
"""(grid, quick grid) of the baselines built on the tuned rules: the experiment-driven ones, and the
rule with a priority under the allocation."""


@dataclass(frozen=True)
class BenchConfig:
    scenario: str = "default"
    policies: tuple[str, ...] = ALL_POLICIES
    """Baselines and references to run (see :data:`KNOWN_POLICIES`)."""
    agents: tuple[Path, ...] = ()
    """Training run directories (``winback train --out``) whose best checkpoint runs as an agent."""
    seeds: int = 5
    """Evaluation seeds ``0 .. seeds - 1``."""
    tuning_seeds: int = 2
    """Training seeds the baselines are tuned under."""
    tuning_users: int = 4000
    """Training users the baselines are tuned on (a fixed sample; 0: all)."""
    eval_users: int = 0
    """Evaluation users (a fixed sample; 0: all)."""
    oracle_lookahead: int = 4
    """Periods the oracle and the planner look ahead."""
    planner_samples: int = 8
    """Futures the planner averages per action."""
    quick: bool = False
    """Coarse grids (for tests and smoke runs)."""
    shard_users: int = 0
    """Evaluation users per task when the evaluation runs in shards (0: each policy on all users in
    one task); see :func:`evaluation_tasks` for what always runs whole."""
    allocation: bool = False
    """Agents decide under the scenario's coupon budget and care team through the allocation
    (:func:`~winback.benchmarks.rollout.run_policy`'s ``allocation``)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.policies) - set(KNOWN_POLICIES))
        if unknown:
            raise ConfigError(f"unknown policies {unknown} (known: {', '.join(KNOWN_POLICIES)}, or 'all')")
        for field in ("seeds", "tuning_seeds"):
            if getattr(self, field) < 1:
                raise ConfigError(f"BenchConfig.{field} = {getattr(self, field)} (allowed: >= 1)")
        if "prioritized_rule" in self.policies and not self.allocation:
            raise ConfigError(
                "prioritized_rule ranks its requests for the allocation under shared limits: run it "
                "with --allocation (BenchConfig.allocation)"
            )
        for field in ("tuning_users", "eval_users", "shard_users"):
            if getattr(self, field) < 0:
                raise ConfigError(f"BenchConfig.{field} = {getattr(self, field)} (allowed: >= 0)")


@dataclass
class BenchResult:
    runs: list[PolicyRun]
    tuning: dict[str, TuningResult]
    table: pd.DataFrame
    """:func:`~winback.benchmarks.report.summarize` of ``runs``: the leaderboard's rows."""
    report: Path


def sample_users(users: SimState, n: int, seed: int) -> SimState:
    """A fixed sample of ``n`` users (all when ``n`` is 0 or at least their number), in their order."""
    if n == 0 or n >= users.n_users:
        return users
    return users.take(np.sort(np.random.default_rng(seed).choice(users.n_users, n, replace=False)))


class SimulatorsBySeed(dict[int, Simulator]):
    """One simulator per seed, built on first use."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__()
        self.scenario = scenario

    def __missing__(self, seed: int) -> Simulator:
        self[seed] = self.scenario.simulator_for(seed)
        return self[seed]


def run_benchmark(
    config: BenchConfig, out_dir: Path, *, progress: bool = True, backend: Backend | None = None
) -> BenchResult:
    """Tune the baselines, run every policy on the evaluation users and write the report to ``out_dir``.

    The evaluation's tasks (:func:`evaluation_tasks`) run on ``backend`` (``None``: one after the
    other in this process); the table is the same on any backend and with any ``shard_users``.
    """
    scenario = load_scenario(config.scenario)
    simulators = SimulatorsBySeed(scenario)
    eval_seeds = list(range(config.seeds))
    setting = TuningSetting.of(config, scenario)
    tuning = tune_baselines(config, setting, simulators, progress=progress)
    params = {family: result.best.params for family, result in tuning.items()}
    notes = [
        f"Baselines tuned on {setting.users.n_users} training users x seeds {setting.seeds}"
        + (" (quick grids)." if config.quick else "."),
        *(f"Tuned {family}: {result.best.params}" for family, result in tuning.items()),
    ]
    policies = PolicySet(config, params)
    if "random" in config.policies:
        built = policies.build()
        agents = {name: policy for name, (policy, category) in built.items() if category == "agent"}
        candidates = agents or {name: built[name][0] for name in RULES if name in built}
        if not candidates:
            raise ConfigError("'random' matches the contact rates of an agent or a rule: run one of them too")
        random, reference = matched_random(
            candidates,
            setting.scenario,
            setting.users,
            setting.seeds,
            simulators=simulators,
            allocation=config.allocation,
        )
        policies = PolicySet(config, params, random.rates)
        notes.append(
            f"random sends contacts at the rates of {reference}, the best "
            f"{'agent' if agents else 'rule'} on the training users the baselines were tuned on."
        )
    runs, task_notes = evaluate(scenario, policies, eval_seeds, backend)
    n_users = runs[0].metrics["net_value"].shape[1]
    notes = [f"Evaluation: {n_users} held-out users x seeds {eval_seeds}.", *notes, *task_notes]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tuning.json").write_text(json.dumps(_tuning_dict(tuning), indent=2) + "\n")
    (out_dir / "bench.json").write_text(json.dumps(_config_dict(config), indent=2) + "\n")
    table = summarize(runs)
    report = write_report(
        runs,
        out_dir,
        title=f"winback benchmark: scenario '{scenario.name}'",
        actions=simulators[eval_seeds[0]].actions,
        notes=notes,
        table=table,
    )
    return BenchResult(runs, tuning, table, report)


@dataclass(frozen=True)
class PolicySet:
    """A benchmark's policies as what builds them in any process (a backend's worker): the tuned
    ``params`` of each parametrised family, the agents' directories and references in ``config``, and
    ``random``'s matched rates once known."""

    config: BenchConfig
    params: dict[str, dict[str, Any]]
    random_rates: dict[str, float] | None = None
    """Contacts per period of each kind for ``random`` (:func:`matched_random`; ``None``: not run)."""

    def build(self) -> dict[str, tuple[Policy, str]]:
        """Every policy by name with its category, in the report's order: baselines, agents,
        ``random``, references."""
        chosen = self.config.policies
        baselines = make_policies([p for p in chosen if p not in REFERENCES], self.params, self.config)
        built = {name: (policy, "baseline") for name, policy in baselines.items()}
        built |= {agent.name: (agent, "agent") for agent in cached_agents(self.config.agents)}
        if self.random_rates is not None:
            built["random"] = (RandomContact(self.random_rates), "baseline")
        references = make_policies([p for p in chosen if p in REFERENCES], self.params, self.config)
        return built | {name: (policy, "reference") for name, policy in references.items()}


EvaluationTask = tuple[tuple[str, ...], tuple[int, int]]
"""The policies a task runs and the range ``[start, stop)`` of the evaluation units it runs them on
(:func:`evaluation_units`)."""


def evaluation_units(config: BenchConfig, scenario: Scenario) -> tuple[int, int]:
    """What the evaluation users are cut into: (units, units per task, 0 for none).

    Units are the evaluation users, ``config.shard_users`` a task; for a population in shards
    (:meth:`Scenario.population_shards`) they are its shards, as many a task as hold about
    ``config.shard_users`` evaluation users (at least one), and no user is read before its task.
    """
    panel = scenario.population_shards()
    if panel is None:
        return evaluation_users(config, scenario).n_users, config.shard_users
    if config.eval_users:
        raise ConfigError(
            f"eval_users = {config.eval_users}: a population in shards "
            f"({scenario.population_config.log}) is evaluated on all its held-out users (give 0, and "
            "scenario.eval_share for fewer)"
        )
    held_out_per_shard = panel.n_users / panel.n_shards * scenario.eval_share
    per_task = max(1, round(config.shard_users / held_out_per_shard)) if config.shard_users else 0
    return panel.n_shards, per_task


def evaluation_tasks(
    scenario: Scenario, policies: Mapping[str, Policy], n_units: int, per_task: int
) -> tuple[list[EvaluationTask], list[str]]:
    """The tasks of an evaluation over ``n_units`` units of users (:func:`evaluation_units`) and a
    note on each policy that runs whole.

    With ``per_task``, the units are cut into consecutive ranges of that many, each one task of every
    policy that decides for each user alone (:attr:`Policy.separable`). A policy that decides across
    users (an experiment), and every policy when users share the coupon budget or the care team,
    runs on all users in a task of its own: sharded, it would decide differently. Without
    ``per_task`` each policy is a task on all users.
    """
    whole = (0, n_units)
    if not per_task or per_task >= n_units:
        return [((name,), whole) for name in policies], []
    if scenario.operations.shared:
        note = "Not run in shards: users share the coupon budget or the care team."
        return [((name,), whole) for name in policies], [note]
    coupled = [name for name, policy in policies.items() if not policy.separable]
    separable = tuple(name for name in policies if name not in coupled)
    tasks: list[EvaluationTask] = []
    if separable:
        starts = range(0, n_units, per_task)
        tasks = [(separable, (start, min(start + per_task, n_units))) for start in starts]
    tasks += [((name,), whole) for name in coupled]
    if not coupled:
        return tasks, []
    return tasks, [f"{', '.join(coupled)}: run on all users in one task (they decide across users)."]


def evaluate(
    scenario: Scenario, policies: PolicySet, seeds: list[int], backend: Backend | None = None
) -> tuple[list[PolicyRun], list[str]]:
    """Every policy of ``policies`` on the scenario's evaluation users under ``seeds``, in the tasks of
    :func:`evaluation_tasks` on ``backend`` (``None``: in this process), and the notes on how they ran."""
    built = policies.build()
    by_name = {name: policy for name, (policy, _) in built.items()}
    tasks, notes = evaluation_tasks(scenario, by_name, *evaluation_units(policies.config, scenario))
    if backend is None:  # one task after the other: the policies of the same users share one task
        merged: dict[tuple[int, int], tuple[str, ...]] = {}
        for names, units in tasks:
            merged[units] = merged.get(units, ()) + names
        tasks = [(names, units) for units, names in merged.items()]
    calls = [(scenario, policies, names, units, seeds) for names, units in tasks]
    if backend is None:
        results = [evaluate_task(*call) for call in calls]
    else:
        results = backend.map(evaluate_task, calls, f"evaluating {len(built)} policies in {len(calls)} tasks")
    parts: dict[str, list[PolicyRun]] = {name: [] for name in built}
    for result in results:  # in task order: a policy's shards in user order
        for run in result:
            parts[run.policy].append(run)
    return [concatenate_runs(parts[name]) for name in built], notes


def evaluate_task(
    scenario: Scenario, policies: PolicySet, names: tuple[str, ...], units: tuple[int, int], seeds: list[int]
) -> list[PolicyRun]:
    """The policies ``names`` on the range ``units`` of the scenario's evaluation units under ``seeds``
    (a task of :func:`evaluate`, run in any process)."""
    built = policies.build()
    population = evaluation_users(policies.config, scenario, units)
    simulators = SimulatorsBySeed(scenario)
    return [
        run_policy(built[name][0], scenario, population, seeds, name=name, category=built[name][1],
                   simulators=simulators, allocation=policies.config.allocation)
        for name in names
    ]  # fmt: skip


def evaluation_users(
    config: BenchConfig, scenario: Scenario, units: tuple[int, int] | None = None
) -> SimState:
    """The held-out users the policies are evaluated on (a fixed sample of ``config.eval_users``), or
    those of the range ``units`` of them (:func:`evaluation_units`)."""
    panel = scenario.population_shards()
    if panel is not None:
        return scenario.eval_users_in_shards(*(units or (0, panel.n_shards)))
    users = sample_users(scenario.eval_users(), config.eval_users, seed=0)
    return users if units is None else users.take(np.arange(*units))


def matched_random(
    candidates: Mapping[str, Policy],
    scenario: Scenario,
    users: SimState,
    seeds: Sequence[int],
    *,
    simulators: dict[int, Simulator],
    allocation: bool = False,
) -> tuple[RandomContact, str]:
    """``random`` at the contact rates of the best of ``candidates`` on ``users`` under ``seeds`` (the
    tuning users and seeds: evaluation users choose nothing), run as the benchmark runs them (with
    ``allocation``), and the name of that candidate."""
    runs = [
        run_policy(
            policy, scenario, users, list(seeds), name=name, simulators=simulators, allocation=allocation
        )
        for name, policy in candidates.items()
    ]
    reference = max(runs, key=lambda run: float(run.metrics["net_value"].mean()))
    kinds = simulators[seeds[0]].kinds
    contacts = {kind: float(reference.metrics[f"contacts_{kind}"].mean()) for kind in kinds}
    return RandomContact.matched(contacts, scenario.horizon), reference.policy


@dataclass(frozen=True)
class TuningSetting:
    """Where the baselines are tuned: the training users (a fixed sample of ``config.tuning_users``;
    of a population in shards, from its first shards, :meth:`Scenario.train_users`), the scenario with
    its coupon budget and care team scaled to their number, so each meets the limits per user the
    evaluation users will (:meth:`Scenario.with_limits_for`), and the tuning seeds."""

    users: SimState
    scenario: Scenario
    seeds: list[int]

    @classmethod
    def of(cls, config: BenchConfig, scenario: Scenario) -> TuningSetting:
        users = sample_users(scenario.train_users(at_least=config.tuning_users), config.tuning_users, seed=1)
        if scenario.operations.shared:
            scenario = scenario.with_limits_for(users.n_users, evaluation_users(config, scenario).n_users)
        return cls(users, scenario, tuning_seeds(config))


def tuning_seeds(config: BenchConfig) -> list[int]:
    return [TUNING_SEED_OFFSET + i for i in range(config.tuning_seeds)]


def tune_baselines(
    config: BenchConfig, setting: TuningSetting, simulators: dict[int, Simulator], *, progress: bool = True
) -> dict[str, TuningResult]:
    """Grid searches of the parametrised baselines among ``config.policies`` (the rules too when the
    A/B test needs them as candidates) in ``setting`` (:meth:`TuningSetting.of`)."""

    def search(family: str, spec: Family) -> TuningResult:
        grid = spec.quick_grid if config.quick else spec.grid
        return tune(
            family, spec.make, grid, setting.scenario, setting.users, setting.seeds,
            simulators=simulators, progress=progress, allocation=config.allocation,
        )  # fmt: skip

    tuning: dict[str, TuningResult] = {}
    built_on_rules = {"ab_test", "prioritized_rule"} & set(config.policies)
    for family in RULES:
        if family in config.policies or built_on_rules:
            tuning[family] = search(family, FAMILIES[family])
    params = {family: result.best.params for family, result in tuning.items()}
    for family in EXPERIMENT_GRIDS:
        if family in config.policies:
            make = _experiment_maker(family, params)
            tuning[family] = search(family, Family(make, *EXPERIMENT_GRIDS[family]))
    return tuning


def make_policies(
    names: Sequence[str], params: Mapping[str, Mapping[str, Any]], config: BenchConfig
) -> dict[str, Policy]:
    """The policies ``names`` (``random`` aside: it copies another run's rates) with the tuned
    ``params`` of each parametrised family, in the order of :data:`KNOWN_POLICIES`."""
    policies: dict[str, Policy] = {}
    for name in KNOWN_POLICIES:
        if name not in names or name == "random":
            continue
        if name == "no_contact":
            policies[name] = NoContact()
        elif name in RULES:
            policies[name] = FAMILIES[name].make(**params[name], name=name)
        elif name in EXPERIMENT_GRIDS:
            policies[name] = _experiment_maker(name, params)(**params[name], name=name)
        elif name == "oracle":
            policies[name] = Oracle(lookahead=config.oracle_lookahead)
        else:
            policies[name] = Oracle(
                lookahead=config.oracle_lookahead, clairvoyant=False, samples=config.planner_samples
            )
    return policies


def _experiment_maker(family: str, params: Mapping[str, Mapping[str, Any]]) -> Callable[..., Policy]:
    """The constructor of a baseline built on the tuned rules: the A/B test (its arms are the tuned
    rules), uplift targeting, or a tuned rule with a priority (:class:`Prioritized`)."""
    if family == "uplift":
        return UpliftTargeting
    if family == "prioritized_rule":
        return partial(_prioritized_rule, params)
    rules = {rule: FAMILIES[rule].make(**params[rule], name=rule) for rule in RULES}
    return partial(ABTestThenRollout, ab_candidates(rules))


def _prioritized_rule(
    params: Mapping[str, Mapping[str, Any]], rule: str, priority: Priority, name: str = "prioritized_rule"
) -> Prioritized:
    return Prioritized(FAMILIES[rule].make(**params[rule], name=rule), priority, name=name)


def ab_candidates(rules: dict[str, Policy]) -> dict[str, Policy]:
    """The A/B test's arms: the tuned rules and every fixed single action."""
    return rules | {
        f"always_{kind}": FixedCadence(kind, 1, name=f"always_{kind}") for kind in (PUSH, COUPON, CARE)
    }


@cache
def cached_agents(run_dirs: tuple[Path, ...]) -> tuple[Policy, ...]:
    """:func:`load_agents`, once per process (every run resets them)."""
    return tuple(load_agents(run_dirs))


def load_agents(run_dirs: Sequence[Path]) -> list[Policy]:
    """Each training run's best model or exported policy (:func:`~winback.export.policy.load_policy_dir`),
    named by its algorithm (and directory when algorithms repeat)."""
    agents = [load_policy_dir(run_dir) for run_dir in run_dirs]
    algos = [agent.name for agent in agents]
    for agent, run_dir in zip(agents, run_dirs, strict=True):
        if algos.count(agent.name) > 1:
            agent.name = f"{agent.name}@{Path(run_dir).name}"
    if len({agent.name for agent in agents}) < len(agents):
        raise ConfigError(f"agent runs {[str(d) for d in run_dirs]} repeat an algorithm and a directory name")
    return agents


def _tuning_dict(tuning: dict[str, TuningResult]) -> dict[str, Any]:
    return {
        family: {
            "best": dataclasses.asdict(result.best),
            "trials": [dataclasses.asdict(trial) for trial in result.trials],
        }
        for family, result in tuning.items()
    }


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    return {**dataclasses.asdict(config), "agents": [str(a) for a in config.agents]}


@dataclass
class FinishedBench:
    """What a finished benchmark directory fixes for re-running policies beside its own: the scenario,
    the evaluation users and seeds, and the baselines' tuned parameters (common random numbers make a
    rebuilt baseline reproduce its leaderboard figures)."""

    scenario: Scenario
    users: SimState
    seeds: list[int]
    tuning: dict[str, Any]
    """``tuning.json``: per family, the best trial and every trial."""

    def tuned(self, family: str) -> dict[str, Any]:
        return self.tuning[family]["best"]["params"]

    def best_rule(self) -> str:
        """The rule family that scored best on the tuning users."""
        return max(RULES, key=lambda family: self.tuning[family]["best"]["net_value"])

    def rule(self, family: str) -> Policy:
        """A fresh policy of the rule ``family`` with its tuned parameters."""
        return FAMILIES[family].make(**self.tuned(family), name=family)


def load_finished_bench(directory: Path) -> FinishedBench:
    """The setting of the ``winback bench`` run written to ``directory`` (``bench.json``, ``tuning.json``)."""
    bench = json.loads((directory / "bench.json").read_text())
    scenario = load_scenario(bench["scenario"])
    return FinishedBench(
        scenario=scenario,
        users=sample_users(scenario.eval_users(), bench["eval_users"], seed=0),
        seeds=list(range(bench["seeds"])),
        tuning=json.loads((directory / "tuning.json").read_text()),
    )


def run_scenarios(
    config: BenchConfig,
    scenarios: Sequence[str],
    out_dir: Path,
    *,
    progress: bool = True,
    backend: Backend | None = None,
) -> tuple[list[BenchResult], Path]:
    """:func:`run_benchmark` for each scenario into ``out_dir/<scenario>/``, and one table of every
    policy's net value per user by scenario (``scenarios.md``, ``scenarios.csv``)."""
    names = [load_scenario(scenario).name for scenario in scenarios]
    results = [
        run_benchmark(
            dataclasses.replace(config, scenario=scenario), out_dir / name, progress=progress, backend=backend
        )
        for scenario, name in zip(scenarios, names, strict=True)
    ]
    return results, write_scenario_table(results, names, out_dir)


def write_scenario_table(results: Sequence[BenchResult], names: Sequence[str], out_dir: Path) -> Path:
    """Net value per user [95% CI] of every policy (rows) in every scenario (columns)."""
    tables = {name: result.table for name, result in zip(names, results, strict=True)}
    policies = list(dict.fromkeys(p for table in tables.values() for p in table["policy"]))
    cells: dict[str, dict[str, str]] = {p: {} for p in policies}
    rows = []
    for name, table in tables.items():
        for row in table.to_dict("records"):
            cells[row["policy"]][name] = (
                f"{row['net_value']:.2f} [{row['net_value_low']:.2f}, {row['net_value_high']:.2f}]"
            )
            rows.append(
                {
                    "scenario": name,
                    **{
                        k: row[k]
                        for k in ("policy", "category", "net_value", "net_value_low", "net_value_high")
                    },
                }
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out_dir / "scenarios.csv", index=False)
    header = "| policy | " + " | ".join(f"[`{n}`]({n}/leaderboard.md)" for n in names) + " |"
    lines = [
        "# Net value per user by scenario",
        "",
        "Mean net value per user over each scenario's horizon on its held-out users, with 95% bootstrap "
        "CIs over users; each scenario's leaderboard (paired differences, costs, plots) is linked.",
        "",
        header,
        "|---|" + "---:|" * len(names),
        *(f"| `{p}` | " + " | ".join(cells[p].get(n, "") for n in names) + " |" for p in policies),
    ]
    path = out_dir / "scenarios.md"
    path.write_text("\n".join(lines) + "\n")
    return path
