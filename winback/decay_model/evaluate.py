"""Holdout evaluation of decay models, the way the simulator will use them: rolled forward by sampling.

For each model, fitted on the calibration periods:

- the *conditional forecast*: every user's state at the end of calibration, rolled forward through
  the holdout ``draws`` times; per-user means, the share of draws with any purchase, and the
  distribution of holdout counts come from these draws;
- the *from-birth simulation*: every user started from their birth period alone and simulated to
  the end of the panel (Fader, Hardie & Lee's weekly tracking), for the cumulative error;
- the *one-step log score*: each holdout period's purchase count scored under the model's
  forecast given the user's actual history up to it (exact, no sampling).

Metrics (``EvaluationResult.metrics[model]``):
``holdout_total`` (expected holdout purchases, all users), ``holdout_bias_pct``
(``100 (model - actual) / actual``), ``mae`` / ``rmse`` / ``pearson_r`` (per-user expected vs actual
holdout purchases), ``auc_any`` (P(any holdout purchase) against whether there was one),
``log_score`` (mean per user-period one-step log probability, higher is better), ``weekly_mape``
(mean absolute % error of total purchases per holdout week, :func:`weekly_mape`; weeks whatever the
period, so weekly and daily fits compare), ``cum_error_pct_wk78``
(% error of cumulative purchases after the birth period, from-birth simulation, at the panel's
end), ``by_x`` (mean holdout purchases by calibration repeat frequency 0..6, 7+) and
``count_shares`` (share of users with 0..6, 7+ holdout purchases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from winback.data.panel import PeriodPanel
from winback.decay_model.base import DecayModel, DecayState, PeriodActivity
from winback.progress import progress_bar
from winback.streams import RandomStreams, draw_keys, user_keys

MAX_BUCKET = 7
"""Counts of 7 or more share the last bucket of ``by_x`` and ``count_shares``."""


@dataclass(frozen=True)
class Rollout:
    """Sampled futures of a set of users."""

    totals: np.ndarray
    """(n, draws) purchases per user and draw over the simulated periods."""
    per_period: np.ndarray
    """(P,) mean over draws of total purchases in each absolute period (0 where not simulated)."""


@dataclass
class ModelSeries:
    """Per-model series behind the plots."""

    holdout_weekly: np.ndarray
    from_birth_weekly: np.ndarray
    interest: np.ndarray
    """(users shown, P) filtered interest of a few users after their birth period (NaN elsewhere)."""


@dataclass
class EvaluationResult:
    calibration_end: int
    period: str = "week"
    """The panel's period, the unit of the per-period series."""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    series: dict[str, ModelSeries] = field(default_factory=dict)
    actual_weekly: np.ndarray | None = None
    """(P,) actual purchases per period after each user's birth period."""
    interest_users: list[str] = field(default_factory=list)
    interest_purchases: np.ndarray | None = None
    user_ids: np.ndarray | None = None
    actual_holdout: np.ndarray | None = None
    """(n,) actual holdout purchases per user."""
    expected_holdout: dict[str, np.ndarray] = field(default_factory=dict)
    """Per model, (n,) expected holdout purchases per user (mean over draws)."""


