"""Holdout evaluation: metric helpers with known answers, and a full small evaluation with its report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import build_panel
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.evaluate import (
    auc,
    estimate_contact_effects,
    evaluate_models,
    simulate_forward,
    weekly_mape,
)
from winback.decay_model.heuristic import ExponentialDecayModel, RecurrenceDecayModel
from winback.decay_model.report import write_report
from winback.streams import RandomStreams, user_keys

CALIBRATION_END = 39


def test_auc_known_answers() -> None:
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5
    # one of four positive-negative pairs is misordered
    assert auc(np.array([0.1, 0.6, 0.5, 0.9]), np.array([0, 0, 1, 1])) == 0.75


def test_rollout_of_a_certain_buyer_counts_every_period() -> None:
    """A recurrence model with a = 1, b = 0 and interest near 1 buys every period (marks: one purchase)."""
    panel = load_cdnow_panel("cdnow-sample").select(np.arange(50))
    model = RecurrenceDecayModel().fit(panel, until=CALIBRATION_END)
    model.a, model.b = 1.0, 0.0
    state = model.initial_state(panel, until=CALIBRATION_END)
    state.interest[:] = 1.0
    model.marks = type(model.marks)(extra_purchase_q=0.0, log_spend_mean=0.0, log_spend_sd=1e-6)
    keys = user_keys(panel.user_ids)
    rollout = simulate_forward(model, state, end=45, draws=2, streams=RandomStreams(0), keys=keys)
    assert np.all(rollout.totals == 6)
    np.testing.assert_allclose(rollout.per_period[CALIBRATION_END:], 50.0)
    assert np.all(rollout.per_period[:CALIBRATION_END] == 0)


@pytest.fixture(scope="module")
def evaluation():
    panel = load_cdnow_panel("cdnow-sample").select(np.arange(400))
    models = {
        "exponential": ExponentialDecayModel().fit(panel, until=CALIBRATION_END),
        "recurrence": RecurrenceDecayModel().fit(panel, until=CALIBRATION_END),
    }
    return panel, evaluate_models(models, panel, calibration_end=CALIBRATION_END, draws=4, tracking_draws=2)


def test_metrics_are_consistent(evaluation) -> None:
    panel, result = evaluation
    actual = float(panel.purchases[:, CALIBRATION_END:].sum())
    for metrics in result.metrics.values():
        assert metrics["actual_holdout_total"] == actual
        bias = 100 * (metrics["holdout_total"] - actual) / actual
        assert metrics["holdout_bias_pct"] == pytest.approx(bias)
        assert metrics["rmse"] >= metrics["mae"] > 0
        assert sum(metrics["count_shares"]["model"]) == pytest.approx(1.0)
        assert sum(metrics["count_shares"]["actual"]) == pytest.approx(1.0)
        assert metrics["log_score"] < 0 and 0 <= metrics["auc_any"] <= 1
        assert len(metrics["by_x"]["model"]) == len(metrics["by_x"]["actual"]) == 8


def test_evaluation_is_deterministic(evaluation) -> None:
    panel, result = evaluation
    models = {"recurrence": RecurrenceDecayModel().fit(panel, until=CALIBRATION_END)}
    again = evaluate_models(models, panel, calibration_end=CALIBRATION_END, draws=4, tracking_draws=2)
    assert again.metrics["recurrence"] == result.metrics["recurrence"]


def test_report_writes_metrics_plots_and_markdown(evaluation, tmp_path) -> None:
    _, result = evaluation
    report = write_report(result, tmp_path, {"data": "cdnow-sample (400 users)"})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["models"]) == {"exponential", "recurrence"}
    for name in ("tracking.png", "by_x.png", "holdout_counts.png", "interest.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        assert f"]({name})" in report.read_text()
    assert "holdout bias %" in report.read_text()


class _KnownLiftModel(RecurrenceDecayModel):
    """Recurrence model whose purchase probability rises by a known amount per contact kind."""

    uses_contacts = True
    lifts = np.array([0.02, 0.05, 0.01])

    def forecast(self, state, contacts=None):
        forecast = super().forecast(state)
        if contacts is not None:
            forecast.p_active = forecast.p_active + contacts @ self.lifts
        return forecast


def test_contact_effects_recover_a_known_lift() -> None:
    panel = build_panel(generate_synthetic_log(SyntheticConfig(n_users=300, n_periods=20, seed=4)).log)
    model = _KnownLiftModel().fit(panel, until=panel.spec.n_periods)
    effects = estimate_contact_effects(model, panel)
    for kind, lift in zip(panel.spec.interventions, _KnownLiftModel.lifts, strict=True):
        assert effects[kind]["user_periods"] > 100
        assert effects[kind]["effect"] == pytest.approx(lift)


def test_rollouts_get_the_logged_contacts_as_they_happened() -> None:
    """Contacts raise the forecast only of the user-periods that got them; zeros change no draw."""
    panel = build_panel(generate_synthetic_log(SyntheticConfig(n_users=300, n_periods=20, seed=4)).log)
    panel = panel.select(panel.born_before(10))
    model = _KnownLiftModel().fit(panel, until=panel.spec.n_periods)
    model.lifts = np.array([0.5, 0.5, 0.5])
    state, keys = model.initial_state(panel, until=10), user_keys(panel.user_ids)
    end, logged = panel.spec.n_periods, panel.interventions

    def rollout(contacts: np.ndarray | None, rows_per_block: int = 16384):
        return simulate_forward(
            model, state, end=end, draws=2, streams=RandomStreams(3), keys=keys,
            contacts=contacts, rows_per_block=rows_per_block,
        )  # fmt: skip

    plain = rollout(None)
    np.testing.assert_array_equal(rollout(np.zeros_like(logged)).totals, plain.totals)
    given = rollout(logged)
    np.testing.assert_array_equal(rollout(logged, rows_per_block=5).totals, given.totals)
    contacted = logged[:, 10:].any(axis=(1, 2))
    assert contacted.any() and not contacted.all()
    np.testing.assert_array_equal(given.totals[~contacted], plain.totals[~contacted])
    assert given.totals[contacted].sum() > plain.totals[contacted].sum()


def test_rollouts_do_not_depend_on_the_batch() -> None:
    """Common random numbers: block size and the other users in a batch change no user's draws."""
    panel = load_cdnow_panel("cdnow-sample").select(np.arange(200))
    model = RecurrenceDecayModel().fit(panel, until=CALIBRATION_END)
    state, keys, streams = (
        model.initial_state(panel, until=CALIBRATION_END),
        user_keys(panel.user_ids),
        RandomStreams(5),
    )
    whole = simulate_forward(model, state, end=60, draws=3, streams=streams, keys=keys)
    blocked = simulate_forward(model, state, end=60, draws=3, streams=streams, keys=keys, rows_per_block=7)
    np.testing.assert_array_equal(whole.totals, blocked.totals)
    some = np.array([150, 3, 77])
    alone = simulate_forward(model, state.take(some), end=60, draws=3, streams=streams, keys=keys[some])
    np.testing.assert_array_equal(alone.totals, whole.totals[some])


