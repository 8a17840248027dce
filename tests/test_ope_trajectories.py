"""Multi-period off-policy evaluation: fitted Q evaluation by hand and on a small MDP of known value,
trajectories read from consecutive ``winback decide`` logs (and malformed ones refused), and
``winback ope --then``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import consecutive_decide_logs

from winback.benchmarks.ope import (
    Trajectories,
    evaluate_export_trajectories,
    fitted_q_evaluation,
    fqe_estimate,
    per_decision_weighted_is,
    read_trajectories,
    weighted_doubly_robust,
)
from winback.benchmarks.suite import sample_users
from winback.benchmarks.users_table import simulated_period
from winback.cli import EXIT_BAD_INPUT, app
from winback.errors import DataError
from winback.export.runtime import Exploration, ExportedArtifact
from winback.export.runtime.batch import FEATURE_PREFIX, USER, TableSpec


def test_fitted_q_evaluation_by_hand() -> None:
    """A state s in {0, 1} that stays put over two periods; rewards r_0 = (1, 3)[a], r_1 = (2, 5)[a] + s;
    the candidate draws both actions evenly, then takes action s. So v_1(s) = 2 + 4 s, and at gamma 0.5
    q_0(s, a) = (1, 3)[a] + 1 + 2 s and v_0(s) = 3 + 2 s; the trees fit these exactly."""
    rng = np.random.default_rng(0)
    n = 400  # 200 users a fold, about 50 of each (state, action): the trees' leaves hold 20 at least
    state = rng.integers(0, 2, n)
    actions = rng.integers(0, 2, (n, 2))
    rewards = np.column_stack(
        [np.array([1.0, 3.0])[actions[:, 0]], np.array([2.0, 5.0])[actions[:, 1]] + state]
    )
    target = np.stack([np.full((n, 2), 0.5), np.eye(2)[state]], axis=1)
    features = np.repeat(state[:, None, None], 2, axis=1).astype(np.float64)
    fitted = fitted_q_evaluation(features, actions, rewards, target, gamma=0.5, seed=0)
    expected_q = np.stack(
        [
            np.array([1.0, 3.0]) + 1 + 2 * state[:, None],
            np.array([2.0, 5.0]) + state[:, None],
        ],
        axis=1,
    )
    np.testing.assert_allclose(fitted.q, expected_q, atol=1e-6)
    np.testing.assert_allclose(
        fitted.predicted(actions), np.take_along_axis(expected_q, actions[..., None], 2)[..., 0], atol=1e-6
    )
    np.testing.assert_allclose(
        fitted.state_values(target), np.column_stack([3 + 2 * state, 2 + 4 * state]), atol=1e-6
    )
    estimate = fqe_estimate(fitted, target, rng=np.random.default_rng(0))
    assert estimate.estimator == "fqe" and estimate.value == pytest.approx(3 + 2 * state.mean(), abs=1e-6)
    assert estimate.low < estimate.value < estimate.high
    assert estimate.n == n and estimate.ess == n and estimate.max_weight == 1.0 and estimate.trusted


# A small MDP: a state s in {0, 1} (active or not), two actions (wait, contact), three periods.
MEAN_REWARD = np.array([[0.0, -0.2], [1.0, 1.4]])
"""Mean reward of [state, action]; each reward adds normal noise of standard deviation 0.5."""
ACTIVE_NEXT = np.array([[0.2, 0.4], [0.7, 0.9]])
"""Probability of s = 1 in the next period, of [state, action]."""
LOGGING = np.array([0.3, 0.7])
"""The logging policy's probability of contacting, of each state."""
CANDIDATE = np.array([0.8, 0.8])
PERIODS, GAMMA, USERS = 3, 0.9, 4000


