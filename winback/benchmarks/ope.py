"""Off-policy estimates of a candidate policy's value from a log of decisions: inverse propensity
scoring (IPS), its self-normalised form (SNIPS) and the doubly robust estimator (DR), each with a
bootstrap confidence interval over users and the importance weights' effective sample size.

Notation, per logged decision ``i``: the action ``a_i`` drawn with propensity ``p_i`` (the logging
policy's probability of it, after masking and exploration: ``winback decide`` records it), the
candidate's probability ``pi_i`` of that same action, the reward ``r_i`` that followed, the weight
``w_i = pi_i / p_i``; for DR, a reward model's prediction ``q(x_i, a)`` of every action and the
candidate's whole distribution ``pi(a | x_i)``:

- IPS: ``mean(w r)``, unbiased when every action the candidate takes had a positive propensity;
- SNIPS: ``sum(w r) / sum(w)``, biased but of far smaller variance when weights are large;
- DR: ``mean(sum_a pi(a|x) q(x, a) + w (r - q(x, a_i)))``, unbiased if either the propensities or
  the reward model are right (Dudik, Langford & Li 2011).

Over several periods (:class:`Trajectories`, a user's decisions in order), with cumulative weights
``rho_t = w_0 ... w_t`` normalised over users each period (``w~_t``):

- PDWIS (:func:`per_decision_weighted_is`): ``sum_t gamma^t sum_i w~_it r_it``;
- WDR (:func:`weighted_doubly_robust`, Thomas & Brunskill 2016): the same with a model's values as
  a control variate, ``- w~_it q(x_it, a_it) + w~_i,t-1 v(x_it)``.

The effective sample size ``(sum w)^2 / sum w^2`` (of the whole trajectories' weights, over several
periods) says how many logged decisions the estimate really rests on; below :data:`MIN_ESS_SHARE` of
the log the estimate is marked untrustworthy.

Written here: the Open Bandit Pipeline and SCOPE-RL do not install on Python 3.11 with numpy 2; each
estimator is tested against values computed by hand on tiny logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from winback.benchmarks.stats import mean_ci
from winback.errors import ConfigError

MIN_ESS_SHARE = 0.01
"""An estimate whose weights' effective sample size is below this share of the log is untrustworthy."""


@dataclass(frozen=True)
class OffPolicyEstimate:
    """One estimator's estimate of the candidate's value per decision, with its diagnostics."""

    estimator: str
    value: float
    low: float
    high: float
    """95% bootstrap interval over the logged decisions (users)."""
    n: int
    ess: float
    """Effective sample size of the importance weights."""
    max_weight: float

    @property
    def trusted(self) -> bool:
        """Whether the weights leave enough effective decisions (:data:`MIN_ESS_SHARE` of the log)."""
        return self.ess >= MIN_ESS_SHARE * self.n


