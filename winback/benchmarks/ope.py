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
  a control variate, ``- w~_it q(x_it, a_it) + w~_i,t-1 v(x_it)``;
- FQE (:func:`fitted_q_evaluation`, Le, Voloshin & Yue 2019, "Batch Policy Learning under
  Constraints"): a model of each period's value-to-go under the candidate, fitted backwards from the
  last period to ``q_t(x_t, a_t) ~ r_t + gamma sum_a pi(a | x_t+1) q_t+1(x_t+1, a)``; the estimate is
  the users' mean of ``v(x_0) = sum_a pi(a | x_0) q_0(x_0, a)``, without weights, and the same ``q``
  and ``v`` serve WDR;
- the learned simulator (:func:`simulator_returns`): the model-based estimate, the candidate run over
  the logged periods in a scenario whose decay model is refit on the shop's event log grown by those
  periods (the explored contacts teach it their effects), from the logged users warm-started at the
  first logged period. No weights: it is the one of these that does not fade with the periods when
  the candidate differs from the logging policy.

:func:`read_log` reads one period's ``winback decide`` log and its outcomes, :func:`read_trajectories`
the logs of consecutive periods; :func:`evaluate_export` and :func:`evaluate_export_trajectories`
estimate an exported policy's value on them.

The effective sample size ``(sum w)^2 / sum w^2`` (of the whole trajectories' weights, over several
periods) says how many logged decisions the estimate really rests on; below :data:`MIN_ESS_SHARE` of
the log the estimate is marked untrustworthy.

Written here: the Open Bandit Pipeline and SCOPE-RL do not install on Python 3.11 with numpy 2; each
estimator is tested against values computed by hand on tiny logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as scipy_stats

from winback.benchmarks.stats import Estimate, mean_ci, paired_difference
from winback.errors import ArtifactError, ConfigError, DataError
from winback.streams import key_positions, user_keys

if TYPE_CHECKING:
    import pandas as pd

    from winback.agents.base import Policy
    from winback.export.runtime import ExportedArtifact
    from winback.scenarios.scenario import Scenario

MIN_ESS_SHARE = 0.01
"""An estimate whose weights' effective sample size is below this share of the log is untrustworthy."""


@dataclass(frozen=True)
class OffPolicyEstimate:
    """One estimator's estimate of the candidate's value, with its diagnostics: per decision on one
    period's log, per user (the discounted sum of the periods' rewards) on trajectories."""

    estimator: str
    value: float
    low: float
    high: float
    """95% bootstrap interval over the logged decisions (users)."""
    n: int
    """Logged decisions (one period) or users (trajectories)."""
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
    low, high = _percentile_interval(
        (weighted, w), lambda a, b, axis=-1: a.sum(axis=axis) / np.maximum(b.sum(axis=axis), 1e-300), rng
    )
    value = float(weighted.sum() / w.sum())
    return OffPolicyEstimate("snips", value, low, high, len(w), _ess(w), float(w.max()))


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
    terms, w = _doubly_robust_terms(rewards, propensities, actions, target_distribution, predicted)
    return _mean_estimate("dr", terms, w, rng)


def doubly_robust_difference(
    rewards: np.ndarray,
    propensities: np.ndarray,
    actions: np.ndarray,
    candidate: np.ndarray,
    current: np.ndarray,
    predicted: np.ndarray,
    *,
    rng: np.random.Generator,
) -> Estimate:
    """The doubly robust estimate of the candidate's value per decision minus the current policy's,
    on one log of the same users over several periods: ``rewards``, ``propensities`` and ``actions``
    (T, U), ``candidate``, ``current`` (each policy's probabilities of every action) and
    ``predicted`` (T, U, A). Paired by decision, its interval resamples users (a user's periods stay
    together): a launch gate ships the candidate when the lower bound is above 0."""
    shape = np.shape(rewards)
    if len(shape) != 2:
        raise ConfigError(f"rewards {shape} (expected (periods, users))")
    flat = [np.reshape(a, (-1, *np.shape(a)[2:])) for a in (rewards, propensities, actions)]
    per_policy = [
        _doubly_robust_terms(
            *flat,
            np.reshape(pi, (-1, np.shape(pi)[-1])),
            np.reshape(predicted, (-1, np.shape(predicted)[-1])),
        )[0]
        for pi in (candidate, current)
    ]
    return paired_difference(per_policy[0].reshape(shape), per_policy[1].reshape(shape), rng=rng)


def _doubly_robust_terms(
    rewards: np.ndarray,
    propensities: np.ndarray,
    actions: np.ndarray,
    target_distribution: np.ndarray,
    predicted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) each decision's doubly robust term and (n,) its importance weight."""
    pi, q = np.asarray(target_distribution, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.int64)
    if pi.shape != q.shape or pi.ndim != 2 or actions.shape != (len(pi),):
        raise ConfigError(
            f"target {pi.shape}, predictions {q.shape}, actions {actions.shape} "
            "(expected (n, A), (n, A), (n,))"
        )
    rows = np.arange(len(actions))
    w = weights(propensities, pi[rows, actions])
    return (pi * q).sum(axis=1) + w * (_rewards(rewards, w) - q[rows, actions]), w


def _rewards(rewards: np.ndarray, w: np.ndarray) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.shape != w.shape or not np.all(np.isfinite(r)):
        raise ConfigError(f"rewards {r.shape} must be finite, one per logged decision ({w.shape})")
    return r


def _percentile_interval(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], rng: np.random.Generator
) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``statistic`` (vectorised, ``axis`` keyword) over the rows
    of ``samples`` (each (n,), resampled together)."""
    interval = scipy_stats.bootstrap(
        samples, statistic, paired=True, vectorized=True, method="percentile", n_resamples=2000, rng=rng
    ).confidence_interval
    return float(interval.low), float(interval.high)


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
    features, actions = np.asarray(features, dtype=np.float64), np.asarray(actions, dtype=np.int64)
    n = len(actions)
    fold = np.random.default_rng(seed).integers(0, folds, n)
    predicted = np.zeros((n, n_actions))
    for k in range(folds):
        train, held = fold != k, fold == k
        if not held.any():
            continue
        model = _regressor(seed)
        model.fit(_with_action(features[train], actions[train], n_actions), np.asarray(rewards)[train])
        predicted[held] = _every_action(model, features[held], n_actions)
    return predicted


def _regressor(seed: int) -> Any:
    """The reward and value models' regressor: scikit-learn's gradient-boosted trees."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=200, random_state=seed)


