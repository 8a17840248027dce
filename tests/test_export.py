"""Exported policies (``winback.export``, ``winback export``): parity with torch, the card, refusals.

One tiny MaskablePPO run is trained and exported once per module (through the CLI); parity is checked
on 10,000 observations and decay states sampled from the simulator under random actions.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from tiny import TRAINING

from winback.agents.base import DecisionContext
from winback.agents.sb3 import SB3Policy
from winback.agents.training import TrainConfig, train
from winback.benchmarks.rollout import run_policy
from winback.benchmarks.suite import sample_users
from winback.cli import app
from winback.decay_model.base import PeriodActivity
from winback.decay_model.lstm import LSTMState
from winback.errors import ArtifactError
from winback.export import exporter
from winback.export.card import scenario_hash
from winback.export.graphs import PolicyGraph, StateUpdateGraph, export_onnx
from winback.export.policy import ExportedPolicy, load_policy_dir
from winback.export.runtime import Decision, ExportedArtifact
from winback.export.runtime.card import ARTIFACT_FILES, CARD_FILE, POLICY_FILE, STATE_FILE
from winback.export.runtime.masks import MaskRules
from winback.export.runtime.records import ContactRecords, ContactRules
from winback.export.runtime.session import POLICY_INPUTS, POLICY_OUTPUTS, inference_session
from winback.export.runtime.state import UserStates, derived_features
from winback.scenarios.scenario import load_scenario
from winback.simulator.features import feature_bounds, feature_names, observe
from winback.simulator.state import SINCE_CAP

N_SAMPLES = 10_000
GAP = 2
"""A frequency cap for checking the mask rules (the default scenario has none)."""


@dataclass
class Samples:
    """Users as the simulator saw them before a period, and what they did in it."""

    observations: np.ndarray
    masks: np.ndarray
    gap_masks: np.ndarray
    """Masks under the frequency cap :data:`GAP`."""
    decay: list[LSTMState]
    activity: list[PeriodActivity]


@pytest.fixture(scope="module")
def samples(scenario) -> Samples:
    """At least 10,000 user-periods of evaluation users under uniformly random actions."""
    simulator = scenario.simulator_for(3)
    state, rng = scenario.eval_users().copy(), np.random.default_rng(3)
    out = Samples([], [], [], [], [])
    while sum(len(o) for o in out.observations) < N_SAMPLES:
        out.observations.append(observe(simulator, state))
        out.masks.append(simulator.action_masks(state))
        out.gap_masks.append(simulator.action_masks(state, GAP))
        out.decay.append(state.decay.take(np.arange(state.n_users)))
        actions = rng.integers(0, len(simulator.actions), state.n_users)
        out.activity.append(simulator.step(state, actions).activity)
    return Samples(
        np.concatenate(out.observations)[:N_SAMPLES],
        np.concatenate(out.masks)[:N_SAMPLES],
        np.concatenate(out.gap_masks)[:N_SAMPLES],
        out.decay,
        out.activity,
    )


def assert_same_scores(expected: np.ndarray, actual: np.ndarray) -> None:
    masked = np.isneginf(expected)
    np.testing.assert_array_equal(np.isneginf(actual), masked)
    assert np.abs(actual[~masked] - expected[~masked]).max() <= 1e-5


def assert_probabilities_as_the_card_states(decision: Decision, masks: np.ndarray, greedy: bool) -> None:
    """Over the allowed actions: exp(scores) renormalised (one-hot on the action if ``greedy``); 0
    where masked; rows sum to 1; the action is their mode."""
    p, rows = decision.probabilities, np.arange(len(masks))
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p[~masks], 0.0)
    assert np.abs(p.sum(axis=1) - 1).max() <= 1e-6
    if greedy:
        expected = np.zeros_like(p)
        expected[rows, decision.actions] = 1
    else:
        weights = np.exp(decision.scores.astype(np.float64))  # exp(-inf) = 0 where masked
        expected = weights / weights.sum(axis=1, keepdims=True)
        assert (np.exp(decision.scores).sum(axis=1) < 1 - 1e-3).any()  # masks took mass: renormalised
    assert np.abs(p - expected).max() <= 1e-6
    assert (p[rows, decision.actions] >= p.max(axis=1) - 1e-6).all()


def test_policy_parity_on_10000_observations(tiny_run, tiny_export, samples) -> None:
    torch_policy, exported = SB3Policy.load(tiny_run), ExportedArtifact.load(tiny_export)
    assert samples.observations.shape[0] == N_SAMPLES and not samples.masks.all()
    expected = torch_policy.scores(samples.observations, samples.masks, 0)
    decision = exported.decide(samples.observations, samples.masks)
    assert_same_scores(expected, decision.scores)
    np.testing.assert_array_equal(decision.actions, torch_policy.act(samples.observations, samples.masks, 0))
    assert len(np.unique(decision.actions)) > 1
    assert_probabilities_as_the_card_states(decision, samples.masks, greedy=False)
    # The probabilities are MaskablePPO's own masked distribution.
    obs = torch.as_tensor(torch_policy.normalization.normalize(samples.observations))
    with torch.no_grad():
        distribution = torch_policy.model.policy.get_distribution(obs, action_masks=samples.masks)
    assert np.abs(decision.probabilities - distribution.distribution.probs.numpy()).max() <= 1e-5


def test_decide_refuses_users_without_an_allowed_action(tiny_export, samples) -> None:
    masks = samples.masks[:3].copy()
    masks[1] = False
    with pytest.raises(ValueError, match=r"users \[1\] have no allowed action"):
        ExportedArtifact.load(tiny_export).decide(samples.observations[:3], masks)


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_policy_graph_parity_other_algorithms(algo, scenario, samples, tmp_path) -> None:
    run = tmp_path / algo
    policy = train(TrainConfig(algo=algo, **TRAINING), run, progress=False).policy
    example = (torch.zeros((2, samples.observations.shape[1])), torch.ones((2, 4), dtype=torch.bool))
    export_onnx(
        PolicyGraph(policy.model, policy.normalization),
        example,
        POLICY_INPUTS,
        POLICY_OUTPUTS,
        run / "p.onnx",
    )
    outputs = inference_session((run / "p.onnx").read_bytes()).run(
        list(POLICY_OUTPUTS), {"observations": samples.observations, "masks": samples.masks}
    )
    decision = Decision.from_outputs(outputs)
    assert_same_scores(policy.scores(samples.observations, samples.masks, 0), decision.scores)
    np.testing.assert_array_equal(decision.actions, policy.act(samples.observations, samples.masks, 0))
    assert_probabilities_as_the_card_states(decision, samples.masks, greedy=algo == "dqn")


def test_recurrent_policies_are_refused(tmp_path) -> None:
    policy = train(TrainConfig(algo="recurrent_ppo", **TRAINING), tmp_path, progress=False).policy
    with pytest.raises(ArtifactError, match="recurrent_ppo"):
        PolicyGraph(policy.model, policy.normalization)


def test_state_update_parity_on_10000_states(scenario, tiny_export, samples) -> None:
    model, exported = scenario.model(), ExportedArtifact.load(tiny_export)
    rng = np.random.default_rng(4)
    learned = np.isin(model.spec.interventions, list(scenario.simulator_for(0).learned)).astype(np.int64)
    n_seen = 0
    for decay, activity in zip(samples.decay, samples.activity, strict=True):
        n = len(decay.period)
        contacts = (rng.random((n, 3)) < 0.2).astype(np.int64)
        states = UserStates(
            decay.hidden, decay.cell, decay.period, decay.first_period, decay.last_purchase,
            decay.frequency, np.zeros(n),
        )  # fmt: skip
        following, interest = exported.state_update.step(states, activity.counts, activity.spend, contacts)
        expected = model.advance(decay, activity, contacts * learned)  # as the simulator feeds contacts
        assert np.abs(following.hidden - expected.hidden).max() <= 1e-5
        # The cell state reaches |c| ~ 40, where float32 spacing is 4e-6: compared relative to max(1, |c|).
        assert (np.abs(following.cell - expected.cell) / np.maximum(1.0, np.abs(expected.cell))).max() <= 1e-5
        assert np.abs(interest - model.forecast(expected).p_active).max() <= 1e-5
        np.testing.assert_array_equal(following.period, expected.period)
        np.testing.assert_array_equal(following.last_purchase, expected.last_purchase)
        np.testing.assert_array_equal(following.frequency, expected.frequency)
        n_seen += n
    assert n_seen >= N_SAMPLES


def test_derived_features_match_the_simulator(scenario, tiny_export) -> None:
    """A period with no contact, fed through state_update.onnx, gives the simulator's own features."""
    exported = ExportedArtifact.load(tiny_export)
    simulator = scenario.simulator_for(5)
    state = sample_users(scenario.eval_users(), 500, seed=5).copy()
    d = state.decay.take(np.arange(state.n_users))  # a copy: the step changes the state in place
    spend = state.spend_total.copy()
    before = UserStates(d.hidden, d.cell, d.period, d.first_period, d.last_purchase, d.frequency, spend)
    activity = simulator.step(state, np.zeros(state.n_users, dtype=np.int64)).activity
    following, interest = exported.state_update.step(
        before, activity.counts, activity.spend, np.zeros((500, 3))
    )
    derived = derived_features(following, interest, simulator.config.response.new_user_periods)
    observed = observe(simulator, state)
    names = feature_names(simulator)
    low, high = feature_bounds(simulator)
    for name, values in derived.items():
        j = names.index(name)
        assert np.abs(np.clip(values, low[j], high[j]) - observed[:, j]).max() <= 1e-5, name