def weights(propensities: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(n,) importance weights ``pi_i / p_i``, checked: propensities in (0, 1], target in [0, 1]."""
    p, pi = np.asarray(propensities, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != pi.shape or p.ndim != 1:
        raise ConfigError(f"propensities {p.shape} and target probabilities {pi.shape} (expected (n,) each)")
    if not np.all((p > 0) & (p <= 1)):
        raise ConfigError(
            "propensities must be in (0, 1]: an action logged with probability 0 cannot be weighed"
        )
    if not np.all((pi >= 0) & (pi <= 1)):
        raise ConfigError("target probabilities must be in [0, 1]")
    return pi / p


def ips(
    rewards: np.ndarray, propensities: np.ndarray, target: np.ndarray, *, rng: np.random.Generator
) -> OffPolicyEstimate:
    """Inverse propensity scoring of the candidate whose probabilities of the logged actions are
    ``target``."""
    w = weights(propensities, target)
    return _mean_estimate("ips", w * _rewards(rewards, w), w, rng)


def snips(
    rewards: np.ndarray, propensities: np.ndarray, target: np.ndarray, *, rng: np.random.Generator
) -> OffPolicyEstimate:
    """Self-normalised IPS: the weighted rewards over the weights' sum; its interval resamples users
    (the pairs of weighted reward and weight) with the percentile bootstrap."""
    w = weights(propensities, target)
    weighted = w * _rewards(rewards, w)
    if w.sum() == 0:
        raise ConfigError("the candidate gives probability 0 to every logged action: SNIPS is undefined")
    interval = scipy_stats.bootstrap(
        (weighted, w),
        lambda a, b, axis=-1: a.sum(axis=axis) / np.maximum(b.sum(axis=axis), 1e-300),
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=2000,
        rng=rng,
    ).confidence_interval
    value = float(weighted.sum() / w.sum())
    return OffPolicyEstimate(
        "snips", value, float(interval.low), float(interval.high), len(w), _ess(w), float(w.max())
    )


def doubly_robust(
    rewards: np.ndarray,
    propensities: np.ndarray,
    actions: np.ndarray,
    target_distribution: np.ndarray,
    predicted: np.ndarray,
    *,
    rng: np.random.Generator,
) -> OffPolicyEstimate:
    """The doubly robust estimate: ``target_distribution`` (n, A) the candidate's probabilities of
    every action, ``predicted`` (n, A) a reward model's prediction of every action, ``actions`` (n,)
    the logged ones."""
    pi, q = np.asarray(target_distribution, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.int64)
    if pi.shape != q.shape or pi.ndim != 2 or actions.shape != (len(pi),):
        raise ConfigError(
            f"target {pi.shape}, predictions {q.shape}, actions {actions.shape} "
            "(expected (n, A), (n, A), (n,))"
        )
    rows = np.arange(len(actions))
    w = weights(propensities, pi[rows, actions])
    terms = (pi * q).sum(axis=1) + w * (_rewards(rewards, w) - q[rows, actions])
    return _mean_estimate("dr", terms, w, rng)


def _rewards(rewards: np.ndarray, w: np.ndarray) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.shape != w.shape or not np.all(np.isfinite(r)):
        raise ConfigError(f"rewards {r.shape} must be finite, one per logged decision ({w.shape})")
    return r


def _mean_estimate(
    name: str, terms: np.ndarray, w: np.ndarray, rng: np.random.Generator
) -> OffPolicyEstimate:
    estimate = mean_ci(terms[None, :], rng=rng)
    return OffPolicyEstimate(
        name, estimate.mean, estimate.low, estimate.high, len(w), _ess(w), float(w.max())
    )


def _ess(w: np.ndarray) -> float:
    squares = float((w**2).sum())
    return float(w.sum() ** 2 / squares) if squares > 0 else 0.0


def fit_reward_model(
    features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    n_actions: int,
    *,
    seed: int,
    folds: int = 2,
) -> np.ndarray:
    """(n, A) each logged decision's predicted reward of every action, cross-fitted: gradient-boosted
    trees (scikit-learn's ``HistGradientBoostingRegressor``) on the features and the action, fitted on
    the other folds of the log, so a decision's own reward never predicts it (DR stays unbiased in
    the model's errors)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    features, actions = np.asarray(features, dtype=np.float64), np.asarray(actions, dtype=np.int64)
    n = len(actions)
    fold = np.random.default_rng(seed).integers(0, folds, n)
    predicted = np.zeros((n, n_actions))
    for k in range(folds):
        train, held = fold != k, fold == k
        if not held.any():
            continue
        model = HistGradientBoostingRegressor(max_iter=200, random_state=seed)
        model.fit(_with_action(features[train], actions[train], n_actions), np.asarray(rewards)[train])
        for a in range(n_actions):
            chosen = np.full(int(held.sum()), a)
            predicted[held, a] = model.predict(_with_action(features[held], chosen, n_actions))
    return predicted


def _with_action(features: np.ndarray, actions: np.ndarray, n_actions: int) -> np.ndarray:
    return np.hstack([features, np.eye(n_actions)[actions]])


@dataclass(frozen=True)
class DecisionLog:
    """A ``winback decide`` log joined with what followed each decision."""

    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    features: np.ndarray
    """(n, F) float32 the features the logging policy saw."""
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray


def read_log(decisions: Path, outcomes: Path) -> DecisionLog:
    """The decisions of a ``winback decide`` output directory (``decisions/``) joined on (user_id,
    period) with an outcomes table (Parquet or CSV: ``user_id``, ``period``, ``reward``, one row per
    decision); errors name the file, the rows and the column."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from winback.errors import DataError
    from winback.export.runtime.batch import BATCH_ROWS, FEATURE_PREFIX, USER, read_blocks

    parts = decisions / "decisions"
    if not parts.is_dir():
        raise DataError("no decisions/ here", path=decisions, expected="a winback decide --out directory")
    log = pq.read_table(parts).to_pandas()
    found = pa.Table.from_batches(list(read_blocks(outcomes, BATCH_ROWS))).to_pandas()
    if missing := [c for c in (USER, "period", "reward") if c not in found.columns]:
        problem = f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        raise DataError(problem, path=outcomes, expected="user_id, period, reward")
    found[USER] = found[USER].astype(str)
    reward = pd.to_numeric(found["reward"], errors="coerce")
    if (bad := ~np.isfinite(reward.to_numpy(dtype=np.float64))).any():
        rows = (np.flatnonzero(bad) + 1).tolist()
        raise DataError(
            "invalid value", path=outcomes, rows=rows, column="reward", expected="a finite number"
        )
    found["reward"] = reward
    repeated = found.duplicated([USER, "period"], keep=False).to_numpy()
    if repeated.any():
        raise DataError(
            "a decision's outcome appears more than once",
            path=outcomes,
            rows=(np.flatnonzero(repeated) + 1).tolist(),
            column=USER,
            expected="one row per user and period",
        )
    joined = log.merge(
        found[[USER, "period", "reward"]], on=[USER, "period"], how="left", validate="one_to_one"
    )
    if (absent := joined["reward"].isna().to_numpy()).any():
        users = joined.loc[absent, USER].head(5).tolist()
        raise DataError(
            f"no outcome for {int(absent.sum())} decisions (users {users}, ...)",
            path=outcomes,
            expected="a reward for every decision of the log",
        )
    names = tuple(c[len(FEATURE_PREFIX) :] for c in log.columns if c.startswith(FEATURE_PREFIX))
    actions = tuple(c[2:] for c in log.columns if c.startswith("p_"))
    return DecisionLog(
        feature_names=names,
        action_names=actions,
        features=joined[[FEATURE_PREFIX + n for n in names]].to_numpy(dtype=np.float32),
        actions=joined["action_index"].to_numpy(dtype=np.int64),
        propensities=joined["propensity"].to_numpy(dtype=np.float64),
        rewards=joined["reward"].to_numpy(dtype=np.float64),
    )


def evaluate_export(
    log: DecisionLog, export: Path, exploration: Any, *, seed: int
) -> list[OffPolicyEstimate]:
    """IPS, SNIPS and DR estimates of the policy exported to ``export``, deciding with
    ``exploration`` (an :class:`~winback.export.runtime.exploration.Exploration`), on ``log``."""
    from winback.errors import ArtifactError
    from winback.export.runtime import ExportedArtifact

    candidate = ExportedArtifact.load(export)
    if candidate.feature_names != log.feature_names or candidate.actions != log.action_names:
        raise ArtifactError(
            f"{export}: the candidate reads {list(candidate.feature_names)} and chooses among "
            f"{list(candidate.actions)}; the log holds {list(log.feature_names)} and "
            f"{list(log.action_names)}"
        )
    allowed = candidate.masks(log.features).allowed
    decision = candidate.decide_at_prices(log.features, allowed, {})
    target = exploration.probabilities(decision.scores, allowed, decision.actions)
    on_logged = target[np.arange(len(log.actions)), log.actions]
    predicted = fit_reward_model(log.features, log.actions, log.rewards, len(log.action_names), seed=seed)
    generator = np.random.default_rng(seed)
    return [
        ips(log.rewards, log.propensities, on_logged, rng=generator),
        snips(log.rewards, log.propensities, on_logged, rng=generator),
        doubly_robust(log.rewards, log.propensities, log.actions, target, predicted, rng=generator),
    ]


@dataclass(frozen=True)
class Trajectories:
    """Logged decisions of ``n`` users over ``T`` periods, for multi-period estimates: (n, T) arrays."""

    rewards: np.ndarray
    propensities: np.ndarray
    """The logging policy's probability of each logged action."""
    target: np.ndarray
    """The candidate's probability of each logged action."""
    predicted: np.ndarray | None = None
    """A reward-to-go model's value of each logged (state, action): ``q(x_t, a_t)``, for WDR."""
    state_values: np.ndarray | None = None
    """The same model's value of each state under the candidate: ``sum_a pi(a | x_t) q(x_t, a)``."""

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.rewards, self.propensities, self.target)}
        if len(shapes) != 1 or self.rewards.ndim != 2:
            raise ConfigError(f"trajectories' arrays must share one (users, periods) shape, got {shapes}")
        weights(self.propensities.ravel(), self.target.ravel())  # checks the probabilities


