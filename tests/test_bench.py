"""The benchmark end to end: a quick run is complete and deterministic; bad input exits with code 2."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from winback.agents.baselines import CARE, COUPON, PUSH, FixedCadence, NoContact
from winback.agents.oracle import Oracle
from winback.agents.training import TrainConfig, train
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import (
    ALL_POLICIES,
    KNOWN_POLICIES,
    RULES,
    BenchConfig,
    SimulatorsBySeed,
    load_finished_bench,
    matched_random,
    run_benchmark,
    run_scenarios,
)
from winback.cli import app
from winback.cli.bench import bench_config
from winback.errors import ConfigError
from winback.scenarios.scenario import load_scenario

TINY = BenchConfig(
    policies=KNOWN_POLICIES,
    seeds=2,
    tuning_seeds=1,
    tuning_users=120,
    eval_users=150,
    quick=True,
    allocation=True,  # prioritized_rule runs only with it; the default scenario has no limit to allocate
)


def test_a_quick_benchmark_is_complete_and_the_same_for_the_same_seeds(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    first = run_benchmark(TINY, tmp_path / "a", progress=False)
    run_benchmark(TINY, tmp_path / "b", progress=False)
    assert {run.policy for run in first.runs} == set(KNOWN_POLICIES)
    for name in ("leaderboard.md", "results.csv", "results.json", "tuning.json", "bench.json"):
        assert (tmp_path / "a" / name).is_file()
    for name in ("net_value.png", "retention.png", "interest.png", "action_map.png"):
        assert (tmp_path / "a" / name).stat().st_size > 10_000
    rows = json.loads((tmp_path / "a" / "results.json").read_text())
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert _without_times(rows) == _without_times(again)
    assert (tmp_path / "a" / "tuning.json").read_text() == (tmp_path / "b" / "tuning.json").read_text()
    by_name = {run.policy: run for run in first.runs}
    assert by_name["oracle"].metrics["net_value"].mean() > by_name["no_contact"].metrics["net_value"].mean()
    random, rule = (
        by_name["random"],
        max(
            (by_name[r] for r in ("fixed_cadence", "recency_rule", "interest_threshold")),
            key=lambda run: run.metrics["net_value"].mean(),
        ),
    )
    assert random.metrics["contacts"].mean() == pytest.approx(rule.metrics["contacts"].mean(), rel=0.25)
    finished = load_finished_bench(tmp_path / "a")  # rebuilt from the files, the rules score the same
    for family in RULES:
        rebuilt = run_policy(finished.rule(family), finished.scenario, finished.users, finished.seeds)
        np.testing.assert_array_equal(rebuilt.metrics["net_value"], by_name[family].metrics["net_value"])


def test_random_copies_the_rates_of_the_best_candidate_on_the_tuning_users() -> None:
    torch.set_num_threads(1)
    scenario = load_scenario("default")
    simulators = SimulatorsBySeed(scenario)
    users, seeds = scenario.train_users().take(np.arange(60)), [10_000]
    candidates = {
        "weekly_coupon": FixedCadence(COUPON, 1, name="weekly_coupon"),
        "monthly_care": FixedCadence(CARE, 4, name="monthly_care"),
    }
    random, reference = matched_random(candidates, scenario, users, seeds, simulators=simulators)
    assert list(simulators) == seeds, "one simulator per seed, shared by the candidates' runs"
    runs = {name: run_policy(p, scenario, users, seeds, name=name) for name, p in candidates.items()}
    best = max(runs.values(), key=lambda run: run.metrics["net_value"].mean())
    assert reference == best.policy == "monthly_care"  # a weekly coupon pays discounts on every purchase
    contacts = best.metrics[f"contacts_{CARE}"].mean()
    assert random.rates == {PUSH: 0.0, COUPON: 0.0, CARE: pytest.approx(contacts / scenario.horizon)}


def _without_times(results: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in results["policies"]]


def test_bad_benchmark_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown policies"):
        BenchConfig(policies=("no_contact", "magic"))
    with pytest.raises(ConfigError, match="seeds"):
        BenchConfig(seeds=0)
    with pytest.raises(ConfigError, match="random"):
        run_benchmark(BenchConfig(policies=("random",), **_tiny()), Path("unused"), progress=False)


def test_all_in_a_list_of_policies_stands_for_the_baselines_and_the_oracle() -> None:
    settings = {"seeds": 1, "eval_users": 0, "tuning_seeds": 1, "tuning_users": 50, "quick": False}
    chosen = bench_config("default", "all, prioritized_rule,no_contact", None, allocation=True, **settings)
    assert chosen.policies == (*ALL_POLICIES, "prioritized_rule")
    assert bench_config("default", "all", None, **settings).policies == ALL_POLICIES


def _tiny() -> dict:
    return {"seeds": 1, "tuning_seeds": 1, "tuning_users": 50, "eval_users": 50, "quick": True}


def test_the_cli_exits_with_code_2_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        app(["bench", "--out", str(tmp_path), "--policies", "no_contact,magic", "--quick"])
    assert exit_info.value.code == 2
    assert "magic" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        app(["bench", "--out", str(tmp_path), "--scenario", "mars", "--quick"])
    assert exit_info.value.code == 2


def test_trained_agents_run_in_the_benchmark_under_their_algorithm_names(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    tiny = TrainConfig(
        total_timesteps=256, n_envs=16, n_steps=16, batch_size=64, n_epochs=1, net_arch=(8,),
        eval_every=256, eval_users=20, checkpoint_every=256,
    )  # fmt: skip
    runs = [tmp_path / "first", tmp_path / "second"]
    for seed, out in enumerate(runs):
        train(dataclasses.replace(tiny, seed=seed), out, progress=False)
    config = BenchConfig(policies=("no_contact", "random"), agents=tuple(runs), **_tiny())
    result = run_benchmark(config, tmp_path / "bench", progress=False)
    names = {run.policy: run.category for run in result.runs}
    assert names == {
        "no_contact": "baseline",
        "random": "baseline",
        "maskable_ppo@first": "agent",
        "maskable_ppo@second": "agent",
    }


def test_a_holiday_shock_changes_only_the_weeks_it_covers() -> None:
    torch.set_num_threads(1)
    holiday = load_scenario("holiday_peak")
    np.testing.assert_allclose(
        holiday.demand.by_period, [np.log(1.5) if 8 <= t < 13 else 0.0 for t in range(52)]
    )
    users = holiday.eval_users().take(np.arange(400))
    default = dataclasses.replace(load_scenario("default"), horizon=14)
    peak = dataclasses.replace(holiday, horizon=14)
    runs = {s.name: run_policy(Oracle(lookahead=2), s, users, [0], name="oracle") for s in (default, peak)}
    plain, shocked = runs["default"], runs["holiday_peak"]
    # Identical until the oracle's 2-week look-ahead reaches week 8 (it acts on it in week 7).
    np.testing.assert_array_equal(plain.interest[:, :8], shocked.interest[:, :8])
    assert not np.array_equal(plain.interest[:, 8], shocked.interest[:, 8])
    assert shocked.metrics["revenue"].sum() > plain.metrics["revenue"].sum()


def test_faster_decay_costs_lapsing_users_only() -> None:
    torch.set_num_threads(1)
    users = load_scenario("default").eval_users().take(np.arange(400))
    runs = {
        name: run_policy(NoContact(), dataclasses.replace(load_scenario(name), horizon=8), users, [0])
        for name in ("default", "faster_decay")
    }
    plain, faster = (runs[name].metrics["revenue"][0] for name in ("default", "faster_decay"))
    assert faster.sum() < plain.sum() and (faster <= plain).all()
    interest = runs["default"].interest[:, 0], runs["faster_decay"].interest[:, 0]
    assert np.array_equal(*interest), "policies observe the learned interest, not the extra decay"


def test_several_scenarios_give_one_table_by_scenario(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = BenchConfig(policies=("no_contact", "fixed_cadence"), **_tiny())
    results, table = run_scenarios(config, ["default", "coupon_costly"], tmp_path, progress=False)
    assert [r.report.parent.name for r in results] == ["default", "coupon_costly"]
    rows = pd.read_csv(tmp_path / "scenarios.csv")
    assert sorted(set(zip(rows["scenario"], rows["policy"], strict=True))) == [
        (s, p) for s in ("coupon_costly", "default") for p in ("fixed_cadence", "no_contact")
    ]
    text = table.read_text()
    assert "[`coupon_costly`](coupon_costly/leaderboard.md)" in text and "| `no_contact` |" in text
