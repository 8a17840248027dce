"""The LSTM fitted by Ray Train on two local workers reaches the single-process fit's held-out loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from winback.cli import EXIT_BAD_INPUT, app
from winback.data.io import write_event_log
from winback.data.shards import ShardedPanel, ingest_log
from winback.data.synthetic import GroundTruthWorld, WorldConfig
from winback.decay_model.artifact import load_model
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel, RayBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")  # Ray's own, in Ray Data
UNTIL = 16
TOLERANCE = 0.03
"""Relative gap allowed between the held-out losses of the Ray and the local fit (the same users
held out; the steps differ in how a batch is split between workers)."""


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> ShardedPanel:
    directory = tmp_path_factory.mktemp("lstm-ray")
    world = GroundTruthWorld(WorldConfig(n_users=3000, seed=5, birth_weeks=20))
    write_event_log(world.write_log(world.start(), 20, 0.2, seed=6).log, directory / "log.parquet")
    return ingest_log(directory / "log.parquet", directory / "panel", shards=4)


@pytest.fixture(scope="module")
def local_ray() -> object:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_two_ray_workers_reach_the_local_held_out_loss(
    sharded: ShardedPanel, local_ray: object, tmp_path: Path
) -> None:
    config = LSTMConfig(max_epochs=3, calendar=False)
    local = LSTMDecayModel(config).fit_shards(sharded, until=UNTIL, seed=3)
    on_ray = LSTMDecayModel(config).fit_shards(sharded, until=UNTIL, seed=3, ray=RayBackend(workers=2))
    assert len(on_ray.history) == len(local.history)
    best_local = min(row["val_loss"] for row in local.history)
    best_ray = min(row["val_loss"] for row in on_ray.history)
    assert best_ray == pytest.approx(best_local, rel=TOLERANCE)
    assert on_ray.prior.r == local.prior.r and on_ray.contact_counts == local.contact_counts
    panel = sharded.load()
    forecast = on_ray.forecast(on_ray.initial_state(panel.select(panel.born_before(UNTIL)), until=UNTIL))
    assert np.isfinite(forecast.p_active).all()


def test_decay_fit_backend_ray(sharded: ShardedPanel, local_ray: object, tmp_path: Path) -> None:
    def run(*argv: str) -> int:
        with pytest.raises(SystemExit) as exit_info:
            app(["decay", "fit", "--out", str(tmp_path / "model"), "--max-epochs", "1", *argv])
        return exit_info.value.code or 0

    end = sharded.spec.period_start(UNTIL).isoformat()
    assert run("--data", str(sharded.path), "--backend", "ray", "--calibration-end", end) == 0
    assert load_model(tmp_path / "model").spec == sharded.spec
    assert run("--data", "cdnow-sample", "--backend", "ray") == EXIT_BAD_INPUT
    assert run("--data", str(sharded.path), "--backend", "ray", "--resume") == EXIT_BAD_INPUT