def true_value(contact: np.ndarray) -> float:
    """The value of contacting with probabilities ``contact`` (of each state) from s_0 ~ Bernoulli(1/2),
    by dynamic programming."""
    value = np.zeros(2)
    for _ in range(PERIODS):
        q = MEAN_REWARD + GAMMA * (ACTIVE_NEXT * value[1] + (1 - ACTIVE_NEXT) * value[0])
        value = (1 - contact) * q[:, 0] + contact * q[:, 1]
    return float(value.mean())


def distribution(contact: np.ndarray, states: np.ndarray) -> np.ndarray:
    """(n, T, 2) the probability of each action of a policy contacting with ``contact`` of each state."""
    p = contact[states]
    return np.stack([1 - p, p], axis=-1)


@pytest.fixture(scope="module")
def mdp_log() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states, actions, rewards), each (USERS, PERIODS), of the logging policy on the MDP."""
    rng = np.random.default_rng(11)
    states = np.zeros((USERS, PERIODS), dtype=np.int64)
    actions, rewards = np.zeros_like(states), np.zeros((USERS, PERIODS))
    state = rng.integers(0, 2, USERS)
    for t in range(PERIODS):
        states[:, t] = state
        actions[:, t] = rng.random(USERS) < LOGGING[state]
        rewards[:, t] = MEAN_REWARD[state, actions[:, t]] + rng.normal(0.0, 0.5, USERS)
        state = (rng.random(USERS) < ACTIVE_NEXT[state, actions[:, t]]).astype(np.int64)
    return states, actions, rewards


def test_fqe_of_the_logging_policy_is_its_mean_return(mdp_log) -> None:
    """On-policy, FQE's value lands within one standard error of the mean discounted return (0.027
    here; over 30 samples of the MDP the two differed by 0.005 in standard deviation, 0.011 at most)."""
    states, actions, rewards = mdp_log
    target = distribution(LOGGING, states)
    fitted = fitted_q_evaluation(states[..., None], actions, rewards, target, gamma=GAMMA, seed=0)
    returns = (rewards * GAMMA ** np.arange(PERIODS)).sum(axis=1)
    standard_error = returns.std() / np.sqrt(USERS)
    estimate = fqe_estimate(fitted, target, rng=np.random.default_rng(0))
    assert estimate.value == pytest.approx(returns.mean(), abs=standard_error)


def test_fqe_recovers_a_candidates_true_value(mdp_log) -> None:
    """FQE, PDWIS and WDR (on FQE's model) land within 3.5 standard deviations of each estimator (over
    30 samples of the MDP: 0.029, 0.051, 0.034) of the candidate's true value, 1.916; FQE and WDR
    nearer it than the logging policy's, 1.799."""
    states, actions, rewards = mdp_log
    target = distribution(CANDIDATE, states)
    fitted = fitted_q_evaluation(states[..., None], actions, rewards, target, gamma=GAMMA, seed=0)
    trajectories = Trajectories(
        rewards,
        np.take_along_axis(distribution(LOGGING, states), actions[..., None], 2)[..., 0],
        np.take_along_axis(target, actions[..., None], 2)[..., 0],
        fitted.predicted(actions),
        fitted.state_values(target),
    )
    rng = np.random.default_rng(0)
    truth = true_value(CANDIDATE)
    assert truth == pytest.approx(1.916122) and true_value(LOGGING) == pytest.approx(1.799147)
    fqe = fqe_estimate(fitted, target, rng=rng)
    wdr = weighted_doubly_robust(trajectories, gamma=GAMMA, rng=rng)
    assert fqe.value == pytest.approx(truth, abs=0.1) and wdr.value == pytest.approx(truth, abs=0.12)
    assert per_decision_weighted_is(trajectories, gamma=GAMMA, rng=rng).value == pytest.approx(
        truth, abs=0.18
    )
    assert wdr.low <= truth <= wdr.high
    logging_value = true_value(LOGGING)
    assert all(abs(e.value - truth) < abs(e.value - logging_value) for e in (fqe, wdr))


