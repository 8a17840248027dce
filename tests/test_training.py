"""RL training (``winback.agents.training``), trained policies (``winback.agents.sb3``) and ``winback train``.

Every algorithm trains a tiny budget once per module; the tests then check what a run leaves behind
and how its policies act.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.vec_env import VecNormalize
from tiny import TRAINING

from winback.agents.base import DecisionContext
from winback.agents.sb3 import ALGORITHMS, ObservationNormalization, SB3Policy
from winback.agents.training import TrainConfig, TrainResult, train
from winback.agents.training.callbacks import validation_users
from winback.agents.training.factory import make_env, new_model
from winback.benchmarks.rollout import run_policy
from winback.cli import app
from winback.envs.population import PopulationVecEnv
from winback.errors import ConfigError
from winback.scenarios.scenario import load_scenario
from winback.simulator.features import observe


@pytest.fixture(scope="module", params=list(ALGORITHMS))
def trained(request, tmp_path_factory) -> TrainResult:
    out = tmp_path_factory.mktemp(request.param)
    return train(TrainConfig(algo=request.param, **TRAINING), out, progress=False)


def curve(out: Path) -> list[dict[str, str]]:
    with open(out / "learning_curve.csv", newline="") as file:
        return list(csv.DictReader(file))


def batch(scenario, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and masks of ``n`` validation users as they start."""
    users = validation_users(scenario, n)
    simulator = scenario.simulator_for(0)
    return observe(simulator, users), simulator.action_masks(users)


def fresh(policy: SB3Policy, n: int) -> SB3Policy:
    policy.reset(
        DecisionContext(
            feature_names=(),
            actions=(),
            n_users=n,
            rng=np.random.default_rng(0),
            horizon=1,
            keys=np.arange(n, dtype=np.uint64),
        )
    )
    return policy


def test_a_run_writes_its_files_and_its_policies_run_through_the_benchmark(trained, scenario) -> None:
    out = trained.out_dir
    for name in ("config.json", "train.json", "model.zip", "best_model.zip", "learning_curve.png"):
        assert (out / name).is_file(), name
    assert [int(row["timesteps"]) for row in curve(out)] == [0, 256, 512]
    summary = json.loads((out / "train.json").read_text())
    assert summary["timesteps"] == trained.timesteps == 512
    assert summary["best_validation_net_value"] == max(
        float(row["validation_net_value"]) for row in curve(out)
    )
    users = validation_users(scenario, 50)
    for which in ("best", "final"):
        run = run_policy(SB3Policy.load(out, which), scenario, users, seeds=[3])
        assert run.metrics["net_value"].shape == (1, 50)
        assert np.isfinite(run.metrics["net_value"]).all()


def test_the_saved_run_acts_exactly_like_the_model_in_memory(trained, scenario) -> None:
    loaded = SB3Policy.load(trained.out_dir, "final")
    assert loaded.normalization.to_dict() == trained.policy.normalization.to_dict()
    observations, masks = batch(scenario, 100)
    np.testing.assert_array_equal(
        fresh(loaded, 100).scores(observations, masks, 0),
        fresh(trained.policy, 100).scores(observations, masks, 0),
    )
    users = validation_users(scenario, 50)
    runs = [run_policy(policy, scenario, users, seeds=[3]) for policy in (trained.policy, loaded)]
    np.testing.assert_array_equal(runs[0].action_map, runs[1].action_map)
    np.testing.assert_array_equal(runs[0].metrics["net_value"], runs[1].metrics["net_value"])


def test_masked_actions_are_never_chosen(trained, scenario) -> None:
    observations, all_valid = batch(scenario, 200)
    all_valid[:] = True
    favourite = fresh(trained.policy, 200).act(observations, all_valid, 0)
    masks = all_valid.copy()
    masks[np.arange(200), favourite] = False
    actions = fresh(trained.policy, 200).act(observations, masks, 0)
    assert masks[np.arange(200), actions].all()
    scores = fresh(trained.policy, 200).scores(observations, masks, 0)
    assert scores.dtype == np.float32 and scores.shape == masks.shape
    assert np.isneginf(scores[~masks]).all() and np.isfinite(scores[masks]).all()


def test_unmasked_actions_are_sb3s_deterministic_predictions(trained, scenario) -> None:
    observations, masks = batch(scenario, 100)
    masks[:] = True
    normalized = trained.policy.normalization.normalize(observations)
    predicted, _ = trained.policy.model.predict(normalized, deterministic=True)
    np.testing.assert_array_equal(fresh(trained.policy, 100).act(observations, masks, 0), predicted)


def test_normalization_json_applies_the_statistics_as_vec_normalize_does_and_masks_pass_it(
    scenario, tmp_path
) -> None:
    env = VecNormalize(PopulationVecEnv(8, scenario), gamma=0.9)
    env.seed(1)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step(rng.integers(0, 4, size=8))
    ObservationNormalization.of(env).save(tmp_path / "normalization.json")
    loaded = ObservationNormalization.load(tmp_path / "normalization.json")
    raw = env.get_original_obs()
    np.testing.assert_array_equal(loaded.normalize(raw), env.normalize_obs(raw))
    restored = VecNormalize(PopulationVecEnv(8, population=scenario.train_users()))
    loaded.restore(restored)
    np.testing.assert_array_equal(restored.normalize_obs(raw), env.normalize_obs(raw))
    assert is_masking_supported(env)  # what MaskablePPO collects rollouts with, through the wrapper
    np.testing.assert_array_equal(get_action_masks(env), env.venv.action_masks())