def per_decision_weighted_is(
    log: Trajectories, *, gamma: float = 1.0, rng: np.random.Generator
) -> OffPolicyEstimate:
    """Per-decision weighted importance sampling: each period's rewards weighted by the cumulative
    weights up to that period, normalised over users (Precup, Sutton & Singh 2000; weighted form)."""
    return _trajectory_estimate("pdwis", log, gamma, rng, _pdwis)


def weighted_doubly_robust(
    log: Trajectories, *, gamma: float = 1.0, rng: np.random.Generator
) -> OffPolicyEstimate:
    """Weighted doubly robust (Thomas & Brunskill 2016): per-decision weighted IS with the model's
    values as a control variate; needs ``predicted`` and ``state_values``."""
    if log.predicted is None or log.state_values is None:
        raise ConfigError("weighted doubly robust needs the model's predicted and state_values")
    return _trajectory_estimate("wdr", log, gamma, rng, _wdr)


def _normalised(log: Trajectories, users: np.ndarray) -> np.ndarray:
    """(m, T) the resampled users' cumulative weights, each period's normalised to sum to one."""
    w = log.target[users] / log.propensities[users]
    cumulative = np.cumprod(w, axis=1)
    totals = cumulative.sum(axis=0)
    return np.divide(cumulative, totals, out=np.zeros_like(cumulative), where=totals > 0)