# Consecutive winback decide logs of a few simulated users.
N_USERS = 100
EXPLORATION = Exploration("epsilon", epsilon=0.3)


@pytest.fixture(scope="module")
def decide_logs(scenario, tiny_export, tmp_path_factory) -> tuple[list[Path], Path]:
    """Three consecutive periods' winback decide logs of 100 users (the first from a simulated users
    table, each next from the previous one's states/), and an outcomes table (CSV, shuffled) of every
    decision's reward."""
    root = tmp_path_factory.mktemp("trajectories")
    spec = TableSpec.of(ExportedArtifact.load(tiny_export))
    simulator = scenario.simulator_for(3)
    state = sample_users(scenario.eval_users(), N_USERS, seed=3).copy()
    ids = np.array([f"u{i}" for i in range(N_USERS)], dtype=object)
    contacts = np.random.default_rng(3).integers(0, len(simulator.actions), N_USERS)
    users = simulated_period(simulator, state, contacts, spec, ids)
    logs = consecutive_decide_logs(tiny_export, users, root, 3, EXPLORATION)
    decisions = pd.concat([pq.read_table(log / "decisions").to_pandas() for log in logs])
    rng = np.random.default_rng(5)
    outcomes = decisions[[USER, "period"]].assign(reward=rng.normal(0.5, 1.0, len(decisions)))
    outcomes_path = root / "outcomes.csv"
    outcomes.sample(frac=1.0, random_state=rng).to_csv(outcomes_path, index=False)
    return logs, outcomes_path


def test_trajectories_are_read_from_consecutive_decide_logs(decide_logs) -> None:
    logs, outcomes_path = decide_logs
    log = read_trajectories(logs[:2], outcomes_path)
    first = pq.read_table(logs[0] / "decisions").to_pandas()
    second = pq.read_table(logs[1] / "decisions").to_pandas().set_index(USER).loc[first[USER]].reset_index()
    assert second[USER].tolist() != pq.read_table(logs[1] / "decisions").column(USER).to_pylist()
    assert log.user_ids.tolist() == first[USER].tolist()
    period = int(first["period"].iloc[0])
    assert log.periods.tolist() == [period, period + 1] and (second["period"] == period + 1).all()
    columns = [FEATURE_PREFIX + name for name in log.feature_names]
    assert log.features.shape == (N_USERS, 2, len(columns)) and log.features.dtype == np.float32
    for t, decisions in enumerate((first, second)):
        np.testing.assert_array_equal(log.features[:, t], decisions[columns].to_numpy(dtype=np.float32))
        np.testing.assert_array_equal(log.actions[:, t], decisions["action_index"])
        np.testing.assert_array_equal(log.propensities[:, t], decisions["propensity"])
    rewards = pd.read_csv(outcomes_path, dtype={USER: str}).set_index([USER, "period"])["reward"]
    for t in range(2):
        expected = rewards.loc[list(zip(log.user_ids, np.full(N_USERS, log.periods[t]), strict=True))]
        np.testing.assert_array_equal(log.rewards[:, t], expected.to_numpy())


