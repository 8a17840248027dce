"""Scenario files: the built-in library, the schema's errors, fuzzed files, custom files and populations."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winback.agents.training import TrainConfig
from winback.cli import EXIT_BAD_INPUT, app
from winback.envs.defaults import DEFAULT_MODEL, default_model
from winback.errors import ConfigError
from winback.scenarios import population as populations
from winback.scenarios.files import SECTIONS, to_document
from winback.scenarios.population import build_population
from winback.scenarios.scenario import BUILT_IN, BUILTIN_DIR, Scenario, load_scenario, loads, read_scenario
from winback.scenarios.schema import (
    CONTACT_RULES,
    FATIGUE_RULES,
    SCENARIO_RULES,
    SOURCES,
    Campaign,
    DecayConfig,
    DemandShock,
    ModelConfig,
    Operations,
    PopulationConfig,
)
from winback.simulator.core import SimulatorConfig
from winback.simulator.population import split_users
from winback.simulator.response import default_contacts
from winback.simulator.rewards import DEFAULT_MARGIN

SAMPLE = PopulationConfig(source="cdnow-sample")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        app(argv)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


# ------------------------------------------------------------------------------------- built-in library
def test_every_builtin_loads_with_its_name_and_comments() -> None:
    assert next(iter(BUILT_IN)) == "default"
    assert set(BUILT_IN) == {path.stem for path in BUILTIN_DIR.glob("*.toml")}
    for name, scenario in BUILT_IN.items():
        assert scenario.name == name and scenario.description
        assert load_scenario(name) is scenario
        assert (BUILTIN_DIR / f"{name}.toml").read_text().startswith("# ")


def test_default_is_todays_defaults_field_by_field() -> None:
    scenario = load_scenario("default")
    assert (scenario.horizon, scenario.min_contact_gap) == (52, 0)
    assert (scenario.eval_share, scenario.validation_share) == (0.2, 0.1)
    assert scenario.simulator == SimulatorConfig()
    assert scenario.simulator.response.contacts == default_contacts()
    assert list(scenario.simulator.response.contacts) == list(default_contacts())  # action order
    assert scenario.simulator.reward.margin == DEFAULT_MARGIN
    assert scenario.population_config == PopulationConfig()
    assert scenario.model_config == ModelConfig()
    assert scenario.operations == Operations()
    assert scenario.shocks == ()
    assert scenario == Scenario(name="default", description=scenario.description)
    assert scenario.model() is default_model()


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    def clear() -> None:
        for cached in (
            populations.cached_population,
            populations.split_population,
            populations._warm_started,
        ):
            cached.cache_clear()

    clear()
    yield
    clear()


def test_default_population_and_split_are_todays(fresh_caches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default scenario's users are ``default_population()`` split as before (a small stand-in here)."""
    stand_in = build_population(SAMPLE, ModelConfig())
    monkeypatch.setattr(populations, "default_population", lambda: stand_in)
    scenario = load_scenario("default")
    assert scenario.population() is stand_in
    rest, evaluation = split_users(stand_in, 0.2)
    train, validation = split_users(rest, 0.1, salt=1)
    for got, expected in zip(
        (scenario.train_users(), scenario.validation_users(), scenario.eval_users()),
        (train, validation, evaluation),
        strict=True,
    ):
        np.testing.assert_array_equal(got.keys, expected.keys)


