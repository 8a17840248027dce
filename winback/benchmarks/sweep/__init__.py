"""Sweeps: a scenario's parameters on a grid, the policies benchmarked in every cell, in parallel.

``winback sweep default --grid "coupon.discount=0.1,0.2,0.3" --grid "fatigue.half_life=2,4,8"``

1. Each cell of the grid is a variant of the scenario: its TOML document with the cell's keys set,
   checked as a file is (an unknown key or an impossible value names the key).
2. One task per cell tunes the parametrised baselines on the cell's training users
   (:func:`~winback.benchmarks.suite.tune_baselines`).
3. One task per cell, seed and shard runs every policy on the cell's evaluation users. A large
   population is sharded by user (``shard_users``) when that cannot change a number: every policy
   decides for each user alone (:attr:`Policy.separable`) and operations share no budget or care
   team between users; otherwise a cell and seed run whole.
4. Tasks run on a :class:`~winback.benchmarks.sweep.backends.Backend`: processes on this machine,
   or Ray tasks on a local or existing Ray cluster. Results are assembled in task order, so the same
   seeds give the same numbers on either backend and any number of workers.

The report (``sweep.md``, ``sweep.csv``, ``sweep.json``) gives each policy's mean net value per user
with its 95% bootstrap CI in every cell, the best deployable policy per cell (references aside),
and heatmaps over the first two grid keys; ``sweep.json`` records the throughput.

One concern a module: :mod:`~winback.benchmarks.sweep.grid` (axes, config, cells),
:mod:`~winback.benchmarks.sweep.backends`, :mod:`~winback.benchmarks.sweep.tasks` (tuning, evaluation,
sharding), :mod:`~winback.benchmarks.sweep.report` (table and files),
:mod:`~winback.benchmarks.sweep.plots` (heatmaps); :func:`run_sweep` runs them in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from winback.benchmarks.suite import sample_users
from winback.benchmarks.sweep.backends import Backend
from winback.benchmarks.sweep.grid import SweepConfig, cell_document, cell_name
from winback.benchmarks.sweep.report import table_of, write_report
from winback.benchmarks.sweep.tasks import (
    cell_scenario,
    evaluate_cell,
    policy_categories,
    shard_ranges,
    tune_cell,
)
from winback.scenarios.files import to_document
from winback.scenarios.scenario import load_scenario


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
    sizes = [sample_users(s.eval_users(), config.bench.eval_users, seed=0).n_users for s in scenarios]
    tuned = backend.map(
        tune_cell, [(d, n, config.bench) for d, n in zip(documents, names, strict=True)], "tuning cells"
    )
    tuned_at = time.perf_counter()
    calls, keys, notes = [], [], []
    for c, (cell_doc, name, params) in enumerate(zip(documents, names, tuned, strict=True)):
        cell_shards, why = shard_ranges(scenarios[c], config, params, sizes[c])
        if why:
            notes.append(f"{name}: not sharded ({why}).")
        for seed in range(config.bench.seeds):
            for shard in cell_shards:
                calls.append((cell_doc, name, config.bench, params, seed, shard))
                keys.append((c, seed))
    results = backend.map(evaluate_cell, calls, "evaluating cells")
    finished = time.perf_counter()
    policies = list(results[0])
    shards_of: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}
    for key, result in zip(keys, results, strict=True):  # in task order: shards in user order
        shards_of.setdefault(key, []).append(result)
    net = {
        (c, policy): np.stack(
            [np.concatenate([r[policy] for r in shards_of[c, seed]]) for seed in range(config.bench.seeds)]
        )
        for c in range(len(cells))
        for policy in policies
    }
    categories = policy_categories(config.bench, policies)
    table = table_of(config, cells, policies, categories, net)
    user_periods = sum(n * s.horizon for n, s in zip(sizes, scenarios, strict=True))
    user_periods *= len(policies) * config.bench.seeds
    seconds = {"tuning": tuned_at - started, "evaluation": finished - tuned_at, "total": finished - started}
    tasks = {"tuning": len(documents), "evaluation": len(calls)}
    report = write_report(config, backend, table, user_periods, seconds, tasks, notes, out_dir)
    return SweepResult(table, user_periods, seconds, tasks, report)
