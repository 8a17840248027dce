"""Policies run in a ground-truth world, their users tracked by the decay model fitted on its log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import consecutive_decide_logs, exported
from tiny import TRAINING

from winback.agents.base import DecisionContext, Policy
from winback.agents.baselines import FixedCadence, NoContact
from winback.agents.oracle import Oracle
from winback.agents.training import TrainConfig, train
from winback.benchmarks.ground_truth import BatchWorld, run_in_world
from winback.benchmarks.ope import simulator_returns
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.users_table import simulated_period
from winback.cli import EXIT_BAD_INPUT, app
from winback.data.io import EventLogWriter, write_event_log
from winback.data.panel import build_panel
from winback.data.synthetic import EventRecorder, GroundTruthWorld, WorldConfig, WorldLog, WorldState
from winback.decay_model.artifact import save_model
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.errors import ConfigError
from winback.export.policy import load_policy_dir
from winback.export.runtime import Exploration, ExportedArtifact
from winback.export.runtime.batch import USER, TableSpec
from winback.scenarios.population import cached_population
from winback.scenarios.scenario import Scenario, load_scenario, read_scenario
from winback.simulator.state import SimState

WEEKS, HORIZON = 30, 8


@dataclasses.dataclass(frozen=True)
class Shop:
    world: GroundTruthWorld
    state: WorldState
    """The world where its log ends."""
    log: WorldLog
    scenario: Scenario
    path: Path
    """The scenario's file."""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("world")
    world = GroundTruthWorld(WorldConfig(n_users=400, birth_weeks=WEEKS, seed=4))
    state = world.start()
    log = world.write_log(state, WEEKS, contact_rates=0.2, seed=0)
    write_event_log(log.log, root / "log.parquet")
    panel = build_panel(log.log, period="week", origin=log.origin, end=log.end)
    model = LSTMDecayModel(LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)).fit(panel, until=WEEKS)
    save_model(model, root / "model")
    (root / "shop.toml").write_text(
        f'horizon = {HORIZON}\n[population]\nlog = "log.parquet"\nuntil = "{log.end}"\n'
        '[model]\nartifact = "model"\n'
    )
    return Shop(world, state, log, read_scenario(root / "shop.toml"), root / "shop.toml")


def test_a_policy_earns_in_the_world_what_the_world_pays_for_its_actions(shop: Shop) -> None:
    users = shop.scenario.population()
    where = {key: i for i, key in enumerate(shop.world.keys.tolist())}
    index = np.array([where[key] for key in users.keys.tolist()])
    assert users.n_users > 100
    never = run_in_world(NoContact(), shop.scenario, users, shop.world, shop.state)
    replay = shop.state.copy()
    expected = shop.world.run(replay, HORIZON, lambda _: np.zeros(shop.world.n_users, dtype=np.int64))
    np.testing.assert_allclose(never.metrics["net_value"][0], expected[index])
    assert shop.state.period == WEEKS, "the world's state is copied, not stepped"


def test_contacts_reach_the_world_and_its_answers_are_tracked(shop: Shop) -> None:
    users = shop.scenario.population()
    pushed = run_in_world(FixedCadence("push_new_items", 2), shop.scenario, users, shop.world, shop.state)
    never = run_in_world(NoContact(), shop.scenario, users, shop.world, shop.state)
    contacts = pushed.metrics["contacts_push_new_items"][0]
    assert contacts.sum() > users.n_users, "most users get a push every other week"
    assert np.all(contacts <= HORIZON / 2 + 1)
    costs = pushed.metrics["contact_costs"][0]
    np.testing.assert_allclose(costs, contacts * shop.world.config.push_new_items_cost)
    assert pushed.metrics["revenue"].sum() != never.metrics["revenue"].sum()


def test_references_and_foreign_users_are_refused(shop: Shop) -> None:
    users = shop.scenario.population()
    with pytest.raises(ConfigError, match="cannot run in another world"):
        run_in_world(Oracle(), shop.scenario, users, shop.world, shop.state)
    other = GroundTruthWorld(dataclasses.replace(shop.world.config, n_users=50))
    with pytest.raises(ConfigError, match="not the world's"):
        run_in_world(NoContact(), shop.scenario, users, other, other.start())
    with pytest.raises(ConfigError, match="week 0"):
        run_in_world(NoContact(), shop.scenario, users, shop.world, shop.world.start())


def test_the_scenario_is_read_from_the_files_it_names(shop: Shop) -> None:
    assert Path(shop.scenario.model_config.artifact).name == "model"