def test_overrides_reach_the_simulator() -> None:
    coupon = list(default_contacts()).index("coupon")
    costly = load_scenario("coupon_costly").simulator_for(0).tables
    assert costly.cost[coupon] == pytest.approx(0.10) and costly.discount[coupon] == pytest.approx(0.30)
    assert np.delete(costly.cost, coupon).tolist() == [0.02, 0.03]
    tired = load_scenario("high_fatigue").simulator_for(0).tables
    assert tired.fatigue_decay == pytest.approx(0.5 ** (1 / 8))
    assert tired.opt_out_per_fatigue == pytest.approx(0.003)
    assert load_scenario("new_user_surge").population_config.new_user_share == 0.3
    care = load_scenario("care_team_limited").operations
    assert (care.care_capacity, care.care_service_time, care.care_deadline) == (2, 0.02, 1)
    assert load_scenario("holiday_peak").shocks == (DemandShock(start=8, end=13, multiplier=1.5),)
    assert load_scenario("holiday_peak").campaigns == (Campaign(period=8, kind="push_new_items"),)
    faster = load_scenario("faster_decay").demand
    assert faster.by_period == () and faster.per_lapsed_period == pytest.approx(np.log(0.95))
    shift = faster.shift(np.zeros(4, dtype=np.int64), np.array([1, 2, 53, 400]))
    np.testing.assert_allclose(shift, np.log(0.95) * np.array([0, 1, 52, 52]))
    assert load_scenario("default").demand.shift(np.zeros(2, dtype=np.int64), np.array([1, 9])) is None


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_show_round_trips(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, toml_text, _ = run(["scenarios", "show", name], capsys)
    assert code == 0
    assert loads(toml_text, source=f"{name}.toml") == BUILT_IN[name]
    code, json_text, _ = run(["scenarios", "show", name, "--json"], capsys)
    assert code == 0
    document = json.loads(json_text)
    assert document == json.loads(json.dumps(to_document(BUILT_IN[name])))
    assert set(document["contacts"]) == set(default_contacts())
    assert set(document["contacts"]["coupon"]) == set(CONTACT_RULES)
    assert set(document["fatigue"]) == set(FATIGUE_RULES)
    assert set(document) == {*SCENARIO_RULES, *SECTIONS}


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["scenarios", "list"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILT_IN)
    assert all(BUILT_IN[line.split()[0]].description in line for line in lines)


# ------------------------------------------------------------------------------------------------ errors
BAD_FILES = [
    ("[contacts.coupon]\ndiscont = 0.2", ["unknown key contacts.coupon.discont", "did you mean discount"]),
    (
        "[contacts.sms]\ncost = 1",
        ["unknown contact kind contacts.sms", "push_new_items, coupon, care_message"],
    ),
    ('[contacts.coupon]\ndiscount = "high"', ["contacts.coupon.discount = 'high'", "a number in [0, 1]"]),
    ("[contacts.coupon]\ndiscount = 1.5", ["contacts.coupon.discount = 1.5", "a number in [0, 1]"]),
    ("[contacts.push_new_items]\nlift_new = nan", ["contacts.push_new_items.lift_new = nan", "finite"]),
    ("[contacts.coupon]\ncost = 1" + "0" * 400, ["contacts.coupon.cost", "a number >= 0"]),
    ("[contacts.coupon]\nvalidity = 1.5", ["contacts.coupon.validity = 1.5", "an integer"]),
    ("horizn = 40", ["unknown key horizn", "did you mean horizon"]),
    ("horizon = 52.0", ["horizon = 52.0", "an integer in [1, 2^63 - 1]"]),
    ("horizon = 0", ["horizon = 0", "an integer in [1"]),
    ("eval_share = 1", ["eval_share = 1", "a number in (0, 1)"]),
    ("[economics]\nmargin = true", ["economics.margin = True", "a number in [0, 1]"]),
    ("[fatigue]\nscale = 0", ["fatigue.scale = 0", "a number > 0"]),
    ("population = 3", ["population = 3", "a table"]),
    ('[population]\nsource = "amazon"', ["population.source = 'amazon'", "'cdnow' or 'cdnow-sample'"]),
    ('[population]\nsource = "cdnow-sample"\nsize = 3000', ["population.size = 3000", "2357 users"]),
    ("[population]\nseed = -1", ["population.seed = -1", "an integer in [0"]),
    ('[model]\nartifact = "nowhere"', ["model.artifact", "nowhere", "model.json"]),
    ("[operations]\ncare_capacity = -2", ["operations.care_capacity = -2", "an integer in [0"]),
    ("[operations.delivery_delay]\nsms = 1", ["unknown contact kind operations.delivery_delay.sms"]),
    ("[operations.delivery_delay]\ncoupon = -1", ["operations.delivery_delay.coupon = -1"]),
    (
        "horizon = 20\n[[shocks]]\nstart = 8\nend = 30\nmultiplier = 1.5",
        ["shocks[0].end = 30", "horizon = 20"],
    ),
    ("[[shocks]]\nstart = 8\nend = 8\nmultiplier = 1.5", ["shocks[0].end = 8", "after start = 8"]),
    ("[[shocks]]\nstart = 60\nend = 61\nmultiplier = 1.5", ["shocks[0].start = 60", "horizon = 52"]),
    ("[[shocks]]\nstart = 1\nend = 2\nmultiplier = 0", ["shocks[0].multiplier = 0", "a number > 0"]),
    ("[[shocks]]\nstart = 1\nend = 2", ["shocks[0]: missing multiplier"]),
    ("[shocks]\nstart = 1", ["shocks = {'start': 1}", "[[shocks]]"]),
    ('[[campaigns]]\nperiod = 52\nkind = "coupon"', ["campaigns[0].period = 52", "horizon = 52"]),
    ('[[campaigns]]\nperiod = 3\nkind = "sms"', ["campaigns[0].kind = 'sms'", "push_new_items, coupon"]),
    ("[[campaigns]]\nperiod = 3", ["campaigns[0]: missing kind"]),
    ("[decay]\nlapse_odds_factor = 0", ["decay.lapse_odds_factor = 0", "a number in (0, 1]"]),
    ("[decay]\nhalf_life = 2", ["unknown key decay.half_life"]),
    ('[[campaigns]]\nperiod = 3\nkind = "coupon"\nshare = 0.5', ["unknown key campaigns[0].share"]),
    ('"odd.key" = 1', ['unknown key "odd.key"']),
    ("horizon = 0x" + "f" * 4000, ["horizon = <a value too long to show> (allowed: an integer"]),
    ('horizon = "' + "x" * 200 + '"', ["horizon = '" + "x" * 76 + "... (allowed: an integer"]),
    ("horizon = = 3", ["not valid TOML"]),
    ("horizon = " + "1" * 5000, ["not valid TOML (Exceeds the limit"]),
    ("a = " + "[" * 5000, ["not valid TOML (nested too deeply)"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_FILES)
def test_bad_file_names_the_file_and_the_key(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_unreadable_files_and_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "binary.toml").write_bytes(b"name = \xff\xfe")
    with pytest.raises(ConfigError, match=r"binary\.toml: not UTF-8"):
        read_scenario(tmp_path / "binary.toml")
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_scenario(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"unknown scenario 'nope' \(built-in: default, "):
        load_scenario("nope")
    code, _, err = run(["scenarios", "show", str(tmp_path / "binary.toml")], capsys)
    assert code == EXIT_BAD_INPUT and "not UTF-8" in err


# -------------------------------------------------------------------------------------------- fuzzing
SCHEMA_KEYS = [
    *SCENARIO_RULES,
    *SECTIONS,
    *default_contacts(),
    *CONTACT_RULES,
    *FATIGUE_RULES,
    *PopulationConfig.RULES,
    *Operations.RULES,
    *DemandShock.RULES,
    *Campaign.RULES,
    *DecayConfig.RULES,
    "artifact",
    "margin",
    "delivery_delay",
]
keys = st.sampled_from(SCHEMA_KEYS) | st.text(max_size=8)
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=12),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=6)


def inline_toml(value: Any) -> str:
    """``value`` as an inline TOML value (tables and arrays of tables parse to the same dicts and lists)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {inline_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(inline_toml, value)) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return value.isoformat() if hasattr(value, "isoformat") else repr(value)


def loads_or_config_error(text: str) -> Scenario | None:
    try:
        return loads(text, source="fuzz.toml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.toml: ")
        return None


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(documents)
def test_random_documents_are_scenarios_or_config_errors(document: dict[str, Any]) -> None:
    loads_or_config_error("\n".join(f"{json.dumps(k)} = {inline_toml(v)}" for k, v in document.items()))


@FUZZ
@given(st.data())
def test_one_changed_value_is_a_scenario_or_a_config_error(data: st.DataObject) -> None:
    """The full default document with one value replaced, or one key added, at any depth."""
    document: dict[str, Any] = json.loads(json.dumps(to_document(BUILT_IN["holiday_peak"])))
    table: Any = document
    while isinstance(table, dict | list) and table and data.draw(st.booleans()):
        keys_here = list(table) if isinstance(table, dict) else list(range(len(table)))
        key = data.draw(st.sampled_from(keys_here))
        if not isinstance(table[key], dict | list) or not table[key]:
            table[key] = data.draw(values)
            break
        table = table[key]
    else:
        if isinstance(table, dict):
            table[data.draw(keys)] = data.draw(values)
    loads_or_config_error("\n".join(f"{json.dumps(k)} = {inline_toml(v)}" for k, v in document.items()))


@FUZZ
@given(st.text(max_size=60))
def test_random_text_is_a_scenario_or_a_config_error(text: str) -> None:
    loads_or_config_error(text)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(st.binary(max_size=60))
def test_random_bytes_are_a_scenario_or_a_config_error(fuzz_dir: Path, raw: bytes) -> None:
    path = fuzz_dir / "random.toml"
    path.write_bytes(raw)
    try:
        read_scenario(path)
    except ConfigError as err:
        assert str(err).startswith(f"{path}: ")


# --------------------------------------------------------------------------------------- custom files
def test_custom_file_with_a_relative_model_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(DEFAULT_MODEL, tmp_path / "models" / "mine")
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios" / "my.toml"
    path.write_text(
        'horizon = 26\n[model]\nartifact = "../models/mine"\n[contacts.care_message]\ncost = 0.5\n'
    )
    scenario = load_scenario(str(path))
    assert scenario.name == "my" and scenario.horizon == 26
    assert scenario.model_config.artifact == str(tmp_path / "models" / "mine")
    model = scenario.model()
    assert model is not default_model() and model is scenario.model()
    assert scenario.simulator_for(0).tables.cost.tolist() == [0.02, 0.05, 0.5]
    assert TrainConfig(scenario=str(path)).scenario == str(path)
    with pytest.raises(ConfigError, match=r"or the path of an existing \.toml file"):
        TrainConfig(scenario=str(tmp_path / "missing.toml"))
    code, out, _ = run(["scenarios", "show", str(path)], capsys)
    assert code == 0 and f'artifact = "{tmp_path / "models" / "mine"}"' in out
    assert loads(out) == scenario  # an absolute path loads from anywhere


# ---------------------------------------------------------------------------------------- populations
def flat_arrays(batch: Any) -> list[np.ndarray]:
    """Every array of a state, nested states included."""
    arrays = []
    for field in dataclasses.fields(batch):
        value = getattr(batch, field.name)
        if isinstance(value, np.ndarray):
            arrays.append(value)
        elif dataclasses.is_dataclass(value):
            arrays += flat_arrays(value)
    return arrays


def test_populations_of_a_size_and_new_user_share() -> None:
    everyone = build_population(SAMPLE, ModelConfig())
    assert everyone.n_users == SOURCES["cdnow-sample"]
    config = dataclasses.replace(SAMPLE, size=500, new_user_share=0.3, seed=7)
    first, second = build_population(config, ModelConfig()), build_population(config, ModelConfig())
    assert first.n_users == 500
    assert int((first.tenure == 1).sum()) == 150  # new users just after their birth period
    assert int((first.period == 39).sum()) == 350  # warm-started users at week 39
    assert np.isin(first.keys[first.period == 39], everyone.keys).all()
    for a, b in zip(flat_arrays(first), flat_arrays(second), strict=True):
        np.testing.assert_array_equal(a, b)
    other = build_population(dataclasses.replace(config, seed=8), ModelConfig())
    assert not np.array_equal(np.sort(first.keys), np.sort(other.keys))
    only_sampled = build_population(dataclasses.replace(SAMPLE, size=100), ModelConfig())
    assert only_sampled.n_users == 100 and (only_sampled.period == 39).all()


def test_scenario_split_covers_its_population() -> None:
    scenario = loads('[population]\nsource = "cdnow-sample"\nsize = 400\nnew_user_share = 0.25\n')
    assert scenario.population() is scenario.population()
    parts = (scenario.train_users(), scenario.validation_users(), scenario.eval_users())
    assert sum(part.n_users for part in parts) == 400
    assert len(np.unique(np.concatenate([part.keys for part in parts]))) == 400


def test_limits_scale_to_the_users_a_run_tunes_or_validates_on() -> None:
    team = load_scenario("care_team_limited")
    half = team.with_limits_for(2350, 4700)
    per_period = half.operations.care_capacity / half.operations.care_service_time
    assert per_period == pytest.approx(50.0), "half the users, half the messages a period"
    assert half.operations.care_deadline == team.operations.care_deadline
    assert team.with_limits_for(4700, 4700) is team
    assert load_scenario("default").with_limits_for(10, 4700) == load_scenario("default")
    budget = dataclasses.replace(team, operations=Operations(coupon_budget_per_period=300))
    assert budget.with_limits_for(2000, 4700).operations.coupon_budget_per_period == 128
    assert budget.with_limits_for(1, 4700).operations.coupon_budget_per_period == 1, "never none"
    with pytest.raises(ConfigError, match="users"):
        team.with_limits_for(0, 4700)
