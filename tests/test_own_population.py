"""A scenario whose users come from a shop's own event log, living by a decay model fitted on it.

A tiny synthetic log (view / cart / purchase, randomized contacts) and a tiny LSTM fitted on it are
made once for the module; scenario files name both by relative paths.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny import TRAINING

from winback.cli import app
from winback.data.io import read_event_log, write_event_log
from winback.data.panel import PeriodPanel, build_panel
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.artifact import save_model
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.envs.defaults import DEFAULT_MODEL
from winback.errors import ConfigError
from winback.export.runtime.card import CARD_FILE
from winback.scenarios.population import build_population, describe_population, warm_start_period
from winback.scenarios.scenario import load_scenario, loads
from winback.simulator.core import Simulator
from winback.simulator.population import warm_start

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")  # as in test_serve.py
    from fastapi.testclient import TestClient

SHOP = SyntheticConfig(n_users=300, n_periods=30, seed=11)
HORIZON = 6


@dataclasses.dataclass(frozen=True)
class Shop:
    """The shop's files: ``data/shop.csv``, ``models/shop`` and ``scenarios/shop.toml`` in ``root``."""

    root: Path
    panel: PeriodPanel
    """The log's own weekly panel (origin: its first day, the model's origin)."""
    model: LSTMDecayModel

    @property
    def log(self) -> Path:
        return self.root / "data" / "shop.csv"

    @property
    def scenario(self) -> Path:
        return self.root / "scenarios" / "shop.toml"

    def write(self, name: str, text: str) -> Path:
        """A scenario file ``name`` beside ``shop.toml``."""
        path = self.root / "scenarios" / name
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("shop")
    for folder in ("data", "models", "scenarios"):
        (root / folder).mkdir()
    write_event_log(generate_synthetic_log(SHOP).log, root / "data" / "shop.csv")
    panel = build_panel(read_event_log(root / "data" / "shop.csv"), period="week")
    model = LSTMDecayModel(LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)).fit(panel, until=20, seed=0)
    save_model(model, root / "models" / "shop")
    shop = Shop(root, panel, model)
    population = '[population]\nlog = "../data/shop.csv"\n'
    shop.write("shop.toml", f'horizon = {HORIZON}\n{population}[model]\nartifact = "../models/shop"\n')
    return shop


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of the CLI."""
    with pytest.raises(SystemExit) as stop:
        app(argv)
    return int(stop.value.code or 0), capsys.readouterr().err


# ------------------------------------------------------------------------------------------ population
def test_the_population_is_the_logs_users_warm_started_at_the_end_of_its_last_complete_week(
    shop: Shop,
) -> None:
    scenario = load_scenario(str(shop.scenario))
    assert scenario.population_config.log == str(shop.log)
    assert scenario.model_config.artifact == str(shop.root / "models" / "shop")
    last = pd.Timestamp(shop.panel.spec.period_start(shop.panel.spec.n_periods)) - pd.Timedelta(days=1)
    ends_on_a_sunday = read_event_log(shop.log).events["timestamp"].max().normalize() == last
    until = warm_start_period(scenario.population_config, scenario.model_config)
    assert until == SHOP.n_periods - (0 if ends_on_a_sunday else 1)
    population = scenario.population()
    expected = warm_start(Simulator(shop.model), shop.panel, until=until)
    np.testing.assert_array_equal(population.keys, expected.keys)
    np.testing.assert_array_equal(population.decay.hidden, expected.decay.hidden)
    assert (
        population.n_users == int(shop.panel.born_before(until).sum()) and (population.period == until).all()
    )
    split = (
        scenario.train_users().n_users + scenario.validation_users().n_users + scenario.eval_users().n_users
    )
    assert split == population.n_users


def test_until_size_and_new_users_work_as_for_cdnow(shop: Shop) -> None:
    until = shop.panel.spec.period_start(17)
    text = f'[population]\nlog = "../data/shop.csv"\nuntil = {until}\nsize = 100\nnew_user_share = 0.2\n'
    scenario = loads(
        text + '[model]\nartifact = "../models/shop"\n', source="dated.toml", folder=shop.scenario.parent
    )
    assert scenario.population_config.until == str(until)  # a TOML date, kept as its ISO text
    users = scenario.population()
    everyone = build_population(
        dataclasses.replace(scenario.population_config, size=0, new_user_share=0.0), scenario.model_config
    )
    assert everyone.n_users == int(shop.panel.born_before(17).sum()) < shop.panel.n_users
    assert (everyone.period == 17).all()
    # 80 sampled users where they stood, then 20 new users just after a birth resampled from the log
    assert users.n_users == 100 and np.isin(users.keys[:80], everyone.keys).all()
    assert (users.period[:80] == 17).all() and (users.tenure[80:] == 1).all()
    assert not np.isin(users.keys[80:], everyone.keys).any()
    assert describe_population(scenario.population_config, scenario.model_config)["until"] == str(until)


def test_a_mapping_file_is_read_relative_to_the_scenario(shop: Shop) -> None:
    renamed = shop.root / "data" / "renamed.csv"
    pd.read_csv(shop.log, dtype=str, keep_default_na=False).rename(columns={"user_id": "visitor"}).to_csv(
        renamed, index=False
    )
    (shop.root / "data" / "columns.toml").write_text('[columns]\nuser_id = "visitor"\n')
    path = shop.write(
        "mapped.toml",
        '[population]\nlog = "../data/renamed.csv"\nmapping = "../data/columns.toml"\n'
        '[model]\nartifact = "../models/shop"\n',
    )
    mapped = load_scenario(str(path))
    assert mapped.population_config.mapping == str(shop.root / "data" / "columns.toml")
    np.testing.assert_array_equal(
        mapped.population().keys, load_scenario(str(shop.scenario)).population().keys
    )
    record = describe_population(mapped.population_config, mapped.model_config)
    assert record["mapping_sha256"] == hashlib.sha256(b'[columns]\nuser_id = "visitor"\n').hexdigest()


# --------------------------------------------------------------------------------------------- refusals
def test_a_model_and_a_population_of_other_layouts_exit_2_naming_both(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own_model_on_cdnow = shop.write("cdnow.toml", '[model]\nartifact = "../models/shop"\n')
    code, err = run(["train", "--scenario", str(own_model_on_cdnow), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and not (tmp_path / "run").exists()  # refused before any training
    for part in ("population.source = 'cdnow'", "event types purchase", str(shop.root / "models" / "shop"),
                 "event types cart, view, purchase"):  # fmt: skip
        assert part in err, part
    packaged_on_the_log = shop.write("packaged.toml", '[population]\nlog = "../data/shop.csv"\n')
    code, err = run(["scenarios", "show", str(packaged_on_the_log)], capsys)
    assert code == 2
    for part in (f"population.log = '{shop.log}'", "event types cart, view, purchase", str(DEFAULT_MODEL),
                 "event types purchase (purchase: purchase)", "weeks from 1997-01-01"):  # fmt: skip
        assert part in err, part


@pytest.mark.parametrize(
    ("population", "message"),
    [
        ('source = "cdnow"\nlog = "../data/shop.csv"', "population.source = 'cdnow' and population.log = '"),
        ('log = "../data/missing.csv"', "population.log = '"),
        ('log = "../data/shop.txt"', "unknown file type"),
        ('log = "../data/shop.csv"\nuntil = "{off_grid}"', "not the first day of a week"),
        ('log = "../data/shop.csv"\nuntil = "{after_the_log}"', "at most the end of population.log's last"),
        ('log = "../data/shop.csv"\nuntil = "soon"', "an ISO date"),
        ('log = "../data/shop.csv"\nsize = 100000', "population.size = 100000"),
        ('log = "../data/shop.csv"\nmapping = "nowhere"', "population.mapping = 'nowhere': unknown mapping"),
        ('mapping = "taobao"', "population.mapping = 'taobao': only with population.log"),
    ],
)
def test_bad_population_keys_are_config_errors(shop: Shop, population: str, message: str) -> None:
    spec = shop.panel.spec
    dates = {
        "off_grid": spec.origin_date + dt.timedelta(days=1),
        "after_the_log": spec.period_start(SHOP.n_periods + 1),
    }
    text = f'[population]\n{population.format(**dates)}\n[model]\nartifact = "../models/shop"\n'
    with pytest.raises(ConfigError, match=r"^bad\.toml: ") as error:
        loads(text, source="bad.toml", folder=shop.scenario.parent)
    assert message in str(error.value)


def test_a_log_starting_before_the_models_origin_is_refused(shop: Shop) -> None:
    events = pd.read_csv(shop.log, dtype=str, keep_default_na=False)
    week_before = shop.panel.spec.origin_date - dt.timedelta(days=7)
    early = events.iloc[:1].assign(timestamp=f"{week_before} 12:00:00")
    pd.concat([early, events]).to_csv(shop.root / "data" / "early.csv", index=False)
    text = '[population]\nlog = "../data/early.csv"\n[model]\nartifact = "../models/shop"\n'
    with pytest.raises(ConfigError) as error:
        loads(text, source="early.toml", folder=shop.scenario.parent)
    assert f"starts on {week_before}, before the origin {shop.panel.spec.origin}" in str(error.value)


def test_a_bad_row_of_the_log_is_a_config_error_naming_the_key_the_file_and_the_row(shop: Shop) -> None:
    events = pd.read_csv(shop.log, dtype=str, keep_default_na=False)
    events.iloc[:3].assign(timestamp=["2021-01-04", "someday", "2021-01-05"]).to_csv(
        shop.root / "data" / "bad.csv", index=False
    )
    text = '[population]\nlog = "../data/bad.csv"\n[model]\nartifact = "../models/shop"\n'
    with pytest.raises(ConfigError) as error:
        loads(text, source="bad.toml", folder=shop.scenario.parent)
    bad = shop.root / "data" / "bad.csv"
    assert str(error.value).startswith(f"bad.toml: population.log = '{bad}': {bad}, row 2")


# ------------------------------------------------------------------------------------------------- CLI
def test_train_bench_whatif_export_and_serve_run_on_the_shop(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        "\n".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TRAINING.items())
    )
    scenario, run_dir, export = str(shop.scenario), tmp_path / "run", tmp_path / "export"
    train = ["train", "--algo", "maskable_ppo", "--scenario", scenario, "--config", str(config)]
    assert run([*train, "--out", str(run_dir), "--timesteps", "256", "--no-progress"], capsys)[0] == 0
    quick = ["--quick", "--no-progress"]
    bench = [
        "bench",
        "--scenario",
        scenario,
        "--policies",
        "no_contact,fixed_cadence",
        "--agent",
        str(run_dir),
    ]
    assert run([*bench, "--out", str(tmp_path / "bench"), *quick], capsys)[0] == 0
    results = pd.read_csv(tmp_path / "bench" / "results.csv").set_index("policy")
    assert {"no_contact", "fixed_cadence"} < set(results.index)
    assert (
        run(
            ["whatif", scenario, "--policies", "no_contact", "--out", str(tmp_path / "whatif"), *quick],
            capsys,
        )[0]
        == 0
    )
    assert (tmp_path / "whatif" / "whatif.md").is_file()
    assert (
        run(["export", str(run_dir), "--out", str(export), "--seeds", "1", "--eval-users", "30"], capsys)[0]
        == 0
    )

    card = json.loads((export / CARD_FILE).read_text())
    assert card["population"] == {
        "log": str(shop.log),
        "log_sha256": hashlib.sha256(shop.log.read_bytes()).hexdigest(),
        "mapping": None,
        "mapping_sha256": None,
        "until": card["population"]["until"],
    }
    model_json = json.loads((shop.root / "models" / "shop" / "model.json").read_text())
    assert card["decay_model"]["content_sha256"] == model_json["content_sha256"]
    assert card["state_update"]["event_types"] == ["cart", "view", "purchase"]
    assert card["state_update"]["origin"] == shop.panel.spec.origin

    from winback.serve import create_app

    client = TestClient(create_app(export))
    features = {feature["name"]: feature["low"] for feature in card["observation"]["features"]}
    answer = client.post("/v1/decide", json={"users": [{"features": features}]})
    assert answer.status_code == 200 and answer.json()["users"][0]["action"] in card["actions"]

    changed = tmp_path / "changed"
    shutil.copytree(run_dir, changed)
    summary = json.loads((changed / "train.json").read_text())
    summary["population"]["log_sha256"] = "0" * 64  # as if the log had changed since training
    (changed / "train.json").write_text(json.dumps(summary))
    code, err = run(["export", str(changed), "--out", str(tmp_path / "refused")], capsys)
    assert code == 2 and "the run was trained on the population" in err