def test_masks_from_features_follow_the_simulator(scenario, samples) -> None:
    simulator = scenario.simulator_for(0)
    names, actions = feature_names(simulator), simulator.actions
    for gap, expected in ((0, samples.masks), (GAP, samples.gap_masks)):
        masks = MaskRules(names, actions, gap, SINCE_CAP).apply(samples.observations)
        np.testing.assert_array_equal(masks.allowed, expected)
        assert set(masks.by_rule) == {"opted_out", "coupon_valid"} | ({"min_gap"} if gap else set())
    assert not samples.gap_masks[:, 1:].all() and samples.gap_masks[:, 1:].any()


def test_benchmark_figures_equal_the_trained_agents(scenario, tiny_run, tiny_export) -> None:
    users = sample_users(scenario.eval_users(), 100, seed=0)
    torch_run = run_policy(SB3Policy.load(tiny_run), scenario, users, [0, 1])
    onnx_run = run_policy(load_policy_dir(tiny_export), scenario, users, [0, 1])
    for key, values in torch_run.metrics.items():
        np.testing.assert_array_equal(onnx_run.metrics[key], values, err_msg=key)
    np.testing.assert_array_equal(onnx_run.action_map, torch_run.action_map)
    card = json.loads((tiny_export / CARD_FILE).read_text())
    row = next(r for r in card["benchmark"]["results"] if r["category"] == "agent")
    assert row["net_value"] == pytest.approx(torch_run.metrics["net_value"].mean(), rel=1e-12)
    assert row["net_value_low"] < row["net_value"] < row["net_value_high"]


