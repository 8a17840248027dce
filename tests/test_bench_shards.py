"""Benchmarks in user shards: the same table as one process, on any backend; what cannot be sharded
runs whole."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from winback.agents.base import DecisionContext
from winback.agents.baselines import RandomContact
from winback.benchmarks.backends import LocalBackend
from winback.benchmarks.rollout import PolicyRun
from winback.benchmarks.suite import BenchConfig, evaluation_tasks, run_benchmark
from winback.benchmarks.whatif import run_whatif
from winback.scenarios.scenario import load_scenario

SCENARIO = """
name = "delayed_campaign"
description = "Care messages take a week to arrive; a push campaign in week 3."
horizon = 10

[operations.delivery_delay]
care_message = 1

[[campaigns]]
period = 3
kind = "push_new_items"
"""
POLICIES = ("no_contact", "recency_rule", "interest_threshold", "random", "ab_test", "oracle")
BENCH = BenchConfig(policies=POLICIES, seeds=2, tuning_seeds=1, tuning_users=100, eval_users=130, quick=True)


def _same_runs(sharded: list[PolicyRun], whole: list[PolicyRun]) -> None:
    """The same runs up to the last bits of float32: the decay model's matrix products sum in an order
    that depends on how many users share a batch."""
    assert [run.policy for run in sharded] == [run.policy for run in whole]
    for a, b in zip(sharded, whole, strict=True):
        assert a.category == b.category
        for key in b.metrics:
            np.testing.assert_allclose(a.metrics[key], b.metrics[key], rtol=1e-6, err_msg=f"{b.policy} {key}")
        for key in b.operations:
            np.testing.assert_array_equal(a.operations[key], b.operations[key], err_msg=f"{b.policy} {key}")
        np.testing.assert_array_equal(a.action_map, b.action_map)
        np.testing.assert_allclose(a.retention, b.retention, rtol=1e-12)  # float64 shares
        np.testing.assert_allclose(a.interest, b.interest, rtol=1e-6)  # float32 means


def test_a_benchmark_in_shards_on_two_processes_gives_the_table_of_one_process(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    path = tmp_path / "delayed_campaign.toml"
    path.write_text(SCENARIO)
    whole_config = dataclasses.replace(BENCH, scenario=str(path))
    whole = run_whatif(whole_config, tmp_path / "whole", progress=False)
    sharded_config = dataclasses.replace(whole_config, shard_users=40)
    backend = LocalBackend(2, progress=False)
    try:
        sharded = run_whatif(sharded_config, tmp_path / "sharded", progress=False, backend=backend)
    finally:
        backend.close()
    for name in ("results.csv", "operations.csv"):
        a, b = pd.read_csv(tmp_path / "sharded" / name), pd.read_csv(tmp_path / "whole" / name)
        pd.testing.assert_frame_equal(
            a.drop(columns="seconds", errors="ignore"), b.drop(columns="seconds", errors="ignore")
        )
    assert "ab_test: run on all users in one task" in (tmp_path / "sharded" / "leaderboard.md").read_text()
    assert whole.name == sharded.name == "whatif.md"


def test_shards_run_the_same_users_as_one_run(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = dataclasses.replace(BENCH, policies=("no_contact", "interest_threshold", "random"))
    whole = run_benchmark(config, tmp_path / "whole", progress=False)
    sharded = run_benchmark(dataclasses.replace(config, shard_users=33), tmp_path / "sharded", progress=False)
    _same_runs(sharded.runs, whole.runs)
    pd.testing.assert_frame_equal(sharded.table.drop(columns="seconds"), whole.table.drop(columns="seconds"))


def test_users_sharing_a_care_team_or_budget_are_never_sharded() -> None:
    scenario = load_scenario("care_team_limited")
    policies = {"no_contact": RandomContact({}, name="no_contact")}
    tasks, notes = evaluation_tasks(scenario, policies, 1000, 100)
    assert tasks == [(("no_contact",), (0, 1000))]
    assert notes == ["Not run in shards: users share the coupon budget or the care team."]
    tasks, notes = evaluation_tasks(load_scenario("default"), policies, 250, 100)
    assert tasks == [
        (("no_contact",), (0, 100)),
        (("no_contact",), (100, 200)),
        (("no_contact",), (200, 250)),
    ]
    assert notes == []


@pytest.mark.parametrize("split", [1, 7, 19])
def test_random_contacts_draw_the_same_for_a_user_in_any_batch(split: int) -> None:
    keys = np.arange(40, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    actions = ("none", "push_new_items", "coupon", "care_message")
    observations, masks = np.zeros((40, 4), dtype=np.float32), np.ones((40, 4), dtype=bool)

    def decide(rows: slice, period: int) -> np.ndarray:
        policy = RandomContact({"push_new_items": 0.3, "coupon": 0.2})
        context = DecisionContext((), actions, len(keys[rows]), np.random.default_rng(4), 5, keys[rows])
        policy.reset(context)
        return policy.act(observations[rows], masks[rows], period)

    for period in range(3):
        whole = decide(slice(None), period)
        np.testing.assert_array_equal(
            np.concatenate([decide(slice(None, split), period), decide(slice(split, None), period)]), whole
        )
        assert set(whole) == {0, 1, 2}
