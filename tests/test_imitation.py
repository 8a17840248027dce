"""Starting an agent from a tuned rule (``winback.agents.training.imitation``): the clone acts as the
rule, the critic warms up with the actor frozen, and the choices are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import TRAINING

from winback.agents.training import TrainConfig, train
from winback.agents.training.factory import make_env, new_model
from winback.agents.training.imitation import CriticWarmUp, kickstart
from winback.errors import ConfigError

CLONE = {**TRAINING, "imitate": "fixed_cadence", "imitation_users": 200, "imitation_epochs": 20}
"""A fast rule to clone (its grid has 21 points) on few users, fitted long enough to agree."""


def actor_and_critic(model) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    policy = model.policy
    actor = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
    critic = [*policy.mlp_extractor.value_net.parameters(), *policy.value_net.parameters()]
    return [p.detach().clone() for p in actor], [p.detach().clone() for p in critic]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tb")


def fresh(config: TrainConfig, scenario, tensorboard: Path):
    """A new model of ``config`` and its environment (TensorBoard logs kept out of the repo)."""
    env = make_env(config, scenario)
    return new_model(config, env, tensorboard), env


@pytest.fixture(scope="module")
def cloned(scenario, tensorboard):
    config = TrainConfig(**CLONE)
    model, env = fresh(config, scenario, tensorboard)
    return config, env, model, kickstart(config, scenario, model, env, progress=False)


def test_the_clone_chooses_the_rules_actions(cloned) -> None:
    _, env, _, imitation = cloned
    assert imitation.rule == "fixed_cadence"
    assert imitation.decisions == 200 * 52
    assert imitation.agreement >= 0.95
    assert imitation.contact_agreement >= 0.9
    assert imitation.entropy > 0.3  # smoothed: the clone still explores
    assert env.obs_rms.count > imitation.decisions  # the statistics start from the rule's observations


def test_cloning_is_deterministic(cloned, scenario, tensorboard) -> None:
    config, _, model, imitation = cloned
    again, env = fresh(config, scenario, tensorboard)
    assert kickstart(config, scenario, again, env, progress=False) == imitation
    for a, b in zip(model.policy.parameters(), again.policy.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("until", [10_000, 0])
def test_the_actor_stays_frozen_while_the_critic_warms_up(cloned, scenario, tensorboard, until: int) -> None:
    config, _, _, _ = cloned
    model, _ = fresh(config, scenario, tensorboard)
    actor, critic = actor_and_critic(model)
    model.learn(512, callback=CriticWarmUp(until))
    actor_after, critic_after = actor_and_critic(model)
    assert same(actor, actor_after) == (until > 512)
    assert not same(critic, critic_after)


def test_a_cloned_run_starts_at_the_rule_and_records_it(tmp_path) -> None:
    out = tmp_path / "run"
    result = train(TrainConfig(**CLONE, value_warmup=256), out, progress=False)
    record = json.loads((out / "train.json").read_text())["imitation"]
    assert record["rule"] == "fixed_cadence" and record["agreement"] >= 0.95
    first = np.loadtxt(out / "learning_curve.csv", delimiter=",", skiprows=1)[0]
    assert first[0] == 0
    assert first[2] == pytest.approx(record["rule_validation_value"], rel=0.05)
    assert result.best_value >= first[2]


def test_without_smoothing_the_clone_hardly_explores(scenario, tensorboard) -> None:
    config = TrainConfig(**CLONE, imitation_smoothing=0.0)
    model, env = fresh(config, scenario, tensorboard)
    assert kickstart(config, scenario, model, env, progress=False).entropy < 0.2


@pytest.mark.parametrize(
    "fields",
    [
        {"imitate": "uplift"},
        {"imitate": "best_rule", "algo": "dqn"},
        {"imitation_epochs": 0},
        {"imitation_smoothing": 1.0},
    ],
)
def test_bad_imitation_settings_are_config_errors(fields: dict) -> None:
    with pytest.raises(ConfigError, match="imitat"):
        TrainConfig(**fields)