def test_card_describes_the_artifact(scenario, tiny_export) -> None:
    assert sorted(p.name for p in tiny_export.iterdir()) == sorted(ARTIFACT_FILES)  # nothing pickled
    for name in (POLICY_FILE, STATE_FILE):
        onnx.checker.check_model(onnx.load(tiny_export / name))
    card = json.loads((tiny_export / CARD_FILE).read_text())
    simulator = scenario.simulator_for(0)
    low, high = feature_bounds(simulator)
    features = card["observation"]["features"]
    assert [f["name"] for f in features] == list(feature_names(simulator))
    assert [f["high"] for f in features] == high.tolist() and [f["low"] for f in features] == low.tolist()
    assert all(f["unit"] and f["computed"] for f in features)
    assert card["actions"] == list(simulator.actions)
    assert card["scenario"]["content_sha256"] == scenario_hash(scenario)
    assert card["policy"]["masked_score"] == "-inf"
    outputs = card["policy"]["outputs"]
    assert sorted(outputs) == sorted(POLICY_OUTPUTS)  # the card is written with sorted keys
    assert "log-probabilities of the policy's softmax over all actions" in outputs["scores"]
    assert "exp(scores) / (sum of exp(scores) over the allowed actions)" in outputs["probabilities"]
    assert MaskRules.from_card(card) == MaskRules(
        feature_names(simulator), simulator.actions, scenario.min_contact_gap, SINCE_CAP
    )
    assert card["training"]["config"]["algo"] == "maskable_ppo"
    assert {"schema_version", "winback_version", "created", "files", "decay_model"} <= set(card)
    assert card["allocation"]["scenario_limits_per_period"] == {}, "the default scenario has no limit"
    assert '"limits"' in card["allocation"]["request"]
    limited = load_scenario("care_team_limited")
    limits = exporter._allocation(limited, limited.simulator_for(0), None)["scenario_limits_per_period"]
    assert limits == {"care_message": 100}, "two agents, 0.02 periods a message"


