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
4. Tasks run on a :class:`Backend`: processes on this machine, or Ray tasks on a local or existing
   Ray cluster. Results are assembled in task order, so the same seeds give the same numbers on
   either backend and any number of workers.

The report (``sweep.md``, ``sweep.csv``, ``sweep.json``) gives each policy's mean net value per user
with its 95% bootstrap CI in every cell, the best deployable policy per cell (references aside),
and heatmaps over the first two grid keys; ``sweep.json`` records the throughput.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import socket
import time
import tomllib
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from winback.agents.base import Policy
from winback.benchmarks.report import LEVEL
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.stats import mean_ci
from winback.benchmarks.suite import (
    REFERENCES,
    BenchConfig,
    SimulatorsBySeed,
    load_agents,
    make_policies,
    sample_users,
    tune_baselines,
)
from winback.errors import ConfigError
from winback.progress import progress_bar
from winback.scenarios.files import parse, to_document
from winback.scenarios.scenario import Scenario, load_scenario
from winback.simulator.threads import one_thread_per_process

Document = dict[str, Any]


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` option: a dotted key of the scenario document and the values it takes."""

    key: str
    """Full dotted key (``contacts.coupon.discount``; ``coupon.discount`` is accepted for it)."""
    values: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str, document: Document) -> GridAxis:
        """``key=v1,v2,...`` checked against ``document``'s keys; values are TOML scalars."""
        key, sep, values = text.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,... (e.g. coupon.discount=0.1,0.2)")
        if key.split(".")[0] in document.get("contacts", {}):
            key = f"contacts.{key}"
        parent = _parent(document, key)
        leaf = key.rsplit(".", 1)[-1]
        if parent is None or leaf not in parent or isinstance(parent[leaf], dict | list):
            raise ConfigError(
                f"--grid {text!r}: {key} is not a value of the scenario ({_keys_hint(document)})"
            )
        parsed = []
        for value in values.split(","):
            try:
                parsed.append(tomllib.loads(f"v = {value.strip()}")["v"])
            except tomllib.TOMLDecodeError as err:
                raise ConfigError(f"--grid {text!r}: {value.strip()!r} is not a TOML value ({err})") from err
        if len(set(map(repr, parsed))) < len(parsed):
            raise ConfigError(f"--grid {text!r}: repeated values")
        return cls(key, tuple(parsed))


@dataclass(frozen=True)
class SweepConfig:
    bench: BenchConfig
    """The scenario, policies, agents, seeds and sizes of every cell's benchmark (``random`` aside)."""
    axes: tuple[GridAxis, ...]
    shard_users: int = 0
    """Evaluation users per task when sharding is exact (0: one task per cell and seed)."""

    def __post_init__(self) -> None:
        if not self.axes:
            raise ConfigError("a sweep needs at least one --grid")
        keys = [axis.key for axis in self.axes]
        if len(set(keys)) < len(keys):
            raise ConfigError(f"--grid keys repeat: {keys}")
        if "random" in self.bench.policies:
            raise ConfigError("'random' copies another run's contact rates: it is not swept (leave it out)")
        if self.shard_users < 0:
            raise ConfigError(f"--shard-users = {self.shard_users} (allowed: >= 0)")

    @property
    def cells(self) -> list[tuple[Any, ...]]:
        """Every combination of the axes' values, the first axis slowest."""
        combos: list[tuple[Any, ...]] = [()]
        for axis in self.axes:
            combos = [(*combo, value) for combo in combos for value in axis.values]
        return combos


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


# ----------------------------------------------------------------------------------------- backends
class Backend(ABC):
    """Runs a list of calls and returns their results in the list's order."""

    name = "local"
    workers: int | None = None
    """Parallel workers (None: whatever the cluster has)."""

    @abstractmethod
    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str) -> list[Any]:
        """``[function(*args) for args in calls]``, computed in parallel, with a progress bar."""

    def close(self) -> None:
        return None


class LocalBackend(Backend):
    """Worker processes on this machine (spawned, one thread each); in-process with one worker."""

    def __init__(self, workers: int, *, progress: bool = True) -> None:
        if workers < 1:
            raise ConfigError(f"--workers = {workers} (allowed: >= 1)")
        self.workers, self.progress = workers, progress
        self._pool = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=one_thread_per_process
            )

    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        with progress_bar(enabled=self.progress) as bar:
            task = bar.add_task(label, total=len(calls))
            if self._pool is None:
                one_thread_per_process()
                for i, args in enumerate(calls):
                    results[i] = function(*args)
                    bar.advance(task)
                return results
            futures = {self._pool.submit(function, *args): i for i, args in enumerate(calls)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.advance(task)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class RayBackend(Backend):
    """Ray tasks of one CPU each: on the cluster at ``address``, or on a local Ray started (and
    stopped) here with ``workers`` CPUs."""

    name = "ray"

    def __init__(self, workers: int, *, address: str | None = None, progress: bool = True) -> None:
        import ray

        if workers < 1:
            raise ConfigError(f"--workers = {workers} (allowed: >= 1)")
        self.ray, self.progress, self._started = ray, progress, False
        self.workers = workers if address is None else None
        if address is not None:
            _check_reachable(address)
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            try:
                if address is None:
                    ray.init(num_cpus=workers, **options)
                else:
                    ray.init(address=address, **options)
            except ConnectionError as err:
                raise ConfigError(f"--ray-address {address!r}: cannot join the Ray cluster ({err})") from err
            self._started = True

    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str) -> list[Any]:
        remote = self.ray.remote(num_cpus=1)(_in_one_thread)
        refs = [remote.remote(function, *args) for args in calls]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        with progress_bar(enabled=self.progress) as bar:
            task = bar.add_task(label, total=len(refs))
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                for ref in done:
                    results[index[ref]] = self.ray.get(ref)
                    bar.advance(task)
        return results

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


CONNECT_SECONDS = 10.0
"""How long ``--ray-address`` may take to accept a connection (Ray itself retries for minutes)."""


def _check_reachable(address: str) -> None:
    """A ConfigError unless the head at ``address`` (``[ray://]host:port``; ``auto`` is left to Ray)
    accepts a TCP connection within :data:`CONNECT_SECONDS`."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} (expected HOST:PORT, ray://HOST:PORT or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise ConfigError(f"--ray-address {address!r}: no Ray head answers there ({err})") from err


def make_backend(
    backend: Literal["local", "ray"], workers: int, *, address: str | None = None, progress: bool = True
) -> Backend:
    if backend == "local":
        if address is not None:
            raise ConfigError("--ray-address needs --backend ray")
        return LocalBackend(workers, progress=progress)
    if backend == "ray":
        return RayBackend(workers, address=address, progress=progress)
    raise ConfigError(f"--backend {backend!r} (allowed: 'local', 'ray')")


def default_workers() -> int:
    return os.cpu_count() or 1


def _in_one_thread(function: Callable[..., Any], *args: Any) -> Any:
    one_thread_per_process()
    return function(*args)


# -------------------------------------------------------------------------------------------- tasks
def cell_document(base: Document, axes: Sequence[GridAxis], values: Sequence[Any]) -> Document:
    """``base`` with each axis' key set to its value (a deep copy)."""
    document = copy.deepcopy(base)
    for axis, value in zip(axes, values, strict=True):
        parent = _parent(document, axis.key)
        assert parent is not None  # checked by GridAxis.parse
        parent[axis.key.rsplit(".", 1)[-1]] = value
    return document


def cell_scenario(document: Document, name: str) -> Scenario:
    """The scenario of a cell's document, checked key by key."""
    try:
        return Scenario(**parse(document, folder=Path("."), name=name))
    except ConfigError as err:
        raise ConfigError(f"sweep cell {name}: {err}") from err


def tune_cell(document: Document, name: str, bench: BenchConfig) -> dict[str, dict[str, Any]]:
    """The tuned parameters of each parametrised baseline in a cell."""
    scenario = cell_scenario(document, name)
    tuning = tune_baselines(bench, scenario, SimulatorsBySeed(scenario), progress=False)
    return {family: result.best.params for family, result in tuning.items()}


def evaluate_cell(
    document: Document,
    name: str,
    bench: BenchConfig,
    params: dict[str, dict[str, Any]],
    seed: int,
    shard: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Each policy's (users,) net value per user on the shard ``[start, stop)`` of a cell's
    evaluation users under ``seed``."""
    scenario = cell_scenario(document, name)
    users = sample_users(scenario.eval_users(), bench.eval_users, seed=0).take(np.arange(*shard))
    simulators = SimulatorsBySeed(scenario)
    runs = {}
    for policy_name, policy in _policies(bench, params).items():
        run = run_policy(policy, scenario, users, [seed], name=policy_name, simulators=simulators)
        runs[policy_name] = run.metrics["net_value"][0]
    return runs


def _policies(bench: BenchConfig, params: dict[str, dict[str, Any]]) -> dict[str, Policy]:
    baselines = make_policies([p for p in bench.policies if p not in REFERENCES], params, bench)
    agents = {agent.name: agent for agent in _agents(bench.agents)}
    references = make_policies([p for p in bench.policies if p in REFERENCES], params, bench)
    return baselines | agents | references


@cache
def _agents(run_dirs: tuple[Path, ...]) -> tuple[Policy, ...]:
    """The agents of a sweep, loaded once per process (every run resets them)."""
    return tuple(load_agents(run_dirs))


# -------------------------------------------------------------------------------------------- sweep
def run_sweep(config: SweepConfig, backend: Backend, out_dir: Path) -> SweepResult:
    """Tune and evaluate every cell on ``backend`` and write the report into ``out_dir``."""
    started = time.perf_counter()
    base = load_scenario(config.bench.scenario)
    document = to_document(base)
    cells = config.cells
    names = [_cell_name(base.name, config.axes, values) for values in cells]
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
        shards, why = _shards(scenarios[c], config, params, sizes[c])
        if why:
            notes.append(f"{name}: not sharded ({why}).")
        for seed in range(config.bench.seeds):
            for shard in shards:
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
    categories = _categories(config.bench, policies)
    table = _table(config, cells, policies, categories, net)
    user_periods = sum(n * s.horizon for n, s in zip(sizes, scenarios, strict=True))
    user_periods *= len(policies) * config.bench.seeds
    seconds = {"tuning": tuned_at - started, "evaluation": finished - tuned_at, "total": finished - started}
    tasks = {"tuning": len(documents), "evaluation": len(calls)}
    report = _write(config, backend, table, user_periods, seconds, tasks, notes, out_dir)
    return SweepResult(table, user_periods, seconds, tasks, report)


def _shards(
    scenario: Scenario, config: SweepConfig, params: dict[str, dict[str, Any]], n_users: int
) -> tuple[list[tuple[int, int]], str]:
    """The user ranges of a cell's tasks, and why the cell is not sharded when it is not."""
    whole = [(0, n_users)]
    if not config.shard_users or config.shard_users >= n_users:
        return whole, ""
    coupled = [name for name, policy in _policies(config.bench, params).items() if not policy.separable]
    if coupled:
        return whole, f"{', '.join(coupled)} decide across users"
    operations = scenario.operations
    if operations.coupon_budget_per_period or operations.care_capacity:
        return whole, "users share the coupon budget or the care team"
    return [
        (start, min(start + config.shard_users, n_users)) for start in range(0, n_users, config.shard_users)
    ], ""


def _categories(bench: BenchConfig, policies: Sequence[str]) -> dict[str, str]:
    agents = {agent.name for agent in _agents(bench.agents)}
    return {p: "reference" if p in REFERENCES else "agent" if p in agents else "baseline" for p in policies}


def _table(
    config: SweepConfig,
    cells: Sequence[tuple[Any, ...]],
    policies: Sequence[str],
    categories: dict[str, str],
    net: dict[tuple[int, str], np.ndarray],
) -> pd.DataFrame:
    rows = []
    for c, values in enumerate(cells):
        cell_rows = []
        for policy in policies:
            rng = np.random.default_rng(zlib.crc32(policy.encode()))  # a policy's CI: fixed by its data
            estimate = mean_ci(net[c, policy], rng=rng, level=LEVEL)
            cell_rows.append(
                {
                    **{axis.key: value for axis, value in zip(config.axes, values, strict=True)},
                    "policy": policy,
                    "category": categories[policy],
                    "net_value": estimate.mean,
                    "net_value_low": estimate.low,
                    "net_value_high": estimate.high,
                }
            )
        deployable = [row for row in cell_rows if row["category"] != "reference"] or cell_rows
        best = max(deployable, key=lambda row: row["net_value"])["policy"]
        rows += [row | {"best": best} for row in cell_rows]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- report
def _write(
    config: SweepConfig,
    backend: Backend,
    table: pd.DataFrame,
    user_periods: int,
    seconds: dict[str, float],
    tasks: dict[str, int],
    notes: Sequence[str],
    out_dir: Path,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "sweep.csv", index=False)
    workers = backend.workers
    summary = {
        "scenario": config.bench.scenario,
        "grid": {axis.key: list(axis.values) for axis in config.axes},
        "bench": {**dataclasses.asdict(config.bench), "agents": [str(a) for a in config.bench.agents]},
        "shard_users": config.shard_users,
        "backend": backend.name,
        "workers": workers,
        "tasks": tasks,
        "seconds": seconds,
        "user_periods": user_periods,
        "user_periods_per_second": user_periods / seconds["evaluation"],
        "notes": list(notes),
    }
    (out_dir / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    keys = [axis.key for axis in config.axes]
    for figure, name in (
        (_plot_net_value(table, keys), "net_value.png"),
        (_plot_best(table, keys), "best_policy.png"),
    ):
        figure.savefig(out_dir / name, dpi=110)
    pivot = table.pivot_table(index=keys, columns="policy", values="net_value", sort=False)
    lows = table.pivot_table(index=keys, columns="policy", values="net_value_low", sort=False)
    highs = table.pivot_table(index=keys, columns="policy", values="net_value_high", sort=False)
    best = table.groupby(keys, sort=False)["best"].first()
    policies = list(dict.fromkeys(table["policy"]))
    lines = [
        f"# Sweep of scenario `{config.bench.scenario}`",
        "",
        f"Mean net value per user [{LEVEL:.0%} CI over users] in each cell; **best**: the best policy "
        "that could be deployed (references aside).",
        "",
        "| "
        + " | ".join(f"`{k}`" for k in keys)
        + " | "
        + " | ".join(f"`{p}`" for p in policies)
        + " | best |",
        "|" + "---:|" * len(keys) + "---:|" * len(policies) + "---|",
    ]
    for index in pivot.index:
        values = index if isinstance(index, tuple) else (index,)
        cells = [
            f"{pivot.loc[index, p]:.2f} [{lows.loc[index, p]:.2f}, {highs.loc[index, p]:.2f}]"
            for p in policies
        ]
        lines.append(
            "| " + " | ".join(map(str, values)) + " | " + " | ".join(cells) + f" | `{best[index]}` |"
        )
    lines += [
        "",
        "![net value](net_value.png)",
        "",
        "![best policy](best_policy.png)",
        "",
        f"{tasks['tuning']} tuning and {tasks['evaluation']} evaluation tasks on the {backend.name} backend "
        f"({'the cluster' if workers is None else workers} worker{'' if workers == 1 else 's'}): "
        f"{seconds['total']:.1f} s in all, evaluation "
        f"{user_periods:,} user-periods in {seconds['evaluation']:.1f} s "
        f"({summary['user_periods_per_second']:,.0f} per second).",
        *(f"- {note}" for note in notes),
    ]
    path = out_dir / "sweep.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _grid_shape(table: pd.DataFrame, keys: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """Values of the heatmaps' rows (the first key) and columns (the second, or a single column)."""
    rows = list(dict.fromkeys(table[keys[0]]))
    columns = list(dict.fromkeys(table[keys[1]])) if len(keys) > 1 else [None]
    return rows, columns


def _heat_cells(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The rows of the heatmaps: with more than two keys, the remaining keys at their first values."""
    for key in keys[2:]:
        table = table[table[key] == table[key].iloc[0]]
    return table


def _plot_net_value(table: pd.DataFrame, keys: Sequence[str]) -> Figure:
    table = _heat_cells(table, keys)
    rows, columns = _grid_shape(table, keys)
    policies = list(dict.fromkeys(table["policy"]))
    figure = Figure(figsize=(3.6 * len(policies) + 0.8, 0.6 * len(rows) + 2.2), layout="constrained")
    axes = figure.subplots(1, len(policies), squeeze=False)[0]
    low, high = table["net_value"].min(), table["net_value"].max()
    for axis, policy in zip(axes, policies, strict=True):
        grid = _grid(table[table["policy"] == policy], keys, rows, columns, "net_value")
        image = axis.imshow(grid, cmap="viridis", vmin=low, vmax=high, aspect="auto", origin="lower")
        for (i, j), value in np.ndenumerate(grid):
            dark = value < (low + high) / 2  # viridis is dark below its middle
            axis.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8, color="w" if dark else "k")
        _label(axis, keys, rows, columns, policy)
    figure.colorbar(image, ax=axes.tolist(), label="net value per user")
    figure.suptitle("Net value per user by cell" + _fixed_note(table, keys))
    return figure


def _plot_best(table: pd.DataFrame, keys: Sequence[str]) -> Figure:
    table = _heat_cells(table, keys)
    rows, columns = _grid_shape(table, keys)
    policies = list(dict.fromkeys(table["policy"]))
    colormap = ListedColormap(colormaps["tab10" if len(policies) <= 10 else "tab20"].colors[: len(policies)])
    first = table.drop_duplicates(keys)
    codes = first.assign(code=first["best"].map(policies.index))
    grid = _grid(codes, keys, rows, columns, "code")
    figure = Figure(figsize=(1.2 * len(columns) + 3.5, 0.6 * len(rows) + 2.2), layout="constrained")
    axis = figure.add_subplot()
    axis.imshow(grid, cmap=colormap, vmin=-0.5, vmax=len(policies) - 0.5, aspect="auto", origin="lower")
    for (i, j), code in np.ndenumerate(grid):
        axis.text(j, i, policies[int(code)], ha="center", va="center", fontsize=7)
    _label(axis, keys, rows, columns, "Best deployable policy per cell" + _fixed_note(table, keys))
    return figure


def _grid(
    table: pd.DataFrame, keys: Sequence[str], rows: list[Any], columns: list[Any], value: str
) -> np.ndarray:
    grid = np.full((len(rows), len(columns)), np.nan)
    for record in table.to_dict("records"):
        column = columns.index(record[keys[1]]) if len(keys) > 1 else 0
        grid[rows.index(record[keys[0]]), column] = record[value]
    return grid


def _label(axis: Any, keys: Sequence[str], rows: list[Any], columns: list[Any], title: str) -> None:
    axis.set_yticks(range(len(rows)), [str(r) for r in rows])
    axis.set_ylabel(keys[0])
    if len(keys) > 1:
        axis.set_xticks(range(len(columns)), [str(c) for c in columns])
        axis.set_xlabel(keys[1])
    else:
        axis.set_xticks([])
    axis.set_title(title, fontsize=9)


def _fixed_note(table: pd.DataFrame, keys: Sequence[str]) -> str:
    fixed = [f"{key} = {table[key].iloc[0]}" for key in keys[2:]]
    return f" ({', '.join(fixed)})" if fixed else ""


def _cell_name(scenario: str, axes: Sequence[GridAxis], values: Sequence[Any]) -> str:
    return f"{scenario}[" + ", ".join(f"{a.key}={v}" for a, v in zip(axes, values, strict=True)) + "]"


def _parent(document: Document, key: str) -> dict[str, Any] | None:
    """The table holding the last part of dotted ``key`` (None when a part is missing)."""
    node: Any = document
    for part in key.split(".")[:-1]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _keys_hint(document: Document) -> str:
    tables = [key for key, value in document.items() if isinstance(value, dict)]
    return "keys: a top-level key or TABLE.KEY of " + ", ".join(tables)
