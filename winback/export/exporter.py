"""Export a training run to ONNX + JSON: ``policy.onnx``, ``state_update.onnx`` and ``policy_card.json``.

The run's model (``best`` on validation users, or ``final``) becomes ``policy.onnx`` with its
observation statistics folded in; the decay model of the run's scenario becomes
``state_update.onnx``. The card's benchmark figures come from the benchmark harness running the
exported graph itself on the scenario's evaluation users (the same sample and seeds as
``winback bench --seeds S --eval-users U``), beside ``no_contact`` under the same luck.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from winback.agents.baselines import NoContact
from winback.agents.sb3 import MODEL_FILES, PRICES_FILE, SB3Policy, seeds_record, selected_run
from winback.agents.training import TrainConfig
from winback.allocation import RESOURCES, PriceInput
from winback.benchmarks.report import summarize
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import SimulatorsBySeed, sample_users
from winback.decay_model.lstm import LSTMDecayModel
from winback.errors import ArtifactError, ConfigError
from winback.export.card import decay_model_hash, describe_features, scenario_hash, write_card
from winback.export.graphs import PolicyGraph, StateUpdateGraph, export_onnx
from winback.export.policy import ExportedPolicy
from winback.export.runtime.artifact import ExportedArtifact
from winback.export.runtime.card import ARTIFACT_FILES, POLICY_FILE, STATE_FILE
from winback.export.runtime.masks import MASK_RULES
from winback.export.runtime.session import POLICY_INPUTS, POLICY_OUTPUTS, STATE_INPUTS, STATE_OUTPUTS
from winback.scenarios.operations import resource_takers
from winback.scenarios.population import describe_population
from winback.scenarios.scenario import Scenario, load_scenario
from winback.simulator.core import Simulator
from winback.simulator.features import feature_names
from winback.simulator.response import CARE
from winback.simulator.state import SINCE_CAP


def export_policy(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    which: Literal["best", "final"] = "best",
    seeds: int = 5,
    eval_users: int = 0,
) -> Path:
    """Write the artifact of the run in ``run_dir`` (for several seeds' runs: the selected one) to
    ``out_dir`` (created; must not hold one yet).

    ``seeds`` and ``eval_users`` (0: all) set the benchmark behind the card's figures. Returns the
    card's path.
    """
    run, out = selected_run(run_dir), Path(out_dir)
    if seeds < 1 or eval_users < 0:
        raise ConfigError(
            f"seeds = {seeds}, eval_users = {eval_users} (allowed: seeds >= 1, eval_users >= 0)"
        )
    if existing := [name for name in ARTIFACT_FILES if (out / name).exists()]:
        raise ConfigError(
            f"{out} already holds an exported policy ({', '.join(existing)}): choose another --out"
        )
    config_path = run / "config.json"
    if not config_path.is_file():
        raise ArtifactError(f"{run}: no config.json; not a training run (winback train --out)")
    try:
        config = TrainConfig.from_dict(json.loads(config_path.read_text()), source=str(config_path))
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{config_path}: not valid JSON ({err})") from err
    agent = SB3Policy.load(run, which=which)
    scenario = load_scenario(config.scenario)
    simulator = scenario.simulator_for(0)
    names = feature_names(simulator) + (agent.price_input.columns if agent.price_input else ())
    n_features = agent.model.observation_space.shape[0]
    if n_features != len(names):
        raise ArtifactError(
            f"{run / MODEL_FILES[which]}: the network reads {n_features} features, scenario "
            f"'{scenario.name}' (and the run's {PRICES_FILE}) give {len(names)} ({', '.join(names)})"
        )
    population = _trained_population(run, scenario)
    decay = scenario.model()
    out.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros((2, n_features)), torch.ones((2, len(simulator.actions)), dtype=torch.bool))
    graph = PolicyGraph(agent.model, agent.normalization)
    export_onnx(graph, example, POLICY_INPUTS, POLICY_OUTPUTS, out / POLICY_FILE)
    export_onnx(
        StateUpdateGraph(decay, simulator.learned),
        _state_example(decay),
        STATE_INPUTS,
        STATE_OUTPUTS,
        out / STATE_FILE,
    )
    body = _card_body(run, which, config, agent, graph.describe_outputs(), scenario, simulator)
    body["population"] = population
    body["training"]["seed_selection"] = _seed_selection(Path(run_dir))
    policy = ExportedPolicy(
        ExportedArtifact(body, (out / POLICY_FILE).read_bytes(), (out / STATE_FILE).read_bytes())
    )
    body["benchmark"] = _benchmark(policy, scenario, seeds, eval_users)
    body["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return write_card(body, out)


def _trained_population(run: Path, scenario: Scenario) -> dict[str, Any]:
    """Where the scenario's users come from now (:func:`describe_population`), refused when the run's
    ``train.json`` records other users (say the log was changed since): the card's figures would not
    be those of the population the policy was trained on."""
    now = describe_population(scenario.population_config, scenario.model_config)
    summary_path = run / "train.json"
    trained = json.loads(summary_path.read_text()).get("population") if summary_path.is_file() else None
    if trained is not None and trained != now:
        raise ArtifactError(
            f"{summary_path}: the run was trained on the population {json.dumps(trained, sort_keys=True)}, "
            f"scenario '{scenario.name}' now has {json.dumps(now, sort_keys=True)}; train again on it"
        )
    return now


def _seed_selection(run_dir: Path) -> dict[str, Any] | None:
    """How the run was chosen among several seeds' runs (``seeds.json``), or ``None`` for a plain run."""
    record = seeds_record(run_dir)  # its selection was checked by selected_run
    if record is None:
        return None
    return {key: record.get(key) for key in ("seeds", "selection", "selected", "runs")}


def _state_example(model: LSTMDecayModel) -> tuple[torch.Tensor, ...]:
    """Inputs of two users for tracing ``state_update.onnx``."""
    hidden = torch.zeros((2, model.cfg.hidden_size))
    spec = model._require_fitted()
    periods = torch.tensor([3, 5])
    return (
        hidden,
        hidden.clone(),
        periods,
        torch.tensor([0, 1]),
        torch.tensor([1, 4]),
        torch.tensor([2.0, 3.0], dtype=torch.float64),
        torch.ones((2, len(spec.event_types)), dtype=torch.int64),
        torch.tensor([10.0, 20.0], dtype=torch.float64),
        torch.zeros((2, len(spec.interventions)), dtype=torch.int64),
    )


def _card_body(
    run: Path,
    which: str,
    config: TrainConfig,
    agent: SB3Policy,
    outputs: dict[str, str],
    scenario: Scenario,
    simulator: Simulator,
) -> dict[str, Any]:
    """Everything the card says except the benchmark, the file hashes and the schema; ``outputs``
    states policy.onnx's outputs (:meth:`PolicyGraph.describe_outputs`)."""
    decay = simulator.model
    spec = decay._require_fitted()
    summary_path = run / "train.json"
    n_actions = len(simulator.actions)
    return {
        "policy": {
            "algo": config.algo,
            "run_dir": str(run.resolve()),
            "model": which,
            "file": POLICY_FILE,
            "inputs": {
                "observations": "(batch, F + P) float32: the raw features of observation.features, in "
                "order, then the P prices of observation.prices (none without it; normalisation is "
                "inside the graph)",
                "masks": f"(batch, {n_actions}) bool: true where an action is allowed (see masks); none "
                "is never masked",
            },
            "outputs": outputs,
            "masked_score": "-inf",
            "normalization": agent.normalization.to_dict(),
            "recurrent": "recurrent_ppo runs are refused (their per-user LSTM state is not exported)",
        },
        "observation": {
            "dtype": "float32",
            "features": describe_features(simulator, spec.period),
            "out_of_range": "the simulator clips features to [low, high]; the server refuses values outside",
            "prices": _prices(agent.price_input, simulator),
        },
        "actions": list(simulator.actions),
        "masks": {
            "min_contact_gap": scenario.min_contact_gap,
            "since_cap": SINCE_CAP,
            "none": "never masked",
            "rules": MASK_RULES,
        },
        "state_update": {
            "file": STATE_FILE,
            "decay_model": decay.name,
            "hidden_size": decay.cfg.hidden_size,
            "period": spec.period,
            "origin": spec.origin,
            "event_types": list(spec.event_types),
            "purchase_event": spec.purchase_event,
            "contact_kinds": list(spec.interventions),
            "learned_contact_kinds": sorted(simulator.learned),
            "contacts": "contacts of kinds not in learned_contact_kinds are ignored: their effect is the "
            "simulator's prior lift, which the state does not carry (nor, then, the interest output)",
            "new_user_periods": simulator.config.response.new_user_periods,
            "inputs": {
                "hidden, cell": "(batch, hidden_size) float32 LSTM state before the period",
                "period": "(batch,) int64 the period that has just been lived, counted from origin",
                "first_period": "(batch,) int64 birth period",
                "last_purchase": "(batch,) int64 period of the last purchase before it (birth if none)",
                "frequency": "(batch,) float64 purchases before it since birth",
                "counts": "(batch, len(event_types)) int64 events of each type in the period",
                "spend": "(batch,) float64 spend in the period",
                "contacts": "(batch, len(contact_kinds)) int64 contacts of each kind received in the period",
            },
            "outputs": {
                "next_hidden, next_cell": "(batch, hidden_size) float32 LSTM state after the period",
                "next_period": "(batch,) int64 period + 1",
                "next_last_purchase": "(batch,) int64",
                "next_frequency": "(batch,) float64",
                "interest": "(batch,) float32 P(at least one purchase in next_period) with no contact",
            },
            "new_user": "before the birth period is fed: hidden = cell = 0, period = first_period = "
            "last_purchase = birth period, frequency = 0",
        },
        "contacts": {
            "kinds": list(simulator.kinds),
            "fatigue": simulator.tables.fatigue.tolist(),
            "fatigue_decay": float(simulator.tables.fatigue_decay),
            "validity": simulator.tables.validity.tolist(),
            "since_cap": SINCE_CAP,
            "update": "each period, a delivered contact of kind k renews its validity to validity[k] and "
            "adds fatigue[k]; at the period's end every since counter advances (capped at since_cap) and "
            "the kind received restarts at 1, validity counts down, fatigue is multiplied by "
            "fatigue_decay (winback.contact_records; winback.export.runtime.records keeps them)",
        },
        "decay_model": {"name": decay.name, "content_sha256": decay_model_hash(scenario)},
        "scenario": {"name": scenario.name, "content_sha256": scenario_hash(scenario)},
        "allocation": _allocation(scenario, simulator, agent.price_input),
        "training": {
            "config": config.to_dict(),
            "summary": json.loads(summary_path.read_text()) if summary_path.is_file() else None,
        },
    }


def _prices(price_input: PriceInput | None, simulator: Simulator) -> dict[str, Any] | None:
    """The prices the policy reads after its features (``None``: none): columns, resources, the
    actions that take each, and the range it was trained under."""
    if price_input is None:
        return None
    use = resource_takers(simulator.kinds, simulator.tables.validity)
    return {
        **price_input.to_dict(),
        "columns": list(price_input.columns),
        "actions": {
            resource: [simulator.actions[a] for a in np.flatnonzero(use[RESOURCES.index(resource)])]
            for resource in price_input.resources
        },
        "unit": "currency per unit of the resource (a coupon, a care message), trained between 0 and ceiling",
        "computed": "the price at which the policy's own requests fit the period's limit: raised by "
        "bisection until they do (winback.allocation.allocate_conditioned); 0 where nothing is limited",
    }


def _allocation(scenario: Scenario, simulator: Simulator, price_input: PriceInput | None) -> dict[str, Any]:
    """How to decide under shared limits: the scenario's own limits per period by action, and the
    request that fits decisions to any (``POST /v1/decide`` with ``limits``)."""
    operations, limits = scenario.operations, {}
    for k, kind in enumerate(simulator.kinds):
        if operations.coupon_budget_per_period and simulator.tables.validity[k] > 0:
            limits[kind] = operations.coupon_budget_per_period
        if operations.care_capacity and kind == CARE:
            limits[kind] = int(operations.care_capacity / operations.care_service_time)
    return {
        "scenario_limits_per_period": limits,
        "request": 'POST /v1/decide with "limits": {action: how many users it may go to this period}; '
        'the answer\'s "allocation" gives each limited action its limit, use and price',
        "method": "each user the action of highest score minus the prices of the limited actions it "
        "takes, the prices the lowest that keep every limit (winback.allocation.allocate)"
        if price_input is None
        else "the policy is shown the lowest prices (observation.prices) at which its own choices keep "
        "every limit; what a ceiling leaves over a limit goes by its scores as for any policy "
        "(winback.allocation.allocate_conditioned)",
    }


def _benchmark(policy: ExportedPolicy, scenario: Scenario, seeds: int, eval_users: int) -> dict[str, Any]:
    """Net value per user etc. of the exported policy and of no_contact on evaluation users, with 95% CIs."""
    simulators = SimulatorsBySeed(scenario)
    users = sample_users(scenario.eval_users(), eval_users, seed=0)
    seed_list = list(range(seeds))
    priced = policy.price_input is not None
    runs = [
        run_policy(
            policy, scenario, users, seed_list, category="agent", simulators=simulators, allocation=priced
        ),
        run_policy(NoContact(), scenario, users, seed_list, name="no_contact", simulators=simulators),
    ]
    table = summarize(runs).drop(columns="seconds")
    rows = [{key: _number(value) for key, value in row.items()} for row in table.to_dict("records")]
    return {
        "scenario": scenario.name,
        "eval_users": users.n_users,
        "seeds": seed_list,
        "unit": "per user over the scenario's horizon; net_value = margin - discounts - contact costs ($)",
        "ci": "95% bootstrap over users (winback.benchmarks.stats); vs_best_baseline: paired difference "
        "against no_contact",
        "command": f"winback bench --policies no_contact --agent EXPORT_DIR --scenario {scenario.name} "
        f"--seeds {seeds} --eval-users {eval_users}" + (" --allocation" if priced else ""),
        "results": rows,
    }


def _number(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
