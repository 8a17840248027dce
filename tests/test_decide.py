"""Batch decisions (``winback decide``): the simulator's users decided as the simulator sees them,
propensities that sum to one and respect the floor, identical re-runs, resumed runs, malformed
tables refused with the file, row and column; and ``winback ope`` on the log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serve import loaded_training_modules

from winback.benchmarks.ope import evaluate_export, export_versus_baseline, read_log
from winback.benchmarks.suite import sample_users
from winback.benchmarks.users_table import simulated_period
from winback.cli import app
from winback.errors import ArtifactError, ConfigError, DataError
from winback.export.runtime import Exploration, ExportedArtifact
from winback.export.runtime.batch import USER, TableSpec, decide_table
from winback.simulator.features import observe

N_USERS = 300


@pytest.fixture(scope="module")
def world(scenario, tiny_export) -> tuple[pa.Table, np.ndarray, object]:
    """A users table of 300 evaluation users after one simulated period of random contacts (their state
    before it, what they did and received in it), the simulator's observations after it, and the
    simulator's state after it."""
    artifact = ExportedArtifact.load(tiny_export)
    spec = TableSpec.of(artifact)
    simulator = scenario.simulator_for(3)
    state = sample_users(scenario.eval_users(), N_USERS, seed=3).copy()
    rng = np.random.default_rng(3)
    for _ in range(2):  # coupons valid, contacts recent
        simulator.step(state, rng.integers(0, len(simulator.actions), state.n_users))
    ids = np.array([f"u{i}" for i in range(state.n_users)], dtype=object)
    actions = rng.integers(0, len(simulator.actions), state.n_users)
    table = simulated_period(simulator, state, actions, spec, ids)
    return table, observe(simulator, state), state


def users_file(world, tmp_path: Path, suffix: str = ".parquet") -> Path:
    path = tmp_path / f"users{suffix}"
    if suffix == ".parquet":
        pq.write_table(world[0], path)
    else:
        pacsv.write_csv(world[0], path)
    return path


def read(out: Path, what: str) -> pa.Table:
    return pq.read_table(out / what)


def test_a_batch_decides_as_the_simulator_sees_its_users(world, tiny_export, tmp_path: Path) -> None:
    table, observed, state = world
    manifest = decide_table(
        tiny_export,
        users_file(world, tmp_path),
        tmp_path / "out",
        exploration=Exploration(),
        seed=0,
        batch_rows=128,
    )
    assert manifest["complete"] and manifest["users"] == N_USERS and len(manifest["parts"]) == 3
    decisions, states = read(tmp_path / "out", "decisions"), read(tmp_path / "out", "states")
    artifact = ExportedArtifact.load(tiny_export)
    # The simulator's interest adds the lift of earlier contacts under its response priors, which the
    # stored state does not carry (as in winback serve): the batch's interest is the forecast alone.
    seen = observed.copy()
    seen[:, artifact.feature_names.index("interest")] = state.forecast.p_active
    expected = artifact.decide(seen, artifact.masks(seen).allowed).actions
    assert decisions.column(USER).to_pylist() == table.column(USER).to_pylist()
    np.testing.assert_array_equal(decisions.column("action_index").to_numpy(), expected)
    np.testing.assert_array_equal(decisions.column("propensity").to_numpy(), 1.0)
    np.testing.assert_array_equal(decisions.column("period").to_numpy(), state.decay.period)
    np.testing.assert_array_equal(states.column("since_push_new_items").to_numpy(), state.since_contact[:, 0])
    np.testing.assert_allclose(states.column("fatigue").to_numpy(), state.fatigue, rtol=1e-6)
    np.testing.assert_allclose(states.column("hidden_0").to_numpy(), state.decay.hidden[:, 0], atol=1e-5)