def test_dqn_bootstraps_at_the_horizon_only_when_the_config_says_so(tmp_path) -> None:
    for bootstrap in (False, True):
        config = TrainConfig(algo="dqn", bootstrap_horizon=bootstrap, **TRAINING)
        model = new_model(config, make_env(config, load_scenario(config.scenario)), tmp_path / "tb")
        assert model.replay_buffer.handle_timeout_termination is bootstrap


def test_resume_continues_to_the_new_total_and_refuses_a_changed_config(tmp_path) -> None:
    config = TrainConfig(algo="ppo", **{**TRAINING, "total_timesteps": 256})
    train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(config, tmp_path, progress=False)
    changes = {"total_timesteps": 768, "learning_rate": 1e-3, "seed": 4}
    changed = TrainConfig(algo="ppo", **{**TRAINING, **changes})
    with pytest.raises(
        ConfigError, match=r"seed \(run: 0, given: 4\); learning_rate \(run: 0.0003, given: 0.001\)"
    ):
        train(changed, tmp_path, resume=True, progress=False)
    result = train(
        TrainConfig(algo="ppo", **{**TRAINING, "total_timesteps": 768}), tmp_path, resume=True, progress=False
    )
    assert result.timesteps == 768
    assert [int(row["timesteps"]) for row in curve(tmp_path)] == [0, 256, 512, 768]
    assert json.loads((tmp_path / "train.json").read_text())["timesteps"] == 768
    with pytest.raises(ConfigError, match="no training run to resume"):
        train(config, tmp_path / "elsewhere", resume=True, progress=False)


def test_the_same_seed_gives_the_same_learning_curve(tmp_path) -> None:
    values = []
    for name, seed in [("first", 0), ("again", 0), ("other", 1)]:
        config = TrainConfig(algo="maskable_ppo", **{**TRAINING, "total_timesteps": 256, "seed": seed})
        train(config, tmp_path / name, progress=False)
        values.append([row["validation_net_value"] for row in curve(tmp_path / name)])
    assert values[0] == values[1] != values[2]


def test_toml_config_overrides_and_errors_name_the_file_and_key(tmp_path) -> None:
    path = tmp_path / "train.toml"
    path.write_text('algo = "dqn"\nnet_arch = [32, 32]\ngamma = 0.95\n')
    config = TrainConfig.from_toml(path, gamma=0.9)
    assert (config.algo, config.net_arch, config.gamma) == ("dqn", (32, 32), 0.9)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for text, key in [
        ("learning_rat = 0.1\n", "learning_rat"),
        ('n_envs = "many"\n', "n_envs"),
        ("normalize_rewards = 1\n", "normalize_rewards"),
        ("net_arch = [64, true]\n", "net_arch"),
        ("gamma = 1.5\n", "gamma"),
        ('algo = "sac"\n', "algo"),
        ("batch_size = 100\n", "batch_size"),
        ("gamma = \n", "TOML"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=key) as error:
            TrainConfig.from_toml(path)
        assert str(path) in str(error.value)


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as stop:
        app(argv)
    return int(stop.value.code or 0)


def tiny_config(folder: Path) -> Path:
    """The :data:`tiny.TRAINING` budget as a TrainConfig TOML file."""
    config = folder / "tiny.toml"
    config.write_text(
        "\n".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TRAINING.items())
    )
    return config


def test_cli_trains_a_run_and_rejects_bad_input_with_exit_code_2(tmp_path, capsys) -> None:
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "--algo", "ppo", "--config", str(config), "--out", str(out), "--timesteps", "256"]
    assert run_cli([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "best validation net value per user" in printed and "note:" not in printed
    assert json.loads((out / "config.json").read_text())["total_timesteps"] == 256
    assert run_cli(["train", "--out", str(out), "--resume", "--timesteps", "512", "--no-progress"]) == 0
    assert json.loads((out / "train.json").read_text())["timesteps"] == 512
    for bad in (
        ["train", "--algo", "sac", "--out", str(tmp_path / "a")],
        ["train", "--scenario", "mars", "--out", str(tmp_path / "b")],
        ["train", "--resume", "--out", str(tmp_path / "c")],
        ["train", "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "d")],
        ["train", "--imitate", "nonsense", "--out", str(tmp_path / "e")],
    ):
        assert run_cli(bad) == 2, bad
    assert "error:" in capsys.readouterr().err


def test_cli_notes_what_the_training_environments_leave_out(tmp_path, capsys) -> None:
    config = tiny_config(tmp_path)
    argv = ["train", "--scenario", "care_team_limited", "--config", str(config), "--out", str(tmp_path / "r")]
    assert run_cli([*argv, "--timesteps", "256", "--no-progress"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "the agent learns care_team_limited's coupon budget and care team, if any, as a price" in out
    assert "(delays and campaigns are not in the training environments)" in out
    assert (tmp_path / "r" / "prices.json").is_file()