def simulate_forward(
    model: DecayModel,
    state: DecayState,
    *,
    end: int,
    draws: int,
    streams: RandomStreams,
    keys: np.ndarray,
    contacts: np.ndarray | None = None,
    rows_per_block: int = 16384,
) -> Rollout:
    """Roll every user from their state's period to ``end`` (exclusive), ``draws`` times.

    ``contacts`` ((n, periods, kinds), a panel's ``interventions``) are the contacts each user got in
    each period, given to the model as they happened (the shop's own decisions, not the users'); none
    without them. Draw ``d`` of the user with key ``k`` in period ``t`` uses the uniforms of
    ``(draw_keys(k, d), t)``, so results do not depend on ``rows_per_block`` or on the other users.
    """
    n = len(state.period)
    totals = np.zeros((n, draws), dtype=np.int64)
    per_period = np.zeros(end, dtype=np.float64)
    users_per_block = max(1, rows_per_block // draws)
    n_uniforms = model.uniforms_per_user()
    for start in range(0, n, users_per_block):
        block = np.arange(start, min(start + users_per_block, n))
        current = state.take(block).repeat(draws)
        row_keys = draw_keys(keys[block], draws)
        block_totals = np.zeros(len(block) * draws, dtype=np.int64)
        row_users = np.repeat(block, draws)
        while (live := current.period < end).any():
            uniforms = streams.uniforms(row_keys, current.period, n_uniforms)
            received = None
            if contacts is not None:
                period = np.minimum(current.period, end - 1)
                received = contacts[row_users, period].astype(np.int64) * live[:, None]
            activity = model.sample(model.forecast(current, received), uniforms)
            purchases = np.where(live, activity.purchases, 0)
            block_totals += purchases
            np.add.at(per_period, current.period[live], purchases[live])
            current = model.advance(current, activity, received)
        totals[block] = block_totals.reshape(len(block), draws)
    return Rollout(totals=totals, per_period=per_period / draws)


def filter_history(
    model: DecayModel, panel: PeriodPanel, *, start: int | np.ndarray, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced pass from ``start`` (per user, or common) to ``end`` with actual activity and contacts.

    Returns (log probability of each period's purchases, interest before each period), both (n, P)
    over absolute periods, NaN outside ``[start, end)``.
    """
    state = model.initial_state(panel, until=start)
    log_probs = np.full((panel.n_users, panel.spec.n_periods), np.nan)
    interest = np.full_like(log_probs, np.nan)
    users = np.arange(panel.n_users)
    while (live := state.period < end).any():
        period = np.minimum(state.period, end - 1)
        contacts = panel.interventions[users, period].astype(np.int64)
        forecast = model.forecast(state, contacts)
        p_active = model.interest(state) if contacts.any() else forecast.p_active
        interest[users[live], period[live]] = p_active[live]
        log_prob = model.log_prob(forecast, panel.purchases[users, period])
        log_probs[users[live], period[live]] = log_prob[live]
        state = model.advance(state, PeriodActivity.from_panel(panel, period), contacts)
    return log_probs, interest


def evaluate_models(
    models: dict[str, DecayModel],
    panel: PeriodPanel,
    *,
    calibration_end: int,
    draws: int = 32,
    tracking_draws: int = 8,
    seed: int = 0,
    n_interest_users: int = 6,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate fitted models on the holdout ``[calibration_end, n_periods)`` of users born before it.

    Forecasts are given the contacts the log shows, as they happened (a log of randomized contacts
    is scored on what its users lived, contacts included; models without contact effects ignore them).

    ``draws`` sampled futures per user make the per-user forecasts; the from-birth simulation only
    feeds population totals per period and uses ``tracking_draws``.
    """
    panel = panel.select(panel.born_before(calibration_end))
    end = panel.spec.n_periods
    actual_user = panel.purchases[:, calibration_end:].sum(axis=1).astype(np.float64)
    actual_weekly_holdout = panel.purchases[:, calibration_end:].sum(axis=0).astype(np.float64)
    x = panel.rfm(calibration_end).x
    after_birth = np.arange(end)[None, :] > panel.first_period[:, None]
    actual_after_birth = (panel.purchases * after_birth).sum(axis=0).astype(np.float64)
    shown = _interest_users(panel, calibration_end, n_interest_users)
    result = EvaluationResult(
        calibration_end=calibration_end,
        period=panel.spec.period,
        actual_weekly=actual_after_birth,
        interest_users=[str(u) for u in panel.user_ids[shown]],
        interest_purchases=panel.purchases[shown].astype(np.float64),
        user_ids=panel.user_ids,
        actual_holdout=actual_user,
    )
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("evaluate", total=len(models) * 3)
        for name, model in models.items():
            streams, keys = RandomStreams(seed), user_keys(panel.user_ids)
            bar.update(task, description=f"evaluate {name}: holdout forecast")
            conditional = simulate_forward(
                model,
                model.initial_state(panel, until=calibration_end),
                end=end,
                draws=draws,
                streams=streams,
                keys=keys,
                contacts=panel.interventions,
            )
            bar.update(task, advance=1, description=f"evaluate {name}: from-birth simulation")
            from_birth = simulate_forward(
                model,
                model.initial_state(panel, until=panel.first_period + 1),
                end=end,
                draws=tracking_draws,
                streams=streams,
                keys=keys,
                contacts=panel.interventions,
            )
            bar.update(task, advance=1, description=f"evaluate {name}: one-step log score")
            log_probs, _ = filter_history(model, panel, start=calibration_end, end=end)
            shown_panel = panel.select(shown)
            _, interest = filter_history(model, shown_panel, start=shown_panel.first_period + 1, end=end)
            bar.update(task, advance=1)
            expected = conditional.totals.mean(axis=1)
            result.expected_holdout[name] = expected
            model_weekly = conditional.per_period[calibration_end:]
            result.metrics[name] = {
                "holdout_total": float(expected.sum()),
                "actual_holdout_total": float(actual_user.sum()),
                "holdout_bias_pct": float(100 * (expected.sum() - actual_user.sum()) / actual_user.sum()),
                "mae": float(np.abs(expected - actual_user).mean()),
                "rmse": float(np.sqrt(((expected - actual_user) ** 2).mean())),
                "pearson_r": float(np.corrcoef(expected, actual_user)[0, 1]),
                "auc_any": auc((conditional.totals > 0).mean(axis=1), actual_user > 0),
                "log_score": float(np.nanmean(log_probs)),
                "weekly_mape": weekly_mape(model_weekly, actual_weekly_holdout, panel.spec.period_days),
                "cum_error_pct_wk78": float(
                    100 * (from_birth.per_period.sum() - actual_after_birth.sum()) / actual_after_birth.sum()
                ),
                "by_x": {
                    "x": list(range(MAX_BUCKET + 1)),
                    "model": _mean_by_bucket(x, expected),
                    "actual": _mean_by_bucket(x, actual_user),
                },
                "count_shares": {
                    "model": _count_shares(conditional.totals),
                    "actual": _count_shares(actual_user[:, None]),
                },
                "draws": draws,
            }
            result.series[name] = ModelSeries(
                holdout_weekly=conditional.per_period,
                from_birth_weekly=from_birth.per_period,
                interest=interest,
            )
    return result


def weekly_mape(model: np.ndarray, actual: np.ndarray, period_days: int) -> float:
    """Mean absolute % error of total purchases per week, from per-period totals of a holdout.

    Periods are summed into weeks counted from the holdout's start (a last partial week is compared
    over the days it has); weeks without actual purchases are left out, their % error being
    undefined (NaN when every week is without).
    """
    week = np.arange(len(actual)) * period_days // 7
    model_weeks = np.bincount(week, weights=model)
    actual_weeks = np.bincount(week, weights=actual)
    bought = actual_weeks > 0
    if not bought.any():
        return float("nan")
    return float(100 * np.mean(np.abs(model_weeks[bought] - actual_weeks[bought]) / actual_weeks[bought]))


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    label = np.asarray(label, dtype=bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _bucket(values: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(values, dtype=np.int64), MAX_BUCKET)


def _mean_by_bucket(x: np.ndarray, values: np.ndarray) -> list[float | None]:
    bucket = _bucket(x)
    return [float(values[bucket == k].mean()) if (bucket == k).any() else None for k in range(MAX_BUCKET + 1)]


def _count_shares(totals: np.ndarray) -> list[float]:
    """Share of users per count bucket, averaged over draws (columns)."""
    bucket = _bucket(np.rint(totals))
    return [float((bucket == k).mean()) for k in range(MAX_BUCKET + 1)]


def _interest_users(panel: PeriodPanel, calibration_end: int, n: int) -> np.ndarray:
    """A few users from one-time to heavy calibration buyers: quantiles of x from the median up."""
    x = panel.rfm(calibration_end).x
    order = np.argsort(x, kind="stable")
    return order[np.linspace(0.5 * (len(order) - 1), len(order) - 1, n).astype(int)]


def estimate_contact_effects(model: DecayModel, panel: PeriodPanel) -> dict[str, dict[str, float]]:
    """The model's average effect of each contact on the purchase probability of the period it is received in.

    Walks every user's actual history (teacher forcing); at each user-period that received exactly
    one contact of a kind, compares ``P(purchase)`` given that contact with ``P(purchase)`` given none,
    from the same state. Averages over those user-periods, i.e. the effect on the treated, which
    is what :attr:`winback.data.synthetic.SyntheticLog.true_effects` holds.
    """
    spec = panel.spec
    kinds = spec.interventions
    sums = {kind: [0.0, 0.0, 0] for kind in kinds}  # effect sum, base probability sum, count
    state = model.initial_state(panel, until=panel.first_period + 1)
    users = np.arange(panel.n_users)
    while (live := state.period < spec.n_periods).any():
        period = np.minimum(state.period, spec.n_periods - 1)
        contacts = panel.interventions[users, period].astype(np.int64)
        base = model.forecast(state).p_active
        for k, kind in enumerate(kinds):
            treated = live & (contacts[:, k] == 1) & (contacts.sum(axis=1) == 1)
            if not treated.any():
                continue
            one = np.zeros((int(treated.sum()), len(kinds)), dtype=np.int64)
            one[:, k] = 1
            lifted = model.forecast(state.take(treated), one).p_active
            sums[kind][0] += float((lifted - base[treated]).sum())
            sums[kind][1] += float(base[treated].sum())
            sums[kind][2] += int(treated.sum())
        state = model.advance(state, PeriodActivity.from_panel(panel, period), contacts)
    return {
        kind: {"effect": s / n, "base_probability": b / n, "user_periods": n} if n else {"user_periods": 0}
        for kind, (s, b, n) in sums.items()
    }
