"""The tasks of a sweep, each a plain function of picklable arguments that any backend can run: tune
a cell's baselines, evaluate a cell's policies on one seed and range of users (the benchmark's own
tasks, :func:`~winback.benchmarks.suite.evaluation_tasks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winback.benchmarks.rollout import PolicyRun
from winback.benchmarks.suite import (
    BenchConfig,
    PolicySet,
    SimulatorsBySeed,
    TuningSetting,
    evaluate_task,
    tune_baselines,
)
from winback.benchmarks.sweep.grid import Document
from winback.errors import ConfigError
from winback.scenarios.files import parse
from winback.scenarios.scenario import Scenario


def cell_scenario(document: Document, name: str) -> Scenario:
    """The scenario of a cell's document, checked key by key."""
    try:
        return Scenario(**parse(document, folder=Path("."), name=name))
    except ConfigError as err:
        raise ConfigError(f"sweep cell {name}: {err}") from err


def tune_cell(document: Document, name: str, bench: BenchConfig) -> dict[str, dict[str, Any]]:
    """The tuned parameters of each parametrised baseline in a cell."""
    scenario = cell_scenario(document, name)
    tuning = tune_baselines(
        bench, TuningSetting.of(bench, scenario), SimulatorsBySeed(scenario), progress=False
    )
    return {family: result.best.params for family, result in tuning.items()}


def evaluate_cell(
    document: Document,
    name: str,
    bench: BenchConfig,
    params: dict[str, dict[str, Any]],
    names: tuple[str, ...],
    users: tuple[int, int],
    seed: int,
) -> list[PolicyRun]:
    """The policies ``names`` on the range ``users`` of a cell's evaluation users under ``seed`` (a
    task of :func:`~winback.benchmarks.suite.evaluation_tasks`)."""
    return evaluate_task(cell_scenario(document, name), PolicySet(bench, params), names, users, [seed])
