"""Grid search of a baseline's parameters on training users and training seeds.

Reinforcement-learning agents are tuned, so the rules they are compared with must be too: each
family's grid is searched for the highest mean net value per user on training users (never the
evaluation users) under training seeds (never the evaluation seeds).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from winback.agents.base import Policy
from winback.agents.baselines import CARE, COUPON, PUSH, FixedCadence, InterestThresholdRule, RecencyRule
from winback.benchmarks.rollout import run_policy
from winback.progress import progress_bar
from winback.scenarios.scenario import Scenario
from winback.simulator.core import Simulator
from winback.simulator.state import SimState

Grid = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Family:
    """A parametrised baseline and the grids its parameters are searched over."""

    make: Callable[..., Policy]
    grid: Grid
    quick_grid: Grid
    """A coarse grid for ``--quick`` runs (tests, smoke checks)."""


FAMILIES: dict[str, Family] = {
    "fixed_cadence": Family(
        FixedCadence,
        {"kind": [PUSH, COUPON, CARE], "every": [1, 2, 3, 4, 6, 8, 13]},
        {"kind": [PUSH, CARE], "every": [2, 4]},
    ),
    "recency_rule": Family(
        RecencyRule,
        {
            "care_at": [0, 1, 2, 4],
            "push_at": [0, 4, 8, 13],
            "coupon_at": [0, 8, 13, 26],
            "repeat_every": [0, 4, 8],
        },
        {"care_at": [2], "push_at": [0, 4], "coupon_at": [0, 8], "repeat_every": [0, 4]},
    ),
    "interest_threshold": Family(
        InterestThresholdRule,
        {
            "threshold": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
            "gap": [1, 2, 4, 8],
            "top": [CARE, PUSH, COUPON],
        },
        {"threshold": [0.05, 0.2], "gap": [4], "top": [CARE, COUPON]},
    ),
}


@dataclass(frozen=True)
class Trial:
    params: dict[str, Any]
    net_value: float
    """Mean net value per user over the training users and seeds."""


@dataclass(frozen=True)
class TuningResult:
    family: str
    best: Trial
    trials: tuple[Trial, ...]

    def policy(self, make: Callable[..., Policy], name: str) -> Policy:
        return make(**self.best.params, name=name)


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a fixed order."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def tune(
    family: str,
    make: Callable[..., Policy],
    grid: Grid,
    scenario: Scenario,
    users: SimState,
    seeds: Sequence[int],
    *,
    simulators: dict[int, Simulator] | None = None,
    progress: bool = True,
    allocation: bool = False,
) -> TuningResult:
    """The grid point of ``make`` with the highest mean net value per user on ``users`` and ``seeds``
    (ties: the first in grid order), run with ``allocation`` as the benchmark will run it."""
    trials = []
    points = grid_points(grid)
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task(f"tuning {family}", total=len(points))
        for params in points:
            run = run_policy(
                make(**params), scenario, users, list(seeds), name=family, simulators=simulators,
                allocation=allocation,
            )  # fmt: skip
            trials.append(Trial(params, float(np.mean(run.metrics["net_value"]))))
            bar.advance(task)
    best = max(trials, key=lambda t: t.net_value)
    return TuningResult(family, best, tuple(trials))
