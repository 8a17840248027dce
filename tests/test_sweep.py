"""Sweeps: grids checked key by key, sharding exact, and the Ray backend equal to the local one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winback.benchmarks.backends import LocalBackend, RayBackend
from winback.benchmarks.suite import BenchConfig
from winback.benchmarks.sweep import run_sweep
from winback.benchmarks.sweep.grid import GridAxis, SweepConfig, cell_document
from winback.benchmarks.sweep.tasks import cell_scenario
from winback.cli import app
from winback.errors import ConfigError
from winback.scenarios.files import to_document
from winback.scenarios.scenario import load_scenario

TINY = {"seeds": 2, "tuning_seeds": 1, "tuning_users": 40, "eval_users": 90, "quick": True}
DOCUMENT = to_document(load_scenario("default"))


def config(
    *grids: str, policies: tuple[str, ...] = ("no_contact", "fixed_cadence"), shard: int = 0
) -> SweepConfig:
    axes = tuple(GridAxis.parse(text, DOCUMENT) for text in grids)
    return SweepConfig(BenchConfig(policies=policies, **TINY, shard_users=shard), axes)


def test_grid_keys_and_values_are_checked() -> None:
    axis = GridAxis.parse("coupon.discount=0.1, 0.2", DOCUMENT)
    assert axis == GridAxis("contacts.coupon.discount", (0.1, 0.2))
    assert GridAxis.parse("horizon=26,52", DOCUMENT).values == (26, 52)
    for text, message in [
        ("coupon.rebate=0.1", "contacts.coupon.rebate is not a value of the scenario"),
        ("contacts=1", "contacts is not a value"),
        ("coupon.discount", "expected KEY=V1,V2"),
        ("coupon.discount=0.1,0.1", "repeated values"),
        ("coupon.discount=abc", "'abc' is not a TOML value"),
    ]:
        with pytest.raises(ConfigError, match=message):
            GridAxis.parse(text, DOCUMENT)


def test_an_impossible_cell_is_refused_before_any_task_runs(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"contacts\.coupon\.discount = 1\.5 \(allowed: a number in \[0, 1\]\)"
    ):
        run_sweep(config("coupon.discount=0.2,1.5"), LocalBackend(1, progress=False), tmp_path)


def test_sharded_local_and_ray_sweeps_give_the_same_table(tmp_path: Path) -> None:
    grid = ("coupon.discount=0.1,0.3", "fatigue.half_life=2,8")
    local = run_sweep(config(*grid), LocalBackend(1, progress=False), tmp_path / "local")
    sharded_config = config(*grid, shard=40)
    sharded = run_sweep(sharded_config, LocalBackend(1, progress=False), tmp_path / "sharded")
    assert sharded.tasks == {"tuning": 4, "evaluation": 4 * 2 * 3}
    pd.testing.assert_frame_equal(local.table, sharded.table)
    ray = RayBackend(2, progress=False)
    try:
        distributed = run_sweep(sharded_config, ray, tmp_path / "ray")
    finally:
        ray.close()
    pd.testing.assert_frame_equal(local.table, distributed.table)
    table = pd.read_csv(tmp_path / "ray" / "sweep.csv")
    assert len(table) == 4 * 2 and set(table["best"]) <= {"no_contact", "fixed_cadence"}
    for name in ("sweep.md", "sweep.json", "net_value.png", "best_policy.png"):
        assert (tmp_path / "ray" / name).stat().st_size > 0
    assert "`fatigue.half_life`" in (tmp_path / "ray" / "sweep.md").read_text()


def test_policies_that_decide_across_users_run_whole(tmp_path: Path) -> None:
    axes = (GridAxis.parse("horizon=8", DOCUMENT),)
    bench = BenchConfig(policies=("no_contact", "ab_test"), **TINY | {"tuning_users": 200, "shard_users": 30})
    sharded = run_sweep(SweepConfig(bench, axes), LocalBackend(1, progress=False), tmp_path / "sharded")
    assert sharded.tasks["evaluation"] == 2 * (3 + 1), "per seed: no_contact in 3 shards, ab_test whole"
    assert "ab_test: run on all users in one task" in sharded.report.read_text()
    whole_bench = dataclasses.replace(bench, shard_users=0)
    whole = run_sweep(SweepConfig(whole_bench, axes), LocalBackend(1, progress=False), tmp_path / "whole")
    pd.testing.assert_frame_equal(sharded.table, whole.table)


def test_the_cli_names_a_bad_grid_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        app(["sweep", "default", "--out", str(tmp_path), "--grid", "coupon.rebate=1", "--quick"])
    assert exit_info.value.code == 2
    assert "contacts.coupon.rebate" in capsys.readouterr().err


def test_cells_that_change_the_population_or_horizon_are_sized_per_cell(tmp_path: Path) -> None:
    axes = tuple(GridAxis.parse(text, DOCUMENT) for text in ("eval_share=0.2,0.3", "horizon=3,4"))
    bench = BenchConfig(
        policies=("no_contact",), seeds=1, tuning_seeds=1, tuning_users=40, quick=True, shard_users=5000
    )
    result = run_sweep(SweepConfig(bench, axes), LocalBackend(1, progress=False), tmp_path)
    default = load_scenario("default")
    sizes = [dataclasses.replace(default, eval_share=share).eval_users().n_users for share in (0.2, 0.3)]
    assert sizes[0] < 5000 < sizes[1], "the second share's users take two shards"
    assert result.user_periods == sum(n * horizon for n in sizes for horizon in (3, 4))
    assert result.tasks["evaluation"] == 2 * 1 + 2 * 2


def test_an_unreachable_or_malformed_ray_address_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match="no Ray head answers there"):
        RayBackend(1, address="127.0.0.1:1", progress=False)
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        RayBackend(1, address="head-node", progress=False)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(["coupon.discount", "fatigue.half_life", "horizon", "population.size", "x.y", ""])
    | st.text(max_size=20),
    values=st.lists(st.text(max_size=8) | st.floats().map(repr) | st.integers().map(str), max_size=4),
)
def test_any_grid_text_is_a_cell_or_an_error_naming_the_option(key: str, values: list[str]) -> None:
    text = f"{key}={','.join(values)}"
    try:
        axis = GridAxis.parse(text, DOCUMENT)
        for value in axis.values:
            cell_scenario(cell_document(DOCUMENT, (axis,), (value,)), "cell")
    except ConfigError as err:
        assert "--grid" in str(err) or "sweep cell cell:" in str(err)


def test_a_sweep_over_a_care_team_says_what_each_policy_used_of_it(
    tiny_priced_run: Path, tmp_path: Path
) -> None:
    axes = (GridAxis.parse("horizon=6", DOCUMENT), GridAxis.parse("operations.care_capacity=0,1", DOCUMENT))
    bench = BenchConfig(
        policies=("no_contact", "interest_threshold"),
        agents=(tiny_priced_run,),
        allocation=True,
        **TINY | {"eval_users": 0, "tuning_users": 200},
    )
    table = run_sweep(SweepConfig(bench, axes), LocalBackend(1, progress=False), tmp_path).table
    team = table[table["operations.care_capacity"] == 1].set_index("policy")
    assert team.loc["maskable_ppo", "deadline_drops"] == 0, "the priced agent fits the team"
    assert 0 < team.loc["maskable_ppo", "care_team"] <= 1 and team.loc["no_contact", "care_team"] == 0
    assert team.loc["interest_threshold", "deadline_drops"] > 0
    assert table[table["operations.care_capacity"] == 0]["care_team"].isna().all(), "no team, no share"