def test_load_policy_dir_tells_runs_from_exports(tiny_run, tiny_export) -> None:
    assert isinstance(load_policy_dir(tiny_export), ExportedPolicy)
    assert isinstance(load_policy_dir(tiny_run), SB3Policy)


def test_exported_policy_refuses_another_simulators_features(tiny_export) -> None:
    policy = ExportedPolicy.load(tiny_export)
    context = DecisionContext(
        feature_names=("interest",),
        actions=policy.actions,
        n_users=1,
        rng=np.random.default_rng(0),
        horizon=1,
        keys=np.zeros(1, dtype=np.uint64),
    )
    with pytest.raises(ArtifactError, match="reads features"):
        policy.reset(context)


def tampered(tiny_export: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_export, copy)
    return copy


def test_modified_onnx_bytes_are_refused(tiny_export, tmp_path) -> None:
    copy = tampered(tiny_export, tmp_path)
    data = bytearray((copy / POLICY_FILE).read_bytes())
    data[-1] ^= 1
    (copy / POLICY_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"policy\.onnx: sha256 does not match"):
        ExportedPolicy.load(copy)


def test_missing_file_is_refused(tiny_export, tmp_path) -> None:
    copy = tampered(tiny_export, tmp_path)
    (copy / STATE_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"state_update\.onnx: missing"):
        ExportedPolicy.load(copy)


@pytest.mark.parametrize("version", [1, 99])
def test_other_schema_versions_are_refused(tiny_export, tmp_path, version) -> None:
    """Version 1 cards have no probabilities output and no masks.since_cap."""
    copy = tampered(tiny_export, tmp_path)
    card = json.loads((copy / CARD_FILE).read_text())
    card["schema_version"] = version
    (copy / CARD_FILE).write_text(json.dumps(card))
    message = rf"schema version {version} is not supported .* \(expected 2\); export the policy again"
    with pytest.raises(ArtifactError, match=message):
        ExportedArtifact.load(copy)


def test_edited_card_is_refused(tiny_export, tmp_path) -> None:
    copy = tampered(tiny_export, tmp_path)
    card = json.loads((copy / CARD_FILE).read_text())
    card["masks"]["min_contact_gap"] = 4
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ArtifactError, match=r"policy_card\.json: content hash mismatch"):
        ExportedPolicy.load(copy)


def test_malformed_card_is_refused(tiny_export, tmp_path) -> None:
    copy = tampered(tiny_export, tmp_path)
    (copy / CARD_FILE).write_text('{"schema": ')
    with pytest.raises(ArtifactError, match=r"policy_card\.json: not valid JSON"):
        ExportedPolicy.load(copy)


