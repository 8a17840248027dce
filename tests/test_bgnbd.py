"""BG/NBD (Fader, Hardie & Lee 2005) against the published CDNOW estimates and its closed forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import OptimizeResult, approx_fprime

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import PeriodPanel
from winback.decay_model.artifact import load_model, save_model
from winback.decay_model.base import PeriodActivity
from winback.decay_model.bgnbd import BGNBDModel, BGNBDState, log_likelihood_and_gradient
from winback.decay_model.registry import MODELS
from winback.errors import DataError

UNTIL = 39
"""Calibration is weeks 0-38 (FHL 2005); the holdout is the next 39 weeks."""


@pytest.fixture(scope="module")
def panel() -> PeriodPanel:
    return load_cdnow_panel("cdnow-sample")


@pytest.fixture(scope="module")
def model(panel: PeriodPanel) -> BGNBDModel:
    return BGNBDModel().fit(panel, until=UNTIL)


def _published(model: BGNBDModel, max_count: int = 40) -> BGNBDModel:
    """A model with FHL 2005's published CDNOW estimates (and ``model``'s spec and marks)."""
    published = BGNBDModel(max_count=max_count)
    published.r, published.alpha, published.a, published.b = 0.243, 4.414, 0.793, 2.426
    published.log_likelihood = -9582.4
    published.marks, published.spec = model.marks, model.spec
    return published


def _state(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBDState:
    return BGNBDState(period=np.zeros(len(x), dtype=np.int64), x=x, t_x=t_x, T=T)


def _history_grid() -> BGNBDState:
    """(x, t_x, T) from new to heavy buyers, recent to long lapsed (t_x <= T, t_x = 0 when x = 0)."""
    x, t_x, T = (
        g.ravel()
        for g in np.meshgrid(
            [0.0, 1, 2, 5, 10, 30, 100], [0.0, 1, 10, 30], [1.0, 5, 30, 38.86, 100], indexing="ij"
        )
    )
    keep = (t_x <= T) & ((x > 0) | (t_x == 0))
    return _state(x[keep], t_x[keep], T[keep])


def test_fit_reproduces_the_published_cdnow_estimates(model: BGNBDModel) -> None:
    assert model.r == pytest.approx(0.243, abs=5e-4)
    assert model.alpha == pytest.approx(4.414, abs=5e-3)
    assert model.a == pytest.approx(0.793, abs=5e-4)
    assert model.b == pytest.approx(2.426, abs=5e-3)
    assert model.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert model.spec is not None and model.marks.mean_spend_per_purchase > 0


def test_gradient_matches_finite_differences(panel: PeriodPanel) -> None:
    rfm = panel.rfm(UNTIL)
    point = np.log([0.3, 4.0, 0.7, 2.0])
    _, gradient = log_likelihood_and_gradient(point, rfm.x, rfm.t_x, rfm.T)
    numeric = approx_fprime(point, lambda p: log_likelihood_and_gradient(p, rfm.x, rfm.t_x, rfm.T)[0], 1e-7)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-3)


def test_conditional_expectation_reproduces_the_paper_example(model: BGNBDModel) -> None:
    # FHL 2005: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to buy 1.226 times in 39 weeks.
    state = _state(np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert _published(model).conditional_expected_purchases(state, 39.0)[0] == pytest.approx(1.226, abs=5e-4)


@pytest.mark.parametrize("max_count", [40, 100])
def test_one_period_forecast_matches_the_closed_form(model: BGNBDModel, max_count: int) -> None:
    fitted = _published(model, max_count)
    state = _history_grid()
    forecast = fitted.forecast(state)
    pmf = forecast.params["pmf"]
    closed = fitted.conditional_expected_purchases(state, 1.0)
    assert pmf.shape == (len(state.x), max_count + 1) and (pmf >= 0).all()
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(forecast.p_active, 1.0 - pmf[:, 0], atol=1e-14)
    np.testing.assert_allclose(
        forecast.expected_spend, closed * model.marks.mean_spend_per_purchase, rtol=1e-4
    )
    # The pmf folds counts >= max_count into the last bucket, which only matters for the heaviest
    # buyer (x = 100, T = 1: 17 purchases a week expected) at the default max_count.
    light = state.x <= 30
    np.testing.assert_allclose(forecast.expected_purchases[light], closed[light], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(forecast.expected_purchases, closed, rtol=1e-5 if max_count == 40 else 1e-9)


def test_rolling_forward_matches_the_closed_form_holdout(panel: PeriodPanel) -> None:
    """Sampling 39 one-week periods in turn reproduces eq. (10) at t = 39 for the sample's customers.

    Monte-Carlo error: the mean per customer over a draw of all 2,357 customers has sd 0.030, so
    40 draws give se 0.0047 (0.7% of the closed form's 0.7015). The mid-period ``t_x`` of
    ``advance`` puts simulated purchases earlier than they fall on average, which lowers P(alive):
    with 2,000 draws the rollout was -0.16% +- 0.09% (max_count 40) and -0.11% +- 0.09%
    (max_count 10, as here) below the closed form. That bias is a fifth of one se here, so the
    test allows 4 se (about 2.7%); it checks the one-period pmf and the state updates compose to
    the right holdout forecast, not the 0.1% discretisation bias.
    """
    fitted = BGNBDModel(max_count=10).fit(panel, until=UNTIL)
    start = fitted.initial_state(panel, until=UNTIL)
    closed = fitted.conditional_expected_purchases(start, 39.0).mean()
    draws = 40
    state = start.repeat(draws)
    rng = np.random.default_rng(7)
    total = np.zeros(len(state.x))
    for _ in range(39):
        activity = fitted.sample(fitted.forecast(state), rng.random((len(state.x), 2)))
        total += activity.purchases
        state = fitted.advance(state, activity)
    per_draw = total.reshape(panel.n_users, draws).mean(axis=0)
    standard_error = per_draw.std(ddof=1) / np.sqrt(draws)
    assert standard_error < 0.01
    assert abs(per_draw.mean() - closed) < 4 * standard_error


def test_initial_state_is_the_rfm_summary_and_accepts_per_user_cutoffs(
    model: BGNBDModel, panel: PeriodPanel
) -> None:
    state = model.initial_state(panel, until=UNTIL)
    rfm = panel.rfm(UNTIL)
    np.testing.assert_array_equal(state.x, rfm.x)
    np.testing.assert_array_equal(state.t_x, rfm.t_x)
    np.testing.assert_array_equal(state.T, rfm.T)
    assert (state.period == UNTIL).all()

    until = np.where(np.arange(panel.n_users) % 2 == 0, 20, 60)
    mixed = model.initial_state(panel, until=until)
    for cutoff in (20, 60):
        rows = until == cutoff
        single = panel.rfm(cutoff)
        np.testing.assert_array_equal(mixed.x[rows], single.x[rows])
        np.testing.assert_array_equal(mixed.t_x[rows], single.t_x[rows])
        np.testing.assert_array_equal(mixed.T[rows], single.T[rows])
    birth = model.initial_state(panel, until=panel.first_period + 1)
    first_week = panel.purchases[np.arange(panel.n_users), panel.first_period]
    np.testing.assert_array_equal(birth.x, first_week - 1)
    assert (birth.T >= 0).all() and (birth.T < 1).all()
    assert np.isfinite(model.forecast(birth).params["pmf"]).all()
    with pytest.raises(ValueError, match="not born"):
        model.initial_state(panel, until=1)


def test_advance_puts_new_purchases_mid_period(model: BGNBDModel) -> None:
    state = _state(np.array([0.0, 3.0]), np.array([0.0, 10.0]), np.array([5.0, 20.0]))
    counts = np.zeros((2, len(model.spec.event_types)), dtype=np.int64)
    counts[:, -1] = [2, 0]
    after = model.advance(state, PeriodActivity(counts=counts, spend=np.zeros(2)))
    np.testing.assert_array_equal(after.x, [2.0, 3.0])
    np.testing.assert_array_equal(after.t_x, [5.5, 10.0])
    np.testing.assert_array_equal(after.T, [6.0, 21.0])
    np.testing.assert_array_equal(after.period, [1, 1])


def test_sample_and_log_prob_follow_the_pmf(model: BGNBDModel, panel: PeriodPanel) -> None:
    forecast = model.forecast(model.initial_state(panel, until=UNTIL).repeat(50))
    uniforms = np.random.default_rng(3).random((len(forecast.p_active), model.uniforms_per_user()))
    first = model.sample(forecast, uniforms)
    again = model.sample(forecast, uniforms.copy())
    np.testing.assert_array_equal(first.counts, again.counts)
    np.testing.assert_array_equal(first.spend, again.spend)
    assert (first.counts[:, :-1] == 0).all()
    assert ((first.spend > 0) == (first.purchases > 0)).all()
    empirical = np.bincount(first.purchases, minlength=3)[:3] / len(first.purchases)
    np.testing.assert_allclose(empirical, forecast.params["pmf"][:, :3].mean(axis=0), atol=3e-3)

    pmf = forecast.params["pmf"]
    purchases = np.array([0, 1, model.max_count, model.max_count + 5])
    log_prob = model.log_prob(forecast.take(np.arange(4)), purchases)
    expected = np.log(pmf[np.arange(4), np.minimum(purchases, model.max_count)])
    np.testing.assert_array_equal(log_prob, expected)


def test_fit_is_deterministic_and_ignores_users_born_later(panel: PeriodPanel, model: BGNBDModel) -> None:
    early = BGNBDModel().fit(panel, until=8)
    assert early.config() == BGNBDModel().fit(panel.select(panel.born_before(8)), until=8).config()
    assert BGNBDModel().fit(panel, until=UNTIL).config() == model.config()


def test_artifact_round_trip_gives_identical_forecasts(
    model: BGNBDModel, panel: PeriodPanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, "bgnbd", BGNBDModel)
    loaded = load_model(save_model(model, tmp_path / "bgnbd"))
    assert isinstance(loaded, BGNBDModel)
    assert loaded.config() == model.config() and loaded.spec == model.spec
    state = model.initial_state(panel, until=UNTIL)
    before, after = model.forecast(state), loaded.forecast(state)
    np.testing.assert_array_equal(before.params["pmf"], after.params["pmf"])
    np.testing.assert_array_equal(before.expected_spend, after.expected_spend)


def test_unfitted_model_refuses_to_forecast() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        BGNBDModel().forecast(_state(np.zeros(1), np.zeros(1), np.ones(1)))
    with pytest.raises(ValueError, match="max_count"):
        BGNBDModel(max_count=0)


def test_an_optimum_not_reached_is_a_data_error(panel: PeriodPanel, monkeypatch) -> None:
    """The optimiser's failure names the users and repeat buyers it had, not a bare RuntimeError."""

    def stopped_early(fun, x0, **options):
        return OptimizeResult(x=x0, fun=fun(x0)[0], jac=np.ones(4), message="stopped early")

    monkeypatch.setattr("winback.decay_model.bgnbd.minimize", stopped_early)
    few = panel.select(np.arange(20))
    repeat_buyers = int((few.rfm(UNTIL).x > 0).sum())
    with pytest.raises(DataError, match=f"stopped early.* on 20 users with {repeat_buyers} repeat buyers"):
        BGNBDModel().fit(few, until=UNTIL)


def test_a_window_without_repeat_buyers_is_a_data_error(panel: PeriodPanel) -> None:
    """a and b (the drop-out after a purchase) are learned from repeat buyers only."""
    one_timers = panel.select(panel.rfm(UNTIL).x == 0)
    with pytest.raises(DataError, match="no user repeats a purchase before period 39"):
        BGNBDModel().fit(one_timers, until=UNTIL)