def _with_action(features: np.ndarray, actions: np.ndarray, n_actions: int) -> np.ndarray:
    return np.hstack([features, np.eye(n_actions)[actions]])


def _every_action(model: Any, features: np.ndarray, n_actions: int) -> np.ndarray:
    """(m, A) a fitted model's prediction of every action in each of the (m, F) states."""
    m = len(features)
    every = np.vstack([_with_action(features, np.full(m, a), n_actions) for a in range(n_actions)])
    return model.predict(every).reshape(n_actions, m).T


def _at_actions(values: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(...) the entries of ``values`` (..., A) at ``actions`` (...)."""
    return np.take_along_axis(values, np.asarray(actions, dtype=np.int64)[..., None], axis=-1)[..., 0]


@dataclass(frozen=True)
class DecisionLog:
    """A ``winback decide`` log joined with what followed each decision."""

    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    model_sha256: str
    """The decay model whose features the log holds (the policy card's ``decay_model.content_sha256``)."""
    features: np.ndarray
    """(n, F) float32 the features the logging policy saw."""
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray


def read_log(decisions: Path, outcomes: Path) -> DecisionLog:
    """The decisions of a ``winback decide`` output directory (``decisions/``) joined on (user_id,
    period) with an outcomes table (Parquet or CSV: ``user_id``, ``period``, ``reward``, one row per
    decision); errors name the file, the rows and the column."""
    return _decision_log(_with_rewards(_read_decisions(decisions), _read_outcomes(outcomes), outcomes))


def _read_decisions(decisions: Path) -> pd.DataFrame:
    """The ``decisions/`` parts of a ``winback decide --out`` directory, as one frame."""
    import pyarrow.parquet as pq

    from winback.export.runtime.batch import USER

    parts = decisions / "decisions"
    if not parts.is_dir():
        raise DataError("no decisions/ here", path=decisions, expected="a winback decide --out directory")
    frame = pq.read_table(parts).to_pandas()
    needed = (USER, "period", "action_index", "propensity", "model_sha256")
    if missing := [column for column in needed if column not in frame.columns]:
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            path=parts,
            expected="the decisions winback decide writes",
        )
    return frame


def _read_outcomes(outcomes: Path) -> pd.DataFrame:
    """The outcomes table, checked: ``user_id`` (as text), ``period``, a finite ``reward``, one row per
    user and period."""
    import pandas as pd
    import pyarrow as pa

    from winback.export.runtime.batch import BATCH_ROWS, USER, read_blocks

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
    return found[[USER, "period", "reward"]]


def _with_rewards(log: pd.DataFrame, found: pd.DataFrame, outcomes: Path) -> pd.DataFrame:
    """The decisions ``log`` (in its order) with the ``reward`` of each from the outcomes ``found`` (read
    from ``outcomes``); refuses decisions without one."""
    from winback.export.runtime.batch import USER

    joined = log.merge(found, on=[USER, "period"], how="left", validate="one_to_one")
    if (absent := joined["reward"].isna().to_numpy()).any():
        users = joined.loc[absent, USER].head(5).tolist()
        raise DataError(
            f"no outcome for {int(absent.sum())} decisions (users {users}, ...)",
            path=outcomes,
            expected="a reward for every decision of the log",
        )
    return joined


def _names(log: pd.DataFrame) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The features (``x_<feature>`` columns) and actions (``p_<action>``) of a decisions frame."""
    from winback.export.runtime.batch import FEATURE_PREFIX

    features = tuple(c[len(FEATURE_PREFIX) :] for c in log.columns if c.startswith(FEATURE_PREFIX))
    return features, tuple(c[2:] for c in log.columns if c.startswith("p_"))


def _decision_log(joined: pd.DataFrame) -> DecisionLog:
    """The arrays of a decisions frame with its rewards."""
    from winback.export.runtime.batch import FEATURE_PREFIX

    feature_names, action_names = _names(joined)
    models = joined["model_sha256"].unique()
    if len(models) != 1:
        raise ConfigError(f"a decisions log of {len(models)} decay models (one decide run has one)")
    return DecisionLog(
        feature_names=feature_names,
        action_names=action_names,
        model_sha256=str(models[0]),
        features=joined[[FEATURE_PREFIX + n for n in feature_names]].to_numpy(dtype=np.float32),
        actions=joined["action_index"].to_numpy(dtype=np.int64),
        propensities=joined["propensity"].to_numpy(dtype=np.float64),
        rewards=joined["reward"].to_numpy(dtype=np.float64),
    )


def candidate_distribution(
    export: Path,
    exploration: Any,
    features: np.ndarray,
    log: DecisionLog | TrajectoryLog,
) -> np.ndarray:
    """(n, A) the probability of every action, in each of the (n, F) logged states, of the policy
    exported to ``export`` deciding with ``exploration`` (an
    :class:`~winback.export.runtime.exploration.Exploration`); refuses a policy of other features,
    actions or decay model than the ``log``'s: its features at the logged decisions are not logged."""
    from winback.export.runtime import ExportedArtifact

    candidate = ExportedArtifact.load(export)
    if candidate.feature_names != log.feature_names or candidate.actions != log.action_names:
        raise ArtifactError(
            f"{export}: the candidate reads {list(candidate.feature_names)} and chooses among "
            f"{list(candidate.actions)}; the log holds {list(log.feature_names)} and {list(log.action_names)}"
        )
    model = candidate.card["decay_model"]["content_sha256"]
    if model != log.model_sha256:
        raise ArtifactError(
            f"{export}: the candidate's decay model ({model[:12]}) is not the log's "
            f"({log.model_sha256[:12]}): the log holds the features the logging policy's model computed, "
            "not what the candidate would have seen at those decisions"
        )
    return artifact_distribution(candidate, exploration, features)


def artifact_distribution(artifact: ExportedArtifact, exploration: Any, features: np.ndarray) -> np.ndarray:
    """(n, A) the probability of every action, in each of the (n, F) states, of a loaded export
    deciding with ``exploration`` under its masks."""
    allowed = artifact.masks(features).allowed
    decision = artifact.decide_at_prices(features, allowed, {})
    return exploration.probabilities(decision.scores, allowed, decision.actions)


def log_reward_model(log: DecisionLog, *, seed: int) -> np.ndarray:
    """(n, A) :func:`fit_reward_model`'s cross-fitted predictions on ``log``."""
    return fit_reward_model(log.features, log.actions, log.rewards, len(log.action_names), seed=seed)


def evaluate_export(
    log: DecisionLog, export: Path, exploration: Any, *, seed: int, predicted: np.ndarray | None = None
) -> list[OffPolicyEstimate]:
    """IPS, SNIPS and DR estimates of the value per decision of the policy exported to ``export``,
    deciding with ``exploration`` (an :class:`~winback.export.runtime.exploration.Exploration`), on
    ``log``; DR on ``predicted`` (default: :func:`log_reward_model` of ``seed``)."""
    target = candidate_distribution(export, exploration, log.features, log)
    on_logged = _at_actions(target, log.actions)
    predicted = log_reward_model(log, seed=seed) if predicted is None else predicted
    generator = np.random.default_rng(seed)
    return [
        ips(log.rewards, log.propensities, on_logged, rng=generator),
        snips(log.rewards, log.propensities, on_logged, rng=generator),
        doubly_robust(log.rewards, log.propensities, log.actions, target, predicted, rng=generator),
    ]


def export_versus_baseline(
    log: DecisionLog,
    export: Path,
    baseline: Path,
    exploration: Any,
    *,
    seed: int,
    predicted: np.ndarray | None = None,
) -> Estimate:
    """The launch gate's figure: the doubly robust value per decision of the policy exported to
    ``export`` minus that of ``baseline`` (the policy deployed now), both deciding with
    ``exploration``, paired by decision on ``log``, with a 95% interval over users; on ``predicted``
    (default: :func:`log_reward_model` of ``seed``)."""
    targets = [candidate_distribution(path, exploration, log.features, log) for path in (export, baseline)]
    predicted = log_reward_model(log, seed=seed) if predicted is None else predicted
    one = [a[None] for a in (log.rewards, log.propensities, log.actions, *targets, predicted)]
    return doubly_robust_difference(*one, rng=np.random.default_rng(seed))


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


@dataclass(frozen=True)
class FittedQ:
    """A cross-fitted model of each period's value-to-go under a candidate (:func:`fitted_q_evaluation`)."""

    q: np.ndarray
    """(n, T, A) the value-to-go of every action in each user's logged states, from the models fitted
    on the other fold's users."""

    def predicted(self, actions: np.ndarray) -> np.ndarray:
        """(n, T) the value of the logged ``actions`` (n, T): WDR's ``q(x_t, a_t)``."""
        return _at_actions(self.q, actions)

    def state_values(self, target: np.ndarray) -> np.ndarray:
        """(n, T) each logged state's value under the candidate of distribution ``target`` (n, T, A):
        WDR's ``v(x_t) = sum_a pi(a | x_t) q(x_t, a)``."""
        pi = np.asarray(target, dtype=np.float64)
        if pi.shape != self.q.shape:
            raise ConfigError(f"target {pi.shape} (expected the model's (n, T, A) {self.q.shape})")
        return (pi * self.q).sum(axis=2)


def fitted_q_evaluation(
    features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    target: np.ndarray,
    *,
    gamma: float = 1.0,
    seed: int,
    folds: int = 2,
) -> FittedQ:
    """Fitted Q evaluation over finite-horizon trajectories: ``features`` (n, T, F), ``actions`` (n, T)
    and ``rewards`` (n, T) logged, ``target`` (n, T, A) the candidate's probability of every action in
    each logged state. Backwards from the last period, one regressor a period (gradient-boosted trees
    on the features and the action) is fitted to ``r_t + gamma sum_a target_t+1(a) q_t+1(x_t+1, a)``.
    Cross-fitted: the users are split into ``folds`` at random (``seed``) and each fold's values come
    from models fitted on the other folds' users only, so that no user's own outcomes predict them
    (as WDR needs)."""
    x, pi = np.asarray(features, dtype=np.float64), np.asarray(target, dtype=np.float64)
    a, r = np.asarray(actions, dtype=np.int64), np.asarray(rewards, dtype=np.float64)
    if x.ndim != 3 or pi.ndim != 3 or a.shape != r.shape or a.shape != x.shape[:2] or a.shape != pi.shape[:2]:
        raise ConfigError(
            f"features {x.shape}, actions {a.shape}, rewards {r.shape}, target {pi.shape} "
            "(expected (n, T, F), (n, T), (n, T), (n, T, A))"
        )
    n, periods, n_actions = pi.shape
    if not (np.all((a >= 0) & (a < n_actions)) and np.all(np.isfinite(r)) and np.all((pi >= 0) & (pi <= 1))):
        raise ConfigError(
            f"actions must be in [0, {n_actions}), rewards finite and target probabilities in [0, 1]"
        )
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"gamma = {gamma} (allowed: [0, 1])")
    if not 2 <= folds <= n:
        raise ConfigError(f"{folds} folds of {n} users (allowed: 2 <= folds <= users)")
    fold = np.random.default_rng(seed).permutation(n) % folds
    q = np.zeros((n, periods, n_actions))
    for k in range(folds):
        train, held = fold != k, fold == k
        value_to_go = np.zeros(int(train.sum()))
        for t in reversed(range(periods)):
            model = _regressor(seed)
            model.fit(_with_action(x[train, t], a[train, t], n_actions), r[train, t] + gamma * value_to_go)
            q[held, t] = _every_action(model, x[held, t], n_actions)
            value_to_go = (pi[train, t] * _every_action(model, x[train, t], n_actions)).sum(axis=1)
    return FittedQ(q)


