"""An agent under shared limits through the allocation: nothing dropped for the budget or a deadline,
the limits used, and nothing changed where there are no limits; an agent trained under prices reads
the price the allocation sets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from tiny import TRAINING

from winback.agents.base import DecisionContext
from winback.agents.baselines import COUPON, FixedCadence, Prioritized
from winback.agents.sb3 import SB3Policy
from winback.agents.training import TrainConfig, train
from winback.allocation import PriceInput, allocate
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import RULES, BenchConfig, TuningSetting, run_benchmark
from winback.benchmarks.whatif import run_whatif
from winback.envs.episodes import PRICE_CEILING
from winback.errors import ConfigError
from winback.export.policy import load_policy_dir
from winback.scenarios.scenario import Scenario, load_scenario
from winback.scenarios.schema import Operations
from winback.simulator.features import feature_names, observe

TINY_BENCH = {
    "seeds": 1,
    "tuning_seeds": 1,
    "tuning_users": 100,
    "eval_users": 150,
    "quick": True,
    "allocation": True,
}
"""A benchmark small enough for a test, under the allocation."""
LIMITS = Operations(coupon_budget_per_period=6, care_capacity=1, care_service_time=0.25, care_deadline=1)


def test_an_agent_with_the_allocation_loses_nothing_to_the_limits(tiny_run: Path, scenario: Scenario) -> None:
    agent = load_policy_dir(tiny_run)
    limited = dataclasses.replace(scenario, horizon=12, operations=LIMITS)
    users = scenario.eval_users().take(np.arange(400))
    allocated = run_policy(agent, limited, users, [0, 1], allocation=True)
    ops = allocated.operations
    assert ops["dropped_budget"].sum() == 0 and ops["dropped_deadline"].sum() == 0
    assert (ops["coupons_used"] <= LIMITS.coupon_budget_per_period).all()
    assert (ops["price_coupons"] >= 0).all() and (ops["price_care_messages"] >= 0).all()
    plain = run_policy(agent, limited, users, [0, 1])
    assert plain.operations["dropped_budget"].sum() + plain.operations["dropped_deadline"].sum() > 0, (
        "without the allocation the agent asks for more than operations serve"
    )
    assert (plain.operations["price_coupons"] == 0).all()
    unlimited = dataclasses.replace(scenario, horizon=12)
    same = run_policy(agent, unlimited, users, [0], allocation=True)
    np.testing.assert_array_equal(
        same.metrics["net_value"], run_policy(agent, unlimited, users, [0]).metrics["net_value"]
    )


def test_the_whatif_report_says_how_much_of_each_limit_was_used(tiny_run: Path, tmp_path: Path) -> None:
    config = BenchConfig(
        scenario="care_team_limited",
        policies=("no_contact", "interest_threshold"),
        agents=(tiny_run,),
        **TINY_BENCH,
    )
    text = run_whatif(config, tmp_path, progress=False).read_text()
    table = text[text.index("| policy | coupon budget used |") :].split("\n\n")[0].splitlines()[2:]
    assert {row.split("|")[1].strip() for row in table} == {
        "`no_contact`",
        "`interest_threshold`",
        "`maskable_ppo`",
    }
    for row in table:
        used = float(row.split("|")[3].strip().rstrip("%"))
        assert 0.0 <= used <= 100.0


def test_a_prioritized_rule_is_the_rule_and_under_a_budget_serves_its_most_at_risk_requests(
    scenario: Scenario,
) -> None:
    rule = FixedCadence(COUPON, 2)
    users = scenario.eval_users().take(np.arange(300))
    unlimited = dataclasses.replace(scenario, horizon=6)
    alone = run_policy(rule, unlimited, users, [0])
    wrapped = run_policy(Prioritized(rule), unlimited, users, [0], allocation=True)
    np.testing.assert_array_equal(wrapped.metrics["net_value"], alone.metrics["net_value"])
    budgeted = dataclasses.replace(unlimited, operations=Operations(coupon_budget_per_period=10))
    allocated = run_policy(Prioritized(rule), budgeted, users, [0], allocation=True)
    ops = allocated.operations
    assert ops["dropped_budget"].sum() == 0 and ops["coupons_used"].max() == 10
    assert ops["requested"][0, :, 1].max() == 10, "the rule no longer asks for what cannot be served"
    assert run_policy(rule, budgeted, users, [0]).operations["dropped_budget"].sum() > 0
    simulator = scenario.simulator_for(0)
    state = users.copy()
    observations = observe(simulator, state)
    context = DecisionContext(
        feature_names(simulator), simulator.actions, users.n_users, np.random.default_rng(0), 6, state.keys
    )
    policy = Prioritized(rule, "at_risk")
    policy.reset(context)
    chosen = allocate(
        policy.scores(observations, simulator.action_masks(state, 0), 0),
        np.array([[0.0, 0.0, 1.0, 0.0]]),
        np.array([10.0]),
    ).actions
    served, interest = chosen == 2, observations[:, 0]
    asked = rule.act(observations, simulator.action_masks(state, 0), 0) == 2
    assert served.sum() == 10 and interest[served].max() <= interest[asked & ~served].min()


def test_the_benchmark_tunes_a_prioritized_rule_under_the_allocation(
    tiny_priced_run: Path, tmp_path: Path
) -> None:
    policies = ("no_contact", "interest_threshold", "prioritized_rule", "random")
    scenario = tmp_path / "tiny_team.toml"
    scenario.write_text(
        'description = "One agent, two messages a period."\nhorizon = 12\n'
        "[operations]\ncare_capacity = 1\ncare_service_time = 0.5\n"
    )
    with pytest.raises(ConfigError, match="--allocation"):
        BenchConfig(scenario=str(scenario), policies=policies)
    config = BenchConfig(
        scenario=str(scenario),
        policies=policies,
        agents=(tiny_priced_run,),
        **TINY_BENCH,
    )
    tuned_under = TuningSetting.of(config, load_scenario(str(scenario))).scenario.operations
    assert tuned_under.care_service_time == pytest.approx(0.5 * 150 / 100), "the team per user as evaluated"
    result = run_benchmark(config, tmp_path / "bench", progress=False)
    tuned = result.tuning["prioritized_rule"].best.params
    assert tuned["rule"] in RULES and tuned["priority"] in ("at_risk", "engaged")
    by_name = {run.policy: run for run in result.runs}
    ops = by_name["prioritized_rule"].operations
    assert ops["dropped_deadline"].sum() == 0 and ops["price_care_messages"].max() >= 0
    assert by_name["interest_threshold"].operations["dropped_deadline"].sum() > 0
    assert by_name["maskable_ppo"].operations["dropped_deadline"].sum() == 0, "the priced agent fits the team"
    assert "random" in by_name, "random copies the agent's rates, measured under the allocation"


def test_an_agent_trained_under_a_care_team_reads_the_price_the_allocation_sets(
    tiny_team: Path, tiny_priced_run: Path, tmp_path: Path
) -> None:
    config = TrainConfig(algo="maskable_ppo", scenario=str(tiny_team), imitate="best_rule", **TRAINING)
    with pytest.raises(ConfigError, match=r"imitate = 'best_rule'.*care_messages"):
        train(config, tmp_path / "cloned", progress=False)
    assert not (tmp_path / "cloned").exists(), "refused before the run directory is made"
    agent, world = SB3Policy.load(tiny_priced_run), load_scenario(str(tiny_team))
    assert agent.price_input == PriceInput(("care_messages",), PRICE_CEILING)
    assert agent.model.observation_space.shape == (len(feature_names(world.simulator_for(0))) + 1,)
    users = world.eval_users().take(np.arange(200))
    with pytest.raises(ConfigError, match="--allocation"):
        run_policy(agent, world, users, [0])
    run = run_policy(agent, world, users, [0, 1], allocation=True)
    ops = run.operations
    assert ops["dropped_deadline"].sum() == 0
    assert (ops["served"][:, :, 2] <= 4).all(), "one agent writes four messages a period at most"
    assert ((ops["price_care_messages"] >= 0) & (ops["price_care_messages"] <= PRICE_CEILING)).all()
    unlimited = run_policy(agent, dataclasses.replace(world, operations=Operations()), users, [0])
    assert (unlimited.operations["price_care_messages"] == 0).all(), "free where nothing is limited"
