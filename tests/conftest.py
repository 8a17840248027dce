"""Fixtures shared by the test modules: a tiny training run and its export, made once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import settings
from threadpoolctl import threadpool_limits
from tiny import TRAINING

from winback.agents.training import TrainConfig, train
from winback.cli import app
from winback.export.runtime import Exploration, ExportedArtifact
from winback.export.runtime.batch import RECEIVED, USER, TableSpec, decide_table
from winback.scenarios.scenario import Scenario, load_scenario

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
"""Fuzz tests draw the same examples on every ``make test`` (CI must not fail on luck); ``make fuzz``
draws new ones on every run."""


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, one OpenMP thread for scikit-learn's gradient-boosted trees: the suite's
    batches are small, and beside a busy second core more threads spin (the trees' default two fitted
    FQE's models 30 to 80 times slower). threadpoolctl limits only the libraries already loaded:
    scikit-learn's is imported first."""
    import sklearn.ensemble  # noqa: F401

    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    """The built-in ``default`` scenario (modules may override it)."""
    return load_scenario("default")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MaskablePPO run on the default scenario with the :data:`tiny.TRAINING` budget."""
    out = tmp_path_factory.mktemp("mppo")
    train(TrainConfig(algo="maskable_ppo", **TRAINING), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``winback export`` of :func:`tiny_run`; the card's figures: 100 evaluation users x seeds 0, 1."""
    return exported(tiny_run, tmp_path_factory.mktemp("export") / "artifact")


def exported(run: Path, out: Path) -> Path:
    """``winback export`` of ``run`` to ``out``, its card's figures on 100 evaluation users x 2 seeds."""
    with pytest.raises(SystemExit) as exit_info:
        app(["export", str(run), "--out", str(out), "--seeds", "2", "--eval-users", "100"])
    assert exit_info.value.code == 0
    return out


@pytest.fixture(scope="session")
def tiny_team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scenario file: the default world for 8 periods with a care team of one writing four messages
    a period."""
    path = tmp_path_factory.mktemp("team") / "tiny_team.toml"
    path.write_text(
        'description = "One agent, four messages a period."\nhorizon = 8\n'
        "[operations]\ncare_capacity = 1\ncare_service_time = 0.25\n"
    )
    return path


@pytest.fixture(scope="session")
def tiny_priced_run(tiny_team: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MaskablePPO run on :func:`tiny_team` (trained under the price of a care message)."""
    out = tmp_path_factory.mktemp("priced")
    train(TrainConfig(algo="maskable_ppo", scenario=str(tiny_team), **TRAINING), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_priced_export(tiny_priced_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``winback export`` of :func:`tiny_priced_run` (100 evaluation users x seeds 0, 1)."""
    return exported(tiny_priced_run, tmp_path_factory.mktemp("priced_export") / "artifact")


def consecutive_decide_logs(
    export: Path, users: pa.Table, root: Path, periods: int, exploration: Exploration
) -> list[Path]:
    """``periods`` consecutive periods' winback decide logs of ``export`` under ``root`` (``log_0``,
    ...): the first decides the users table ``users``, each next one the previous one's states/
    (:func:`next_users_table`); period ``t``'s draws seeded by ``t``."""
    spec = TableSpec.of(ExportedArtifact.load(export))
    pq.write_table(users, root / "users_0.parquet")
    logs = []
    for period in range(periods):
        log = root / f"log_{period}"
        decide_table(export, root / f"users_{period}.parquet", log, exploration=exploration, seed=period)
        pq.write_table(next_users_table(log, spec), root / f"users_{period + 1}.parquet")
        logs.append(log)
    return logs


def next_users_table(log: Path, spec: TableSpec) -> pa.Table:
    """The users table of the period after ``log``'s: its states/, no events, the contact decided
    received; the rows in reverse order (the next log's users come in another order)."""
    states = pq.read_table(log / "states")
    decided = pq.read_table(log / "decisions", columns=[USER, "action"])
    assert states.column(USER).equals(decided.column(USER))
    activity = {f"count_{e}": np.zeros(states.num_rows, dtype=np.int64) for e in spec.event_types}
    activity |= {"spend": np.zeros(states.num_rows), RECEIVED: decided.column("action")}
    for name, values in activity.items():
        states = states.append_column(name, pa.array(values))
    return states.take(np.arange(states.num_rows)[::-1])