def test_cli_refuses_bad_input(tiny_run, tiny_export, tmp_path, capsys) -> None:
    for argv, message in (
        (["export", str(tmp_path), "--out", str(tmp_path / "x")], "not a training run"),
        (["export", str(tiny_run), "--out", str(tiny_export)], "already holds an exported policy"),
        (["export", str(tiny_run), "--out", str(tmp_path / "y"), "--model", "last"], "--model"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            app(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_state_update_graph_feeds_learned_contacts(scenario, samples) -> None:
    """With every kind learned, the graph's contacts reach the LSTM as in ``LSTMDecayModel.advance``."""
    model = scenario.model()
    decay, activity = samples.decay[0], samples.activity[0]
    contacts = (np.random.default_rng(6).random((len(decay.period), 3)) < 0.3).astype(np.int64)
    graph = StateUpdateGraph(model, model.spec.interventions)
    inputs = (
        decay.hidden, decay.cell, decay.period, decay.first_period, decay.last_purchase, decay.frequency,
        activity.counts, activity.spend, contacts,
    )  # fmt: skip
    with torch.no_grad():
        hidden = graph(*(torch.from_numpy(np.asarray(x)) for x in inputs))[0].numpy()
    expected = model.advance(decay, activity, contacts).hidden
    assert np.abs(hidden - expected).max() <= 1e-5
    assert np.abs(hidden - model.advance(decay, activity).hidden).max() > 1e-3


def test_bench_and_whatif_run_the_exported_artifact(tiny_export, tmp_path) -> None:
    args = ["--policies", "no_contact", "--agent", str(tiny_export), "--quick", "--no-progress"]
    for command in (["bench", "--out", str(tmp_path / "bench")], ["whatif", "care_team_limited"]):
        out = [] if command[0] == "bench" else ["--out", str(tmp_path / "whatif")]
        with pytest.raises(SystemExit) as exit_info:
            app([*command, *out, *args])
        assert exit_info.value.code == 0
    bench = pd.read_csv(tmp_path / "bench" / "results.csv").set_index("policy")
    assert bench.loc["maskable_ppo-onnx", "category"] == "agent"
    operations = pd.read_csv(tmp_path / "whatif" / "operations.csv")
    assert set(operations["policy"]) == {"no_contact", "maskable_ppo-onnx"}


def test_a_priced_agent_exports_its_prices_and_runs_as_trained(
    tiny_team, tiny_priced_run, tiny_priced_export
) -> None:
    card = json.loads((tiny_priced_export / CARD_FILE).read_text())
    prices = card["observation"]["prices"]
    assert prices["resources"] == ["care_messages"] and prices["columns"] == ["price_care_messages"]
    assert prices["actions"] == {"care_messages": ["care_message"]}
    assert "allocate_conditioned" in card["allocation"]["method"]
    assert card["benchmark"]["command"].endswith("--allocation")
    exported = load_policy_dir(tiny_priced_export)
    assert exported.price_input == SB3Policy.load(tiny_priced_run).price_input
    world = load_scenario(str(tiny_team))
    users = sample_users(world.eval_users(), 100, seed=0)
    torch_run = run_policy(SB3Policy.load(tiny_priced_run), world, users, [0], allocation=True)
    onnx_run = run_policy(exported, world, users, [0], allocation=True)
    np.testing.assert_allclose(
        onnx_run.operations["price_care_messages"], torch_run.operations["price_care_messages"], atol=1e-3
    )
    assert np.mean(onnx_run.metrics["contacts"] == torch_run.metrics["contacts"]) > 0.95


def test_contact_records_follow_the_simulator(scenario, tiny_export) -> None:
    """Records kept from the contacts delivered, by the card's rules, give the simulator's own
    contact-side features period after period (its compiled step keeps them)."""
    rules = ContactRules.from_card(ExportedArtifact.load(tiny_export).card)
    simulator = scenario.simulator_for(6)
    state = sample_users(scenario.eval_users(), 400, seed=6).copy()
    records = ContactRecords(
        state.fatigue.copy(), state.opted_out.copy(), state.valid_left.copy(), state.since_contact.copy()
    )
    names, rng = feature_names(simulator), np.random.default_rng(6)
    low, high = feature_bounds(simulator)
    for _ in range(8):
        outcome = simulator.step(state, rng.integers(0, len(simulator.actions), state.n_users))
        records = records.after(outcome.delivered, rules)
        records.opted_out = state.opted_out.copy()  # the platform's own record of who left
        observed = observe(simulator, state)
        for name, values in records.features(rules).items():
            j = names.index(name)
            np.testing.assert_allclose(
                np.clip(values, low[j], high[j]), observed[:, j], atol=1e-5, err_msg=name
            )
        np.testing.assert_array_equal(records.valid_left, state.valid_left)
        np.testing.assert_array_equal(records.since_contact, state.since_contact)