def rewritten(log: Path, out: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """A copy of ``log``'s decisions at ``out``, changed by ``change``."""
    (out / "decisions").mkdir(parents=True)
    changed = change(pq.read_table(log / "decisions").to_pandas())
    pq.write_table(
        pa.Table.from_pandas(changed, preserve_index=False), out / "decisions" / "part-00000.parquet"
    )
    return out


def test_malformed_trajectories_are_refused(decide_logs, tmp_path: Path) -> None:
    logs, outcomes_path = decide_logs
    first = pq.read_table(logs[0] / "decisions").to_pandas()
    period = int(first["period"].iloc[0])
    with pytest.raises(DataError, match=rf"column 'period': period {period + 2} follows period {period} "):
        read_trajectories([logs[0], logs[2]], outcomes_path)
    with pytest.raises(
        DataError, match=rf"{re.escape(str(logs[0] / 'decisions'))}, column 'period': period {period} follows"
    ):
        read_trajectories([logs[1], logs[0]], outcomes_path)
    without = rewritten(logs[1], tmp_path / "without", lambda d: d[~d[USER].isin(["u3", "u7"])])
    with pytest.raises(
        DataError, match=r"without.decisions: 2 users of .* are not decided here \(users \['u3', 'u7'\]"
    ):
        read_trajectories([logs[0], without], outcomes_path)
    mixed = rewritten(
        logs[1], tmp_path / "mixed", lambda d: d.assign(period=d["period"].where(d.index != 4, 0))
    )
    with pytest.raises(
        DataError, match=rf"mixed.decisions, column 'period': holds decisions of periods \[0, {period + 1}\]"
    ):
        read_trajectories([logs[0], mixed], outcomes_path)
    fewer = rewritten(logs[1], tmp_path / "fewer", lambda d: d.drop(columns=[FEATURE_PREFIX + "fatigue"]))
    with pytest.raises(DataError, match=r"fewer.decisions: features .* differ from"):
        read_trajectories([logs[0], fewer], outcomes_path)
    outcomes = pd.read_csv(outcomes_path, dtype={USER: str})
    pd.concat([outcomes, outcomes.iloc[[2]]]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(
        DataError,
        match=rf"twice.csv, rows 3, {len(outcomes) + 1}, column 'user_id': a decision's outcome appears more",
    ):
        read_trajectories(logs[:2], tmp_path / "twice.csv")


def test_an_export_is_evaluated_over_trajectories(decide_logs, tiny_export) -> None:
    """The logging policy itself (weights of 1): PDWIS is the users' mean return, FQE's effective sample
    size is the users; a candidate that explores less is weighed."""
    logs, outcomes_path = decide_logs
    log = read_trajectories(logs, outcomes_path)
    same = evaluate_export_trajectories(log, tiny_export, EXPLORATION, gamma=0.5, seed=0)
    assert [e.estimator for e in same] == ["pdwis", "fqe", "wdr"]
    assert same[0].value == pytest.approx((log.rewards * 0.5 ** np.arange(3)).sum(axis=1).mean())
    assert same[0].ess == pytest.approx(N_USERS) and same[1].ess == N_USERS
    greedy = evaluate_export_trajectories(log, tiny_export, Exploration(), seed=0)
    assert all(np.isfinite([e.value, e.low, e.high]).all() for e in greedy)
    assert greedy[0].ess < N_USERS and greedy[0].max_weight > 1


def test_winback_ope_then(decide_logs, tiny_export, tmp_path: Path, capsys) -> None:
    logs, outcomes_path = decide_logs
    common = ["--candidate", str(tiny_export), "--exploration", "epsilon", "--epsilon", "0.3"]
    with pytest.raises(SystemExit) as exit_info:
        app(["ope", str(logs[0]), str(outcomes_path), "--then", str(logs[1]), "--then", str(logs[2]), *common,
             "--out", str(tmp_path / "estimates.json")])  # fmt: skip
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "100 users decided in every one" in printed
    assert "pdwis |" in printed and "fqe |" in printed and "wdr |" in printed
    estimates = json.loads((tmp_path / "estimates.json").read_text())
    log = read_trajectories(logs, outcomes_path)
    assert estimates[0]["value"] == pytest.approx(log.rewards.sum(axis=1).mean())
    with pytest.raises(SystemExit) as exit_info:
        app(["ope", str(logs[0]), str(outcomes_path), "--then", str(logs[2]), *common])
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert f"{logs[2] / 'decisions'}, column 'period'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        app(["ope", str(logs[0]), str(outcomes_path), "--gamma", "0.5", *common])
    assert exit_info.value.code == EXIT_BAD_INPUT and "--then" in capsys.readouterr().err