def _pdwis(log: Trajectories, users: np.ndarray, discounts: np.ndarray) -> float:
    return float((discounts * (_normalised(log, users) * log.rewards[users]).sum(axis=0)).sum())


def _wdr(log: Trajectories, users: np.ndarray, discounts: np.ndarray) -> float:
    assert log.predicted is not None and log.state_values is not None
    current = _normalised(log, users)
    before = np.hstack([np.full((len(users), 1), 1.0 / len(users)), current[:, :-1]])
    terms = current * log.rewards[users] - (current * log.predicted[users] - before * log.state_values[users])
    return float((discounts * terms.sum(axis=0)).sum())


def _trajectory_estimate(
    name: str,
    log: Trajectories,
    gamma: float,
    rng: np.random.Generator,
    statistic: Callable[[Trajectories, np.ndarray, np.ndarray], float],
    n_resamples: int = 2000,
) -> OffPolicyEstimate:
    """The estimate on every user, and its percentile bootstrap over users (trajectories)."""
    n, periods = log.rewards.shape
    discounts = gamma ** np.arange(periods)
    everyone = np.arange(n)
    value = statistic(log, everyone, discounts)
    resampled = [statistic(log, rng.integers(0, n, n), discounts) for _ in range(n_resamples)]
    low, high = np.percentile(resampled, [2.5, 97.5])
    final = np.prod(log.target / log.propensities, axis=1)
    return OffPolicyEstimate(name, value, float(low), float(high), n, _ess(final), float(final.max()))