def test_propensities_sum_to_one_respect_the_floor_and_name_the_action_sent(
    world, tiny_export, tmp_path: Path
) -> None:
    exploration = Exploration("epsilon", epsilon=0.3, floor=0.05)
    decide_table(tiny_export, users_file(world, tmp_path), tmp_path / "out", exploration=exploration, seed=1)
    decisions = read(tmp_path / "out", "decisions").to_pandas()
    actions = ExportedArtifact.load(tiny_export).actions
    p = decisions[[f"p_{a}" for a in actions]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all((p == 0) | (p >= 0.05 - 1e-12)), "every allowed action at least the floor"
    chosen = p[np.arange(len(p)), decisions["action_index"].to_numpy()]
    np.testing.assert_array_equal(decisions["propensity"].to_numpy(), chosen)
    assert (chosen > 0).all() and decisions["action"].tolist() == [
        actions[i] for i in decisions["action_index"]
    ]


def test_a_rerun_is_identical_and_a_stopped_run_resumes(world, tiny_export, tmp_path: Path) -> None:
    users = users_file(world, tmp_path)
    settings = {
        "exploration": Exploration("softmax", temperature=2.0, floor=0.01),
        "seed": 7,
        "batch_rows": 100,
    }
    first = decide_table(tiny_export, users, tmp_path / "a", **settings)
    again = decide_table(tiny_export, users, tmp_path / "a", **settings)  # the same directory: nothing to add
    assert again["parts"] == first["parts"]

    def stop(part: int, rows: int) -> None:
        if part == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        decide_table(tiny_export, users, tmp_path / "b", **settings, on_part=stop)
    resumed = decide_table(tiny_export, users, tmp_path / "b", **settings)
    assert resumed["complete"] and len(resumed["parts"]) == 3
    for what in ("decisions", "states"):
        assert read(tmp_path / "a", what).equals(read(tmp_path / "b", what)), what
    other_seed = decide_table(tiny_export, users, tmp_path / "c", **{**settings, "seed": 8})
    assert other_seed["complete"]
    assert not read(tmp_path / "a", "decisions").equals(read(tmp_path / "c", "decisions"))
    with pytest.raises(ConfigError, match="seed differ"):
        decide_table(tiny_export, users, tmp_path / "a", **{**settings, "seed": 8})


def test_csv_and_parquet_give_the_same_decisions(world, tiny_export, tmp_path: Path) -> None:
    for suffix in (".parquet", ".csv"):
        decide_table(
            tiny_export,
            users_file(world, tmp_path, suffix),
            tmp_path / suffix[1:],
            exploration=Exploration("epsilon", epsilon=0.5),
            seed=2,
        )
    parquet, csv = read(tmp_path / "parquet", "decisions"), read(tmp_path / "csv", "decisions")
    assert parquet.column("action_index").equals(csv.column("action_index"))


def test_a_user_named_twice_is_refused(world, tiny_export, tmp_path: Path) -> None:
    table = world[0]
    ids = table.column(USER).to_pylist()
    ids[250] = ids[10]
    doubled = table.set_column(0, USER, pa.array(ids))
    path = tmp_path / "users.parquet"
    pq.write_table(doubled, path)
    with pytest.raises(DataError, match=r"rows 11, 251, column 'user_id': a user appears more than once"):
        decide_table(tiny_export, path, tmp_path / "out", exploration=Exploration(), seed=0)


def test_limits_hold_and_propensities_stay_those_of_the_actions_sent(
    world, tiny_export, tmp_path: Path
) -> None:
    """Limits binding on two contacts: priced on a sample, capped as a backstop; no limit is exceeded,
    in any prefix of the parts, and the probabilities recorded are still a distribution whose value at
    the action sent is its propensity."""
    users = users_file(world, tmp_path)
    exploration = Exploration("epsilon", epsilon=0.1)
    actions = ExportedArtifact.load(tiny_export).actions
    decide_table(tiny_export, users, tmp_path / "free", exploration=exploration, seed=2, batch_rows=100)
    free = read(tmp_path / "free", "decisions").to_pandas()["action"].value_counts()
    busiest = [a for a in free.index if a != "none"][:2]
    limits = {a: int(free[a]) // 3 for a in busiest}
    priced_rows: list[int] = []
    manifest = decide_table(
        tiny_export, users, tmp_path / "limited", exploration=exploration, seed=2, batch_rows=100,
        limits=limits, sample_users=200, on_priced=priced_rows.append,
    )  # fmt: skip
    decisions = read(tmp_path / "limited", "decisions").to_pandas()
    pricing = manifest["pricing"]
    assert pricing["users"] == N_USERS and pricing["sample_users"] == 200 and sum(priced_rows) == N_USERS
    for action, limit in limits.items():
        assert pricing["prices"][action] > 0, "a binding limit has a price"
        assert (decisions["action"] == action).sum() <= limit
        sent = np.cumsum([part["used"][action] for part in manifest["parts"]])
        rows = np.cumsum([part["rows"] for part in manifest["parts"]])
        assert np.all(sent <= np.floor(limit * rows / N_USERS)), "every prefix of the parts within its share"
    p = decisions[[f"p_{a}" for a in actions]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(decisions["propensity"], p[np.arange(len(p)), decisions["action_index"]])
    assert (decisions["propensity"] > 0).all()
    closed = decide_table(
        tiny_export, users, tmp_path / "closed", exploration=exploration, seed=2, limits={busiest[0]: 0}
    )
    shut = read(tmp_path / "closed", "decisions").to_pandas()
    assert (shut["action"] != busiest[0]).all() and (shut[f"p_{busiest[0]}"] == 0).all()
    assert closed["parts"][0]["used"] == {busiest[0]: 0}


def test_a_priced_agent_is_shown_the_price_that_fits(world, tiny_priced_export, tmp_path: Path) -> None:
    artifact = ExportedArtifact.load(tiny_priced_export)
    users = users_file(world, tmp_path)
    decide_table(tiny_priced_export, users, tmp_path / "free", exploration=Exploration(), seed=0)
    free = read(tmp_path / "free", "decisions").to_pandas()["action"]
    priced = [a for actions in artifact.price_actions.values() for a in actions]
    action = max(priced, key=lambda a: (free == a).sum())
    asked = int((free == action).sum())
    assert asked >= 4, "the tiny agent asks for a priced contact at price 0"
    manifest = decide_table(
        tiny_priced_export,
        users,
        tmp_path / "out",
        exploration=Exploration(),
        seed=0,
        limits={action: asked // 2},
    )
    price = manifest["pricing"]["prices"][action]
    assert 0 < price <= artifact.price_input.ceiling
    sent = (read(tmp_path / "out", "decisions").to_pandas()["action"] == action).sum()
    assert sent <= asked // 2


def test_a_stopped_run_with_limits_resumes_to_the_same_output(world, tiny_export, tmp_path: Path) -> None:
    users = users_file(world, tmp_path)
    action = ExportedArtifact.load(tiny_export).actions[1]
    settings = {"exploration": Exploration("softmax"), "seed": 3, "batch_rows": 100, "limits": {action: 20}}
    whole = decide_table(tiny_export, users, tmp_path / "whole", **settings)

    def stop(part: int, rows: int) -> None:
        if part == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        decide_table(tiny_export, users, tmp_path / "resumed", on_part=stop, **settings)
    resumed = decide_table(tiny_export, users, tmp_path / "resumed", **settings)
    assert resumed["parts"] == whole["parts"] and resumed["pricing"] == whole["pricing"]
    assert read(tmp_path / "resumed", "decisions").equals(read(tmp_path / "whole", "decisions"))
    with pytest.raises(ConfigError, match="limits differ"):
        decide_table(tiny_export, users, tmp_path / "whole", **{**settings, "limits": {action: 21}})


CORRUPTIONS = {"empty": None, "negative": -1, "fraction": 0.5, "text": "lots"}
"""What a cell of the table is changed to."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    column=st.sampled_from(
        ["period", "count_purchase", "spend", "received", "since_coupon", "opted_out", "hidden_3"]
    ),
    row=st.integers(0, N_USERS - 1),
    corruption=st.sampled_from(sorted(CORRUPTIONS)),
)
def test_a_malformed_table_names_the_file_row_and_column(
    world, tiny_export, tmp_path_factory, column: str, row: int, corruption: str
) -> None:
    frame = world[0].to_pandas()
    if column in ("hidden_3", "spend") and corruption in ("negative", "fraction"):
        return  # valid values there (a hidden state may be negative, a spend a fraction)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = CORRUPTIONS[corruption]
    tmp = tmp_path_factory.mktemp("bad")
    path = tmp / "users.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as error:
        decide_table(tiny_export, path, tmp / "out", exploration=Exploration(), seed=0)
    message = str(error.value)
    assert str(path) in message and f"column '{column}'" in message, message
    assert f"row {row + 1}," in message, message


def test_the_cli_decides_and_refuses_bad_input_with_exit_code_2(
    world, tiny_export, tmp_path: Path, capsys
) -> None:
    users = users_file(world, tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        app(
            [
                "decide",
                str(tiny_export),
                str(users),
                "--out",
                str(tmp_path / "out"),
                "--exploration",
                "epsilon",
                "--epsilon",
                "0.1",
                "--no-progress",
            ]
        )
    assert exit_info.value.code == 0 and f"decided for {N_USERS} users" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        app(["decide", str(tiny_export), str(users), "--out", str(tmp_path / "limited"), "--limit",
             "coupon=7", "--no-progress"])  # fmt: skip
    assert exit_info.value.code == 0 and "coupon: " in capsys.readouterr().out
    assert json.loads((tmp_path / "limited" / "decide.json").read_text())["settings"]["limits"] == {
        "coupon": 7
    }
    for argv in (
        ["decide", str(tiny_export), str(tmp_path / "none.parquet"), "--out", str(tmp_path / "x")],
        ["decide", str(tiny_export), str(users), "--out", str(tmp_path / "y"), "--exploration", "greedy"],
        ["decide", str(tiny_export), str(users), "--out", str(tmp_path / "z"), "--floor", "0.9"],
        ["decide", str(tiny_export), str(users), "--out", str(tmp_path / "l"), "--limit", "coupon=many"],
        ["decide", str(tiny_export), str(users), "--out", str(tmp_path / "m"), "--limit", "gift=3"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            app([*argv, "--no-progress"])
        assert exit_info.value.code == 2, argv


def test_winback_decide_imports_no_training_module(world, tiny_export, tmp_path: Path) -> None:
    """A batch job needs the runtime only: numpy, pyarrow, onnxruntime."""
    users = users_file(world, tmp_path)
    code = f"""
from winback.cli import app
try:
    app(["decide", {str(tiny_export)!r}, {str(users)!r}, "--out", {str(tmp_path / "out")!r}, "--no-progress"])
except SystemExit as exit_info:
    assert exit_info.code == 0, exit_info.code
"""
    modules, printed = loaded_training_modules(code)
    assert modules == [] and f"decided for {N_USERS} users" in printed


def test_off_policy_estimates_from_a_decide_log(world, tiny_export, scenario, tmp_path: Path, capsys) -> None:
    """The logging policy itself is estimated at the log's mean reward (weights of 1); the log and the
    outcomes are checked; the CLI prints every estimator."""
    exploration = Exploration("epsilon", epsilon=0.3)
    decide_table(tiny_export, users_file(world, tmp_path), tmp_path / "log", exploration=exploration, seed=4)
    decisions = read(tmp_path / "log", "decisions").to_pandas()
    rewards = np.random.default_rng(4).normal(0.5, 1.0, len(decisions))
    outcomes = decisions[[USER, "period"]].assign(reward=rewards)
    outcomes_path = tmp_path / "outcomes.csv"
    outcomes.to_csv(outcomes_path, index=False)
    log = read_log(tmp_path / "log", outcomes_path)
    np.testing.assert_allclose(log.rewards, rewards)
    same = evaluate_export(log, tiny_export, exploration, seed=0)
    assert [e.estimator for e in same] == ["ips", "snips", "dr"]
    assert same[0].value == pytest.approx(rewards.mean()) and same[0].ess == pytest.approx(len(rewards))
    greedy = evaluate_export(log, tiny_export, Exploration(), seed=0)
    assert all(np.isfinite([e.value, e.low, e.high]).all() for e in greedy)
    assert greedy[0].ess < len(rewards) and greedy[0].max_weight > 1
    outcomes.iloc[[3, 7]].to_csv(tmp_path / "few.csv", index=False)
    with pytest.raises(DataError, match="no outcome for 298 decisions"):
        read_log(tmp_path / "log", tmp_path / "few.csv")
    pd.concat([outcomes, outcomes.iloc[[5]]]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(DataError, match=r"rows 6, 301, column 'user_id': a decision's outcome appears more"):
        read_log(tmp_path / "log", tmp_path / "twice.csv")
    outcomes.assign(reward=outcomes["reward"].where(outcomes.index != 9, np.nan)).to_csv(
        tmp_path / "nan.csv", index=False
    )
    with pytest.raises(DataError, match=r"row 10, column 'reward'"):
        read_log(tmp_path / "log", tmp_path / "nan.csv")
    with pytest.raises(SystemExit) as exit_info:
        app(["ope", str(tmp_path / "log"), str(outcomes_path), "--candidate", str(tiny_export)])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "ips |" in printed and "snips |" in printed and "dr |" in printed


def test_a_launch_gate_and_a_candidate_of_another_decay_model(
    world, tiny_export, tmp_path: Path, capsys
) -> None:
    """``--baseline`` pairs the candidate with the deployed policy (itself: a gain of exactly 0, not
    shipped); a log holding another decay model's features is refused with exit code 2."""
    exploration = Exploration("epsilon", epsilon=0.3)
    decide_table(tiny_export, users_file(world, tmp_path), tmp_path / "log", exploration=exploration, seed=4)
    decisions = read(tmp_path / "log", "decisions").to_pandas()
    outcomes = decisions[[USER, "period"]].assign(
        reward=np.random.default_rng(5).normal(0.5, 1.0, len(decisions))
    )
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    gain = export_versus_baseline(
        read_log(tmp_path / "log", tmp_path / "outcomes.csv"), tiny_export, tiny_export, Exploration(), seed=0
    )
    assert gain.mean == gain.low == gain.high == 0.0
    command = ["ope", str(tmp_path / "log"), str(tmp_path / "outcomes.csv"), "--candidate", str(tiny_export)]
    with pytest.raises(SystemExit) as exit_info:
        app([*command, "--baseline", str(tiny_export), "--out", str(tmp_path / "gate.json")])
    assert exit_info.value.code == 0
    assert "candidate - baseline (dr, paired) | 0.0000" in capsys.readouterr().out
    gate = json.loads((tmp_path / "gate.json").read_text())[-1]
    assert gate["estimator"] == "dr_difference" and gate["ship"] is False
    with pytest.raises(SystemExit) as exit_info:
        app([*command, "--baseline", str(tiny_export), "--then", str(tmp_path / "log")])
    assert exit_info.value.code == 2
    parts = tmp_path / "log" / "decisions"
    for part in parts.iterdir():
        frame = pq.read_table(part).to_pandas()
        pq.write_table(pa.Table.from_pandas(frame.assign(model_sha256="0" * 64), preserve_index=False), part)
    stripped = tmp_path / "stripped" / "decisions"
    stripped.mkdir(parents=True)
    frame = pq.read_table(parts).to_pandas().drop(columns="model_sha256")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), stripped / "part-0.parquet")
    with pytest.raises(DataError, match="missing column model_sha256"):
        read_log(tmp_path / "stripped", tmp_path / "outcomes.csv")
    with pytest.raises(ArtifactError, match="decay model"):
        evaluate_export(
            read_log(tmp_path / "log", tmp_path / "outcomes.csv"), tiny_export, Exploration(), seed=0
        )
    with pytest.raises(SystemExit) as exit_info:
        app(command)
    assert exit_info.value.code == 2
    assert "is not the log's" in capsys.readouterr().err