def fqe_estimate(fitted: FittedQ, target: np.ndarray, *, rng: np.random.Generator) -> OffPolicyEstimate:
    """Fitted Q evaluation's estimate of the candidate of distribution ``target`` (n, T, A): the mean
    over users of the first state's value ``sum_a pi(a | x_0) q_0(x_0, a)``, with a percentile bootstrap
    interval over users of those values. The interval holds the fitted model fixed, so it leaves out
    the model's own variance and understates the uncertainty. No importance weights: the effective
    sample size is the users and the largest weight 1."""
    values = fitted.state_values(target)[:, 0]
    low, high = _percentile_interval((values,), np.mean, rng)
    return OffPolicyEstimate("fqe", float(values.mean()), low, high, len(values), float(len(values)), 1.0)


@dataclass(frozen=True)
class TrajectoryLog:
    """The ``winback decide`` logs of consecutive periods joined with their outcomes: the users decided
    in every period, in the first log's order."""

    user_ids: np.ndarray
    """(n,) object the user ids."""
    periods: np.ndarray
    """(T,) int64 the periods, consecutive."""
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    model_sha256: str
    """The decay model whose features the logs hold."""
    features: np.ndarray
    """(n, T, F) float32 the features the logging policy saw."""
    actions: np.ndarray
    """(n, T) int64 the logged actions."""
    propensities: np.ndarray
    """(n, T) the logging policy's probability of each logged action."""
    rewards: np.ndarray
    """(n, T) what followed each decision."""

    def decisions(self, t: int) -> DecisionLog:
        """Period ``t``'s decisions, as one period's log."""
        return DecisionLog(
            feature_names=self.feature_names,
            action_names=self.action_names,
            model_sha256=self.model_sha256,
            features=self.features[:, t],
            actions=self.actions[:, t],
            propensities=self.propensities[:, t],
            rewards=self.rewards[:, t],
        )