def test_weekly_mape_sums_days_into_weeks() -> None:
    """Two weeks of days: the model is 10% high in week one and 20% low in week two, whatever the
    days; weekly periods give the same figure from the weekly totals."""
    rng = np.random.default_rng(0)
    actual = rng.integers(1, 9, size=14).astype(float)
    model = actual.copy()
    model[:7] += 0.1 * actual[:7].sum() * rng.dirichlet(np.ones(7))
    model[7:] -= 0.2 * actual[7:].sum() * rng.dirichlet(np.ones(7))
    assert weekly_mape(model, actual, period_days=1) == pytest.approx(15.0)
    weekly = [model[:7].sum(), model[7:].sum()], [actual[:7].sum(), actual[7:].sum()]
    assert weekly_mape(*map(np.array, weekly), period_days=7) == pytest.approx(15.0)


def test_weekly_mape_leaves_out_weeks_without_purchases() -> None:
    """A week without actual purchases has no % error; a last partial week is compared on its days."""
    actual = np.array([0, 0, 0, 0, 0, 0, 0, 4, 4, 2.0])
    model = np.array([1, 1, 0, 0, 0, 0, 0, 5, 5, 2.5])
    assert weekly_mape(model, actual, period_days=1) == pytest.approx(25.0)
    assert np.isnan(weekly_mape(model, np.zeros(10), period_days=1))