class AfterAQuietWeek(Policy):
    """``policy`` from the second period on, no contact in the first."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.name = policy, policy.name

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self.policy.reset(context)

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        chosen = self.policy.act(observations, masks, period)
        return np.zeros_like(chosen) if period == 0 else chosen


@pytest.fixture(scope="module")
def export_dir(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An agent trained on the shop's scenario, exported."""
    run = tmp_path_factory.mktemp("shop_agent")
    train(TrainConfig(algo="maskable_ppo", scenario=str(shop.path), **TRAINING), run, progress=False)
    return exported(run, tmp_path_factory.mktemp("shop_export") / "artifact")


@pytest.fixture(scope="module")
def artifact(export_dir: Path) -> ExportedArtifact:
    return ExportedArtifact.load(export_dir)


def test_a_batch_job_in_the_world_earns_what_the_tracked_users_earn(
    shop: Shop, artifact: ExportedArtifact
) -> None:
    """Users kept as a batch job keeps them (a users table read by the export's decay model and
    rules) see, and so earn under a rule, what the simulator's tracking of them gives."""
    users = shop.scenario.population()
    rule = FixedCadence("push_new_items", 2)
    tracked = run_in_world(AfterAQuietWeek(rule), shop.scenario, users, shop.world, shop.state)
    batch = BatchWorld(shop.world, shop.state, artifact, users)
    rule.reset(
        DecisionContext(artifact.feature_names, artifact.actions, users.n_users, np.random.default_rng(0),
                        HORIZON, users.keys)
    )  # fmt: skip
    earned = batch.quiet_net.copy()
    for period in range(1, HORIZON):
        observed = batch.observe()
        earned += batch.play(observed, rule.act(observed.observations, observed.allowed, period))
    assert shop.state.period == WEEKS, "the world's state is copied, not stepped"
    np.testing.assert_allclose(earned, tracked.metrics["net_value"][0], rtol=1e-9)
    assert tracked.metrics["contacts_push_new_items"][0].sum() > users.n_users
    again = batch.fork(luck=99)
    assert again.state is not batch.state and again.world.streams.seed == 99


def test_a_users_table_warm_started_on_the_grown_log_continues_the_deployed_one(
    shop: Shop, artifact: ExportedArtifact, tmp_path: Path
) -> None:
    """The weeks a batch world plays, recorded as an event log and appended to the shop's, warm-start
    a users table that sees the users as the deployed table does: a retrained export can take over."""
    users = shop.scenario.population()
    recorder = EventRecorder(shop.world, arm="batch")
    batch = BatchWorld(shop.world, shop.state, artifact, users, record=recorder.add)
    rule = FixedCadence("push_new_items", 2)
    rule.reset(
        DecisionContext(artifact.feature_names, artifact.actions, users.n_users, np.random.default_rng(0),
                        HORIZON, users.keys)
    )  # fmt: skip
    sent = 0
    for period in range(3):
        observed = batch.observe()
        batch.play(observed, rule.act(observed.observations, observed.allowed, period))
        sent += int(np.count_nonzero(batch.ended.delivered))
    weeks = recorder.event_log(np.random.default_rng(0), source="test", notes="three weeks")
    contacts = weeks.events[weeks.events["event_type"] == ""]
    assert recorder.n_weeks == 4 and len(contacts) == sent > 0 and set(contacts["arm"]) == {"batch"}
    with EventLogWriter(tmp_path / "grown.parquet") as writer:
        writer.write(shop.log.log.events)
        writer.write(weeks.events)

    def stored_at(period: int) -> SimState:
        until = (dt.date.fromisoformat(shop.world.config.start) + dt.timedelta(weeks=period)).isoformat()
        where = dataclasses.replace(
            shop.scenario.population_config, log=str(tmp_path / "grown.parquet"), until=until
        )
        return cached_population(where, shop.scenario.model_config)

    stored = batch.state.period - 1
    table = batch.table_of(artifact, stored_at(stored))
    again, deployed = table.observe(batch.ended), batch.observe()
    np.testing.assert_allclose(again.observations, deployed.observations, atol=1e-4)
    np.testing.assert_array_equal(again.allowed, deployed.allowed)
    batch.deploy(table)
    with pytest.raises(ConfigError, match="stores periods"):
        batch.deploy(batch.table_of(artifact, stored_at(stored - 1)))
    with pytest.raises(ConfigError, match="missing"):
        batch.table_of(artifact, users.take(np.arange(10)))