def read_trajectories(logs: Sequence[Path], outcomes: Path) -> TrajectoryLog:
    """The decisions of ``winback decide`` output directories, one a period in period order, joined on
    (user_id, period) with an outcomes table (as :func:`read_log`). Every user of the first log must be
    decided in each later one (users first decided later are left out); errors name the file, and the
    rows, column or users."""
    from winback.export.runtime.batch import USER

    if not logs:
        raise ConfigError("no decide logs: give one directory a period")
    found = _read_outcomes(outcomes)
    first = _read_decisions(logs[0])
    users, names, periods = first[USER].to_numpy(), _names(first), [_one_period(first, logs[0])]
    joined = [_with_rewards(first, found, outcomes)]
    for before, directory in pairwise(logs):
        frame = _read_decisions(directory)
        if _names(frame) != names:
            raise DataError(
                f"features {list(_names(frame)[0])} and actions {list(_names(frame)[1])} differ from "
                f"{logs[0]}'s {list(names[0])} and {list(names[1])}",
                path=directory / "decisions",
                expected="the same features and actions in every period's log",
            )
        period = _one_period(frame, directory)
        if period != periods[-1] + 1:
            raise DataError(
                f"period {period} follows period {periods[-1]} ({before})",
                path=directory / "decisions",
                column="period",
                expected=f"the logs of consecutive periods, in order: period {periods[-1] + 1} here",
            )
        indexed = frame.set_index(USER)
        if (absent := ~np.isin(users, indexed.index)).any():
            raise DataError(
                f"{int(absent.sum())} users of {logs[0]} are not decided here "
                f"(users {users[absent][:5].tolist()}, ...)",
                path=directory / "decisions",
                expected="every user in every period: trajectories must be complete",
            )
        periods.append(period)
        joined.append(_with_rewards(indexed.loc[users].reset_index(), found, outcomes))
    by_period = [_decision_log(frame) for frame in joined]
    if len(models := {p.model_sha256 for p in by_period}) != 1:
        raise ConfigError(f"the logs hold the features of {len(models)} decay models (expected one)")
    return TrajectoryLog(
        user_ids=users,
        periods=np.array(periods, dtype=np.int64),
        feature_names=names[0],
        action_names=names[1],
        model_sha256=by_period[0].model_sha256,
        features=np.stack([p.features for p in by_period], axis=1),
        actions=np.stack([p.actions for p in by_period], axis=1),
        propensities=np.stack([p.propensities for p in by_period], axis=1),
        rewards=np.stack([p.rewards for p in by_period], axis=1),
    )


