"""``LSTMDecayModel.fit_shards``: the LSTM fitted a user shard at a time forecasts like the in-memory fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from winback.data.io import write_event_log
from winback.data.panel import PeriodPanel
from winback.data.shards import ShardedPanel, ingest_log
from winback.data.synthetic import GroundTruthWorld, WorldConfig
from winback.decay_model.base import PeriodActivity
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel

UNTIL = 16
CONFIG = LSTMConfig(max_epochs=4, calendar=False)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> ShardedPanel:
    directory = tmp_path_factory.mktemp("lstm-shards")
    world = GroundTruthWorld(WorldConfig(n_users=1500, seed=2, birth_weeks=20))
    log = world.write_log(world.start(), 20, 0.2, seed=3).log
    write_event_log(log, directory / "log.parquet")
    return ingest_log(directory / "log.parquet", directory / "panel", shards=3)


def holdout_log_score(model: LSTMDecayModel, panel: PeriodPanel) -> float:
    """Mean log probability of each user's purchases in the periods after ``UNTIL``, given the contacts."""
    panel = panel.select(panel.born_before(UNTIL))
    state = model.initial_state(panel, until=UNTIL)
    total = 0.0
    for period in range(UNTIL, panel.spec.n_periods):
        contacts = panel.interventions[:, period].astype(np.float64)
        forecast = model.forecast(state, contacts)
        total += float(model.log_prob(forecast, panel.purchases[:, period]).mean())
        state = model.advance(state, model_activity(panel, period), contacts)
    return total / (panel.spec.n_periods - UNTIL)


def model_activity(panel: PeriodPanel, period: int) -> PeriodActivity:
    return PeriodActivity(counts=panel.counts[:, period].astype(np.int64), spend=panel.spend[:, period])


def test_a_fit_in_shards_forecasts_like_the_fit_in_memory(sharded: ShardedPanel) -> None:
    torch.manual_seed(0)
    panel = sharded.load()
    in_memory = LSTMDecayModel(CONFIG).fit(panel, until=UNTIL, seed=1)
    in_shards = LSTMDecayModel(CONFIG).fit_shards(sharded, until=UNTIL, seed=1)
    assert in_shards.contact_counts == in_memory.contact_counts
    for name in ("r", "alpha"):
        assert getattr(in_shards.prior, name) == pytest.approx(getattr(in_memory.prior, name), rel=1e-4)
    assert in_shards.prior.marks.log_spend_mean == pytest.approx(
        in_memory.prior.marks.log_spend_mean, rel=1e-9
    )
    assert in_shards.prior.marks.log_spend_sd == pytest.approx(in_memory.prior.marks.log_spend_sd, rel=1e-9)
    assert in_shards.history[-1]["val_loss"] < in_shards.history[0]["val_loss"]
    # Other held-out users, other batches: not the same weights, but at least the same forecasts' quality.
    reference = holdout_log_score(in_memory, panel)
    assert holdout_log_score(in_shards, panel) > reference - 0.03 * abs(reference)


def test_a_fit_in_shards_is_deterministic(sharded: ShardedPanel, tmp_path: Path) -> None:
    config = LSTMConfig(max_epochs=2, calendar=False)
    first = LSTMDecayModel(config).fit_shards(sharded, until=UNTIL, seed=4)
    second = LSTMDecayModel(config).fit_shards(sharded, until=UNTIL, seed=4)
    assert first.history == second.history
    for name, tensor in first.tensors().items():
        assert np.array_equal(tensor, second.tensors()[name]), name


def test_decay_fit_reads_a_panel_in_shards(
    sharded: ShardedPanel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from winback.cli import EXIT_BAD_INPUT, app
    from winback.decay_model.artifact import load_model

    def run(*argv: str) -> int:
        with pytest.raises(SystemExit) as exit_info:
            app(["decay", "fit", "--data", str(sharded.path), "--out", str(tmp_path / "model"), *argv])
        return exit_info.value.code or 0

    assert run("--max-epochs", "1", "--calibration-end", sharded.spec.period_start(UNTIL).isoformat()) == 0
    assert "3 shards" in capsys.readouterr().out  # rich wraps the line
    assert load_model(tmp_path / "model").spec == sharded.spec
    assert run("--model", "bgnbd") == EXIT_BAD_INPUT
    with pytest.raises(SystemExit) as evaluation:
        app(["decay", "eval", "--data", str(sharded.path), "--out", str(tmp_path / "eval")])
    assert evaluation.value.code == EXIT_BAD_INPUT
    assert "read only by `winback decay fit`" in capsys.readouterr().err
    assert run("--calibration-end", sharded.spec.period_start(1).isoformat()) == EXIT_BAD_INPUT
    assert "calibration" in capsys.readouterr().err
