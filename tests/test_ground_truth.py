"""Policies run in a ground-truth world, their users tracked by the decay model fitted on its log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from winback.agents.baselines import FixedCadence, NoContact
from winback.agents.oracle import Oracle
from winback.benchmarks.ground_truth import run_in_world
from winback.data.io import write_event_log
from winback.data.panel import build_panel
from winback.data.synthetic import GroundTruthWorld, WorldConfig, WorldLog, WorldState
from winback.decay_model.artifact import save_model
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.errors import ConfigError
from winback.scenarios.scenario import Scenario, read_scenario

WEEKS, HORIZON = 30, 8


@dataclasses.dataclass(frozen=True)
class Shop:
    world: GroundTruthWorld
    state: WorldState
    """The world where its log ends."""
    log: WorldLog
    scenario: Scenario


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
    return Shop(world, state, log, read_scenario(root / "shop.toml"))


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