def _one_period(log: pd.DataFrame, directory: Path) -> int:
    """The period that every decision of ``log`` (read from ``directory``) is of."""
    periods = np.unique(log["period"].to_numpy())
    if len(periods) != 1:
        raise DataError(
            f"holds decisions of periods {periods[:5].tolist()}",
            path=directory / "decisions",
            column="period",
            expected="one period: a winback decide run decides one",
        )
    return int(periods[0])


def evaluate_export_trajectories(
    log: TrajectoryLog, export: Path, exploration: Any, *, gamma: float = 1.0, seed: int
) -> list[OffPolicyEstimate]:
    """PDWIS, FQE and WDR estimates of the value per user over the log's periods (the sum of the
    periods' rewards, discounted by ``gamma``) of the policy exported to ``export``, deciding with
    ``exploration``; WDR's values are FQE's."""
    n, periods, n_features = log.features.shape
    states = log.features.reshape(n * periods, n_features)
    target = candidate_distribution(export, exploration, states, log).reshape(
        n, periods, len(log.action_names)
    )
    fitted = fitted_q_evaluation(log.features, log.actions, log.rewards, target, gamma=gamma, seed=seed)
    trajectories = Trajectories(
        rewards=log.rewards,
        propensities=log.propensities,
        target=_at_actions(target, log.actions),
        predicted=fitted.predicted(log.actions),
        state_values=fitted.state_values(target),
    )
    generator = np.random.default_rng(seed)
    return [
        per_decision_weighted_is(trajectories, gamma=gamma, rng=generator),
        fqe_estimate(fitted, target, rng=generator),
        weighted_doubly_robust(trajectories, gamma=gamma, rng=generator),
    ]


