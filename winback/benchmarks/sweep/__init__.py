"""Sweeps: a scenario's parameters on a grid, the policies benchmarked in every cell, in parallel.

``winback sweep default --grid "coupon.discount=0.1,0.2,0.3" --grid "fatigue.half_life=2,4,8"``

1. Each cell of the grid is a variant of the scenario: its TOML document with the cell's keys set,
   checked as a file is (an unknown key or an impossible value names the key).
2. One task per cell tunes the parametrised baselines on the cell's training users
   (:func:`~winback.benchmarks.suite.tune_baselines`).
3. The cell's evaluation runs in the benchmark's own tasks
   (:func:`~winback.benchmarks.suite.evaluation_tasks`), once per seed: with ``shard_users``, ranges
   of users for the policies that decide for each user alone, and the rest on all users.
4. Tasks run on a :class:`~winback.benchmarks.backends.Backend`: processes on this machine,
   or Ray tasks on a local or existing Ray cluster. Results are assembled in task order, so the same
   seeds give the same numbers on either backend and any number of workers.

The report (``sweep.md``, ``sweep.csv``, ``sweep.json``) gives each policy's mean net value per user
with its 95% bootstrap CI in every cell, the best deployable policy per cell (references aside),
and heatmaps over the first two grid keys; where users share a coupon budget or a care team,
``sweep.csv`` also gives what each policy used of them and lost to them
(:func:`~winback.benchmarks.whatif.limits_used`); ``sweep.json`` records the throughput.

One concern a module: :mod:`~winback.benchmarks.sweep.grid` (axes, config, cells),
:mod:`~winback.benchmarks.backends`, :mod:`~winback.benchmarks.sweep.tasks` (tuning, evaluation,
sharding), :mod:`~winback.benchmarks.sweep.report` (table and files),
:mod:`~winback.benchmarks.sweep.plots` (heatmaps); :func:`run_sweep` runs them in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from winback.benchmarks.backends import Backend
from winback.benchmarks.rollout import PolicyRun, concatenate_runs
from winback.benchmarks.suite import PolicySet, evaluation_tasks, evaluation_units
from winback.benchmarks.sweep.grid import SweepConfig, cell_document, cell_name
from winback.benchmarks.sweep.report import table_of, write_report
from winback.benchmarks.sweep.tasks import cell_scenario, evaluate_cell, tune_cell
from winback.benchmarks.whatif import limits_used
from winback.scenarios.files import to_document
from winback.scenarios.scenario import Scenario, load_scenario


@dataclass
class SweepResult:
    table: pd.DataFrame
    """One row per cell and policy: the axes' values, ``policy``, ``category``, ``net_value`` with
    ``net_value_low`` / ``_high``, and ``best`` (the cell's best deployable policy)."""
    user_periods: int
    """Users x periods x policies simulated in the evaluation tasks."""
    seconds: dict[str, float]
    """Wall time of the tuning and evaluation stages and in all."""
    tasks: dict[str, int]
    report: Path


def run_sweep(config: SweepConfig, backend: Backend, out_dir: Path) -> SweepResult:
    """Tune and evaluate every cell on ``backend`` and write the report into ``out_dir``."""
    started = time.perf_counter()
    base = load_scenario(config.bench.scenario)
    document = to_document(base)
    cells = config.cells
    names = [cell_name(base.name, config.axes, values) for values in cells]
    documents = [cell_document(document, config.axes, values) for values in cells]
    # Every cell checked before any task runs; its population (swept keys may change it) sized.
    scenarios = [cell_scenario(cell_doc, name) for cell_doc, name in zip(documents, names, strict=True)]
    units = [evaluation_units(config.bench, s) for s in scenarios]
    tuned = backend.map(
        tune_cell, [(d, n, config.bench) for d, n in zip(documents, names, strict=True)], "tuning cells"
    )
    tuned_at = time.perf_counter()
    calls, keys, notes = [], [], []
    for c, (cell_doc, name, params) in enumerate(zip(documents, names, tuned, strict=True)):
        built = PolicySet(config.bench, params).build()
        policies = {policy_name: policy for policy_name, (policy, _) in built.items()}
        cell_tasks, cell_notes = evaluation_tasks(scenarios[c], policies, *units[c])
        notes += [f"{name}: {note}" for note in cell_notes]
        for seed in range(config.bench.seeds):
            for task_policies, users in cell_tasks:
                calls.append((cell_doc, name, config.bench, params, task_policies, users, seed))
                keys.append((c, seed))
    results = backend.map(evaluate_cell, calls, "evaluating cells")
    finished = time.perf_counter()
    built = PolicySet(config.bench, tuned[0]).build()  # the same names and categories in every cell
    categories = {policy_name: category for policy_name, (_, category) in built.items()}
    parts: dict[tuple[int, int, str], list[PolicyRun]] = {}
    for (c, seed), result in zip(keys, results, strict=True):  # in task order: shards in user order
        for run in result:
            parts.setdefault((c, seed, run.policy), []).append(run)
    net = {
        (c, policy): np.stack(
            [concatenate_runs(parts[c, s, policy]).metrics["net_value"][0] for s in range(config.bench.seeds)]
        )
        for c in range(len(cells))
        for policy in categories
    }
    used = {
        (c, policy): _mean_use(
            scenarios[c], [concatenate_runs(parts[c, s, policy]) for s in range(config.bench.seeds)]
        )
        for c in range(len(cells))
        for policy in categories
        if scenarios[c].operations.shared
    }
    table = table_of(config, cells, list(categories), categories, net, used)
    user_periods = sum(values.size * scenarios[c].horizon for (c, _), values in net.items())
    seconds = {"tuning": tuned_at - started, "evaluation": finished - tuned_at, "total": finished - started}
    tasks = {"tuning": len(documents), "evaluation": len(calls)}
    report = write_report(config, backend, table, user_periods, seconds, tasks, notes, out_dir)
    return SweepResult(table, user_periods, seconds, tasks, report)


def _mean_use(scenario: Scenario, runs: list[PolicyRun]) -> dict[str, float]:
    """:func:`~winback.benchmarks.whatif.limits_used` of a policy's runs in a cell, averaged over seeds
    (``periods_over_budget`` summed)."""
    kinds = scenario.simulator.response.kinds
    each = [limits_used(scenario.operations, kinds, run) for run in runs]
    return {
        key: float(
            np.sum([u[key] for u in each])
            if key == "periods_over_budget"
            else np.mean([u[key] for u in each])
        )
        for key in each[0]
    }
