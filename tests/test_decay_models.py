"""The decay-model interface contract, the same tests for every model (tiny data, few epochs)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import PeriodPanel
from winback.decay_model.artifact import load_model, save_model
from winback.decay_model.base import DecayModel, PeriodActivity
from winback.decay_model.evaluate import simulate_forward
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.decay_model.registry import MODELS
from winback.errors import ArtifactError
from winback.streams import RandomStreams, user_keys

CALIBRATION_END = 39
TINY_LSTM = LSTMConfig(hidden_size=8, head_size=8, max_epochs=2, batch_size=128)
ALL_MODELS = sorted(MODELS)


@cache
def small_panel() -> PeriodPanel:
    return load_cdnow_panel("cdnow-sample").select(np.arange(300))


def new_model(name: str) -> DecayModel:
    return LSTMDecayModel(TINY_LSTM) if name == "lstm" else MODELS[name]()


@cache
def fitted(name: str) -> DecayModel:
    torch.set_num_threads(1)
    return new_model(name).fit(small_panel(), until=CALIBRATION_END, seed=0)


def uniforms_for(model: DecayModel, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, model.uniforms_per_user()))


@pytest.fixture(params=ALL_MODELS)
def model(request: pytest.FixtureRequest) -> DecayModel:
    return fitted(request.param)


def test_forecast_is_a_distribution_of_next_period(model: DecayModel) -> None:
    state = model.initial_state(small_panel(), until=CALIBRATION_END)
    forecast = model.forecast(state)
    n = small_panel().n_users
    assert (
        forecast.p_active.shape == forecast.expected_purchases.shape == forecast.expected_spend.shape == (n,)
    )
    assert np.all((forecast.p_active > 0) & (forecast.p_active < 1))
    assert np.all(forecast.expected_purchases >= forecast.p_active - 1e-9)
    assert np.all(forecast.expected_spend >= 0)
    np.testing.assert_allclose(model.interest(state), forecast.p_active)


def test_log_prob_sums_to_one_over_counts(model: DecayModel) -> None:
    forecast = model.forecast(model.initial_state(small_panel(), until=CALIBRATION_END))
    n = small_panel().n_users
    total = sum(np.exp(model.log_prob(forecast, np.full(n, k))) for k in range(80))
    np.testing.assert_allclose(total, 1.0, atol=1e-4)


def test_samples_follow_the_forecast(model: DecayModel) -> None:
    state = model.initial_state(small_panel(), until=CALIBRATION_END).repeat(400)
    forecast = model.forecast(state)
    activity = model.sample(forecast, uniforms_for(model, len(state.period), seed=1))
    assert activity.counts.shape == (len(state.period), len(small_panel().spec.event_types))
    assert activity.counts.dtype.kind == "i" and activity.counts.min() >= 0
    assert np.all(activity.spend >= 0) and np.all(activity.spend[activity.purchases == 0] == 0)
    n = len(state.period)
    active_share, expected_share = (activity.purchases > 0).mean(), forecast.p_active.mean()
    assert abs(active_share - expected_share) < 5 * np.sqrt(expected_share / n)
    mean, expected = activity.purchases.mean(), forecast.expected_purchases.mean()
    assert abs(mean - expected) < 6 * np.sqrt(max(activity.purchases.var(), 1e-9) / n)


def test_zero_lift_leaves_the_forecast_unchanged(model: DecayModel) -> None:
    forecast = model.forecast(model.initial_state(small_panel(), until=CALIBRATION_END))
    lifted = model.lift(forecast, np.zeros(len(forecast.p_active)))
    np.testing.assert_array_equal(lifted.p_active, forecast.p_active)
    np.testing.assert_allclose(lifted.expected_purchases, forecast.expected_purchases)


def test_lift_raises_the_odds_and_only_adds_buyers(model: DecayModel) -> None:
    state = model.initial_state(small_panel(), until=CALIBRATION_END).repeat(200)
    forecast = model.forecast(state)
    n = len(forecast.p_active)
    shift = np.random.default_rng(0).uniform(0.0, 2.0, n)
    lifted = model.lift(forecast, shift)
    odds = lambda p: p / (1 - p)  # noqa: E731
    np.testing.assert_allclose(odds(lifted.p_active), odds(forecast.p_active) * np.exp(shift), rtol=1e-6)
    total = sum(np.exp(model.log_prob(lifted, np.full(n, k))) for k in range(80))
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    uniforms = uniforms_for(model, n, seed=2)
    before, after = model.sample(forecast, uniforms), model.sample(lifted, uniforms)
    assert np.all(after.purchases[before.purchases > 0] > 0)
    share, expected = (after.purchases > 0).mean(), lifted.p_active.mean()
    assert abs(share - expected) < 5 * np.sqrt(expected / n)


def test_state_rows_are_independent(model: DecayModel) -> None:
    state = model.initial_state(small_panel(), until=CALIBRATION_END)
    rows = np.array([5, 0, 17, 17])
    np.testing.assert_allclose(
        model.forecast(state.take(rows)).p_active, model.forecast(state).p_active[rows]
    )
    repeated = model.forecast(state.repeat(3)).p_active.reshape(-1, 3)
    np.testing.assert_allclose(repeated, np.repeat(model.forecast(state).p_active[:, None], 3, axis=1))


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if n != "bgnbd"])
def test_initial_state_equals_advancing_through_history(name: str) -> None:
    """Summarising a history at once or period by period gives the same state (BG/NBD is excluded:
    its initial state keeps exact purchase days, ``advance`` puts them mid-period)."""
    model, panel = fitted(name), small_panel()
    state = model.initial_state(panel, until=panel.first_period + 1)
    while (state.period < CALIBRATION_END).any():
        period = np.minimum(state.period, CALIBRATION_END - 1)
        state = _keep_finished(state, model.advance(state, PeriodActivity.from_panel(panel, period)))
    direct = model.initial_state(panel, until=CALIBRATION_END)
    np.testing.assert_allclose(model.forecast(state).p_active, model.forecast(direct).p_active, rtol=1e-5)


def _keep_finished(before, after):
    """Rows already at the cut-off keep their state; the others take the advanced one."""
    done = before.period >= CALIBRATION_END
    merged = {
        name: np.where(done.reshape(-1, *([1] * (value.ndim - 1))), getattr(before, name), value)
        for name, value in after._arrays().items()
    }
    return dataclasses.replace(after, **merged)


def test_advance_moves_one_period(model: DecayModel) -> None:
    state = model.initial_state(small_panel(), until=CALIBRATION_END)
    activity = model.sample(model.forecast(state), uniforms_for(model, len(state.period), seed=0))
    assert np.all(model.advance(state, activity).period == state.period + 1)


def test_unborn_users_are_refused(model: DecayModel) -> None:
    with pytest.raises(ValueError, match="not born"):
        model.initial_state(small_panel(), until=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fit_and_rollout_are_deterministic_for_a_seed(name: str) -> None:
    first = new_model(name).fit(small_panel(), until=CALIBRATION_END, seed=3)
    second = new_model(name).fit(small_panel(), until=CALIBRATION_END, seed=3)
    assert json.dumps(first.config(), sort_keys=True) == json.dumps(second.config(), sort_keys=True)
    for key, value in first.tensors().items():
        np.testing.assert_array_equal(value, second.tensors()[key])
    rollouts = [
        simulate_forward(
            m,
            m.initial_state(small_panel(), until=CALIBRATION_END),
            end=50,
            draws=3,
            streams=RandomStreams(7),
            keys=user_keys(small_panel().user_ids),
        )
        for m in (first, second)
    ]
    np.testing.assert_array_equal(rollouts[0].totals, rollouts[1].totals)


def test_artifact_round_trip_gives_identical_predictions(model: DecayModel, tmp_path) -> None:
    save_model(model, tmp_path / "artifact")
    loaded = load_model(tmp_path / "artifact")
    assert type(loaded) is type(model) and loaded.spec == model.spec
    original, reloaded = (
        m.forecast(m.initial_state(small_panel(), until=CALIBRATION_END)) for m in (model, loaded)
    )
    np.testing.assert_array_equal(reloaded.p_active, original.p_active)
    np.testing.assert_array_equal(reloaded.expected_spend, original.expected_spend)


def test_tampered_weights_are_refused(tmp_path) -> None:
    directory = save_model(fitted("lstm"), tmp_path / "artifact")
    weights = directory / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 does not match"):
        load_model(directory)


def _saved_with_edited_json(model_name: str, directory: Path, edit: Callable[[dict], object]) -> Path:
    """Save a fitted model, then rewrite its model.json through ``edit(body)``."""
    saved = save_model(fitted(model_name), directory)
    config_file = saved / "model.json"
    body = json.loads(config_file.read_text())
    edit(body)
    config_file.write_text(json.dumps(body))
    return saved


def test_edited_config_is_refused(tmp_path) -> None:
    directory = _saved_with_edited_json(
        "recurrence", tmp_path / "a", lambda body: body["config"].update(a=0.5)
    )
    with pytest.raises(ArtifactError, match="content hash mismatch"):
        load_model(directory)


def test_other_format_version_is_refused_with_the_versions(tmp_path) -> None:
    directory = _saved_with_edited_json(
        "exponential", tmp_path / "a", lambda body: body.update(format_version=99)
    )
    with pytest.raises(ArtifactError, match="format version 99 is not supported"):
        load_model(directory)


def test_missing_artifact_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="not a winback decay-model artifact"):
        load_model(tmp_path)


def test_lstm_resumes_from_checkpoint(tmp_path) -> None:
    config = LSTMConfig(hidden_size=8, head_size=8, max_epochs=3, batch_size=128, patience=99)
    straight = LSTMDecayModel(config).fit(small_panel(), until=CALIBRATION_END, seed=1)
    partial = LSTMConfig(**{**config.__dict__, "max_epochs": 2})
    LSTMDecayModel(partial).fit(small_panel(), until=CALIBRATION_END, seed=1, checkpoint_dir=tmp_path)
    resumed = LSTMDecayModel(config).fit(
        small_panel(), until=CALIBRATION_END, seed=1, checkpoint_dir=tmp_path
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for key, value in straight.tensors().items():
        np.testing.assert_allclose(resumed.tensors()[key], value, rtol=1e-6, atol=1e-7)