SIMULATOR_SEEDS = 3
"""Seeds of the learned simulator's runs (common random numbers: the same in every policy's)."""


def simulator_returns(
    scenario: Scenario,
    policies: Sequence[Policy],
    user_ids: np.ndarray,
    first_period: int,
    periods: int,
    *,
    seeds: int = SIMULATOR_SEEDS,
) -> list[np.ndarray]:
    """(S, U) each policy's return per user (undiscounted) over ``periods`` periods from ``first_period``
    in the learned simulator of ``scenario``, for the users of ``user_ids`` warm-started at that period,
    under common random numbers. The scenario's ``[population] log`` must hold the periods before
    ``first_period`` and its decay model be fitted on it: refit on the shop's event log grown by the
    logged periods, it has learned the effects of the contacts they explored. The policies see the
    features the scenario's decay model computes."""
    from winback.benchmarks.rollout import run_policy
    from winback.scenarios.population import model_layout

    if not scenario.population_config.log:
        raise ConfigError(
            f"scenario {scenario.name!r} has no [population] log: the learned simulator's estimate "
            "warm-starts the logged users on the shop's event log"
        )
    first = model_layout(scenario.model_config).period_start(first_period)
    where = dataclasses.replace(scenario.population_config, until=first.isoformat())
    logged = dataclasses.replace(scenario, population_config=where, horizon=periods)
    population = logged.population()
    found, there = key_positions(population.keys, user_keys(user_ids))
    if not there.all():
        raise ConfigError(
            f"{int(np.sum(~there)):,} of the log's users are not among the users of {where.log} born "
            f"before {first} (users {np.asarray(user_ids)[~there][:5].tolist()}, ...): the scenario's log "
            "must be the shop's event log that holds the logged users and periods"
        )
    users = population.take(found)
    return [
        run_policy(policy, logged, users, list(range(seeds)), category="agent").metrics["net_value"]
        for policy in policies
    ]


def simulator_estimate(returns: np.ndarray, *, seed: int, name: str = "simulator") -> OffPolicyEstimate:
    """The learned simulator's estimate from a policy's (S, U) :func:`simulator_returns`: the mean and
    its 95% interval over users (each user's seeds averaged). The interval holds the refit model fixed:
    the model's own error is not in it."""
    estimate = mean_ci(returns, rng=np.random.default_rng(seed))
    n = returns.shape[1]
    return OffPolicyEstimate(name, estimate.mean, estimate.low, estimate.high, n, float(n), 1.0)
