"""The tasks of a sweep, each a plain function of picklable arguments that any backend can run: tune
a cell's baselines, evaluate a cell's policies on one seed and shard of users; and how a cell is
sharded."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from winback.agents.base import Policy
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import (
    REFERENCES,
    BenchConfig,
    SimulatorsBySeed,
    load_agents,
    make_policies,
    sample_users,
    tune_baselines,
)
from winback.benchmarks.sweep.grid import Document, SweepConfig
from winback.errors import ConfigError
from winback.scenarios.files import parse
from winback.scenarios.scenario import Scenario


def cell_scenario(document: Document, name: str) -> Scenario:
    """The scenario of a cell's document, checked key by key."""
    try:
        return Scenario(**parse(document, folder=Path("."), name=name))
    except ConfigError as err:
        raise ConfigError(f"sweep cell {name}: {err}") from err


def tune_cell(document: Document, name: str, bench: BenchConfig) -> dict[str, dict[str, Any]]:
    """The tuned parameters of each parametrised baseline in a cell."""
    scenario = cell_scenario(document, name)
    tuning = tune_baselines(bench, scenario, SimulatorsBySeed(scenario), progress=False)
    return {family: result.best.params for family, result in tuning.items()}


def evaluate_cell(
    document: Document,
    name: str,
    bench: BenchConfig,
    params: dict[str, dict[str, Any]],
    seed: int,
    shard: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Each policy's (users,) net value per user on the shard ``[start, stop)`` of a cell's
    evaluation users under ``seed``."""
    scenario = cell_scenario(document, name)
    users = sample_users(scenario.eval_users(), bench.eval_users, seed=0).take(np.arange(*shard))
    simulators = SimulatorsBySeed(scenario)
    runs = {}
    for policy_name, policy in cell_policies(bench, params).items():
        run = run_policy(policy, scenario, users, [seed], name=policy_name, simulators=simulators)
        runs[policy_name] = run.metrics["net_value"][0]
    return runs


def cell_policies(bench: BenchConfig, params: dict[str, dict[str, Any]]) -> dict[str, Policy]:
    """Every policy of a cell by name: the baselines with ``params``, the agents, the references."""
    baselines = make_policies([p for p in bench.policies if p not in REFERENCES], params, bench)
    agents = {agent.name: agent for agent in sweep_agents(bench.agents)}
    references = make_policies([p for p in bench.policies if p in REFERENCES], params, bench)
    return baselines | agents | references


@cache
def sweep_agents(run_dirs: tuple[Path, ...]) -> tuple[Policy, ...]:
    """The agents of a sweep, loaded once per process (every run resets them)."""
    return tuple(load_agents(run_dirs))


def shard_ranges(
    scenario: Scenario, config: SweepConfig, params: dict[str, dict[str, Any]], n_users: int
) -> tuple[list[tuple[int, int]], str]:
    """The user ranges of a cell's tasks, and why the cell is not sharded when it is not."""
    whole = [(0, n_users)]
    if not config.shard_users or config.shard_users >= n_users:
        return whole, ""
    coupled = [name for name, policy in cell_policies(config.bench, params).items() if not policy.separable]
    if coupled:
        return whole, f"{', '.join(coupled)} decide across users"
    operations = scenario.operations
    if operations.coupon_budget_per_period or operations.care_capacity:
        return whole, "users share the coupon budget or the care team"
    return [
        (start, min(start + config.shard_users, n_users)) for start in range(0, n_users, config.shard_users)
    ], ""


def policy_categories(bench: BenchConfig, names: Sequence[str]) -> dict[str, str]:
    """Each policy's category in the report: reference, agent or baseline."""
    agent_names = {agent.name for agent in sweep_agents(bench.agents)}
    return {p: "reference" if p in REFERENCES else "agent" if p in agent_names else "baseline" for p in names}