def test_the_learned_simulator_runs_the_logged_users_over_the_logged_periods(shop: Shop) -> None:
    """:func:`simulator_returns` finds the log's users by id (in the log's order) among the scenario's,
    warm-started at the first logged period, and runs each policy for the logged periods under common
    random numbers; users, periods or a scenario it cannot place are refused."""
    users = shop.scenario.population()
    first = int(users.period[0])
    where = {int(key): i for i, key in enumerate(users.keys)}
    chosen = np.arange(0, shop.world.n_users, 7)[::-1]
    ids = np.asarray(shop.world.user_ids)[chosen].astype(str)
    index = np.array([where[int(key)] for key in shop.world.keys[chosen]])
    policies = [FixedCadence("push_new_items", 2), NoContact()]
    returns = simulator_returns(shop.scenario, policies, ids, first, 3, seeds=2)
    for policy, found in zip(policies, returns, strict=True):
        expected = run_policy(
            policy, dataclasses.replace(shop.scenario, horizon=3), users.take(index), [0, 1]
        )
        np.testing.assert_allclose(found, expected.metrics["net_value"])
    assert returns[0].shape == (2, len(ids)) and returns[0].mean() != returns[1].mean()
    with pytest.raises(ConfigError, match=r"1 of the log's users are not among .* \(users \['nobody'\]"):
        simulator_returns(shop.scenario, policies, np.array(["nobody", *ids[:3]]), first, 3)
    with pytest.raises(ConfigError, match=r"population\.until"):
        simulator_returns(shop.scenario, policies, ids, first + 5, 3)
    with pytest.raises(ConfigError, match=r"no \[population\] log"):
        simulator_returns(load_scenario("default"), policies, ids, first, 3)


def test_winback_ope_with_the_learned_simulator(shop: Shop, export_dir: Path, tmp_path: Path, capsys) -> None:
    """Two periods' decide logs of the shop's users, the first of its log's last week: --simulator adds
    the learned simulator's estimate over the logged periods, or with --ahead over the periods after
    them; with --baseline (the export itself) a paired difference of exactly 0, not shipped."""
    start = dt.date.fromisoformat(shop.world.config.start) + dt.timedelta(weeks=WEEKS - 2)
    where = dataclasses.replace(shop.scenario.population_config, until=start.isoformat())
    state = cached_population(where, shop.scenario.model_config).copy()
    by_key = {int(key): user for key, user in zip(shop.world.keys, shop.world.user_ids, strict=True)}
    ids = np.array([str(by_key[int(key)]) for key in state.keys], dtype=object)
    spec = TableSpec.of(ExportedArtifact.load(export_dir))
    contacts = np.zeros(state.n_users, dtype=np.int64)
    users = simulated_period(shop.scenario.simulator_for(3), state, contacts, spec, ids)
    logs = consecutive_decide_logs(export_dir, users, tmp_path, 2, Exploration("epsilon", epsilon=0.3))
    decisions = pd.concat([pq.read_table(log / "decisions").to_pandas() for log in logs])
    assert decisions["period"].min() == WEEKS - 1
    outcomes = decisions[[USER, "period"]].assign(
        reward=np.random.default_rng(5).normal(0.5, 1.0, len(decisions))
    )
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    agent = load_policy_dir(export_dir)
    common = [str(tmp_path / "outcomes.csv"), "--candidate", str(export_dir), "--simulator", str(shop.path),
              "--simulator-seeds", "2", "--baseline", str(export_dir),
              "--out", str(tmp_path / "estimates.json")]  # fmt: skip
    for command, rows, first, periods in (
        (["--then", str(logs[1])], ["pdwis", "fqe", "wdr", "simulator"], WEEKS - 1, 2),
        (["--ahead", "3"], ["ips", "snips", "dr", "simulator_next_3"], WEEKS, 3),
    ):
        with pytest.raises(SystemExit) as exit_info:
            app(["ope", str(logs[0]), *common, *command])
        assert exit_info.value.code == 0
        printed = capsys.readouterr().out
        assert f"candidate - baseline ({rows[-1]}, paired) | 0.0000" in printed
        estimates = json.loads((tmp_path / "estimates.json").read_text())
        found = [e["estimator"] for e in estimates]
        assert found[: len(rows)] == rows and found[-1] == f"{rows[-1]}_difference"
        assert estimates[-1]["ship"] is False and estimates[-1]["mean"] == 0.0
        expected = simulator_returns(shop.scenario, [agent], ids, first, periods, seeds=2)[0]
        assert estimates[len(rows) - 1]["value"] == pytest.approx(expected.mean())
    assert "launch gate: do not ship" in printed and found[4] == "dr_difference"
    for wrong, says in (
        (["--gamma", "0.5", "--then", str(logs[1])], "greedily"),
        (["--exploration", "epsilon", "--epsilon", "0.1"], "greedily"),
        (["--ahead", "-1"], "--ahead -1"),
        (["--simulator-seeds", "0"], "--simulator-seeds 0"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            app(["ope", str(logs[0]), *common, *wrong])
        assert exit_info.value.code == EXIT_BAD_INPUT and says in capsys.readouterr().err
