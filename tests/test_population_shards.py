"""A scenario whose users come from a log's panel in user shards: the log's users, read a shard at a
time; a benchmark on it in shards gives the table of one run on all of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.benchmarks.backends import LocalBackend
from winback.benchmarks.suite import BenchConfig, evaluation_units, run_benchmark
from winback.cli import app
from winback.data.io import read_event_log, write_event_log
from winback.data.panel import build_panel
from winback.data.shards import ingest_log
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.artifact import save_model
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.errors import ConfigError
from winback.scenarios.population import warm_start_period
from winback.scenarios.scenario import load_scenario

SHOP = SyntheticConfig(n_users=400, n_periods=30, seed=5)
SHARDS = 4


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``shop.csv``, its panel in shards ``panel/``, a model ``model/`` fitted on the log, and the
    scenarios ``log.toml`` and ``shards.toml`` of its users (the log, the panel)."""
    root = tmp_path_factory.mktemp("shop")
    write_event_log(generate_synthetic_log(SHOP).log, root / "shop.csv")
    panel = build_panel(read_event_log(root / "shop.csv"), period="week")
    model = LSTMDecayModel(LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)).fit(panel, until=20, seed=0)
    save_model(model, root / "model")
    ingest_log(root / "shop.csv", root / "panel", shards=SHARDS)
    for name, log in (("log", "shop.csv"), ("shards", "panel")):
        text = f'horizon = 5\neval_share = 0.4\n[population]\nlog = "{log}"\n[model]\nartifact = "model"\n'
        (root / f"{name}.toml").write_text(text)
    return root


def test_the_panel_in_shards_holds_the_logs_users_split_alike(shop: Path) -> None:
    from_log, from_shards = load_scenario(str(shop / "log.toml")), load_scenario(str(shop / "shards.toml"))
    assert warm_start_period(from_shards.population_config, from_shards.model_config) == warm_start_period(
        from_log.population_config, from_log.model_config
    ), "the same last complete week"
    for split in ("train_users", "validation_users", "eval_users"):
        log_users, shard_users = getattr(from_log, split)(), getattr(from_shards, split)()
        order = np.argsort(log_users.keys)
        at = np.searchsorted(log_users.keys[order], shard_users.keys)
        assert shard_users.n_users == log_users.n_users > 0
        np.testing.assert_array_equal(log_users.keys[order][at], shard_users.keys)
        np.testing.assert_array_equal(log_users.recency[order][at], shard_users.recency)
        np.testing.assert_allclose(log_users.decay.hidden[order][at], shard_users.decay.hidden, atol=1e-6)
    assert from_shards.population().n_users == from_log.population().n_users
    held_out = [from_shards.eval_users_in_shards(i, i + 1) for i in range(SHARDS)]
    np.testing.assert_array_equal(np.concatenate([u.keys for u in held_out]), from_shards.eval_users().keys)
    first = from_shards.train_users(at_least=1)
    assert 0 < first.n_users < from_shards.train_users().n_users, "the first shard only"


def test_a_benchmark_in_shards_of_the_panel_gives_the_table_of_one_run(shop: Path) -> None:
    config = BenchConfig(
        scenario=str(shop / "shards.toml"),
        policies=("no_contact", "recency_rule", "random", "ab_test"),
        seeds=2,
        tuning_seeds=1,
        tuning_users=100,
        quick=True,
    )
    whole = run_benchmark(config, shop / "whole", progress=False)
    sharded_config = dataclasses.replace(config, shard_users=20)
    assert evaluation_units(sharded_config, load_scenario(config.scenario)) == (SHARDS, 1)
    backend = LocalBackend(2, progress=False)
    try:
        sharded = run_benchmark(sharded_config, shop / "sharded", progress=False, backend=backend)
    finally:
        backend.close()
    columns = [c for c in whole.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(sharded.table[columns], whole.table[columns], rtol=1e-6)
    notes = (shop / "sharded" / "leaderboard.md").read_text()
    assert "ab_test: run on all users in one task" in notes


def test_a_panel_in_shards_takes_no_mapping_sample_or_user_sample(shop: Path) -> None:
    for line in ('mapping = "online_retail"', "size = 10", "new_user_share = 0.1"):
        text = f'[population]\nlog = "{shop / "panel"}"\n{line}\n[model]\nartifact = "{shop / "model"}"\n'
        path = shop / "bad.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=f"population.{line.split()[0]} = .*not with a panel in shards"):
            load_scenario(str(path))
    config = BenchConfig(scenario=str(shop / "shards.toml"), eval_users=10, shard_users=20)
    with pytest.raises(ConfigError, match="eval_users = 10: a population in shards"):
        evaluation_units(config, load_scenario(config.scenario))


def test_a_panel_on_another_grid_than_the_models_is_refused_naming_both(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = build_panel(read_event_log(shop / "shop.csv"), period="week").spec.origin_date
    other = shop / "panel-other-origin"
    ingest_log(shop / "shop.csv", other, shards=2, origin=origin - pd.Timedelta(days=7))
    path = shop / "other.toml"
    path.write_text(f'[population]\nlog = "{other}"\n[model]\nartifact = "{shop / "model"}"\n')
    with pytest.raises(SystemExit) as stop:
        app(["bench", "--scenario", str(path), "--out", str(shop / "out"), "--quick", "--no-progress"])
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert "different panel layouts" in message and str(other) in message
