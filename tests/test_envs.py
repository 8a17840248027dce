"""Environments: API checkers, determinism, reward parts, masks, and batched == single trajectories."""

from __future__ import annotations

import warnings
from functools import cache

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import winback.envs
from winback.data.cdnow import load_cdnow_panel
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.envs.activation import ActivationEnv
from winback.envs.episodes import EpisodeConfig
from winback.envs.population import PopulationVecEnv
from winback.envs.vector import ActivationVectorEnv
from winback.simulator.core import Simulator
from winback.simulator.population import warm_start
from winback.simulator.state import SimState

HORIZON = 6


@cache
def small() -> tuple[Simulator, SimState]:
    """A tiny model and a 300-user population, so tests do not load the packaged CDNOW defaults."""
    torch.set_num_threads(1)
    panel = load_cdnow_panel("cdnow-sample").select(np.arange(300))
    model = LSTMDecayModel(LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)).fit(panel, until=39)
    simulator = Simulator(model)
    return simulator, warm_start(simulator, panel, until=39)


def make_env(min_contact_gap: int = 0) -> gym.Env:
    simulator, pool = small()
    return gym.make(
        winback.envs.ACTIVATION_ID,
        simulator=simulator,
        population=pool,
        min_contact_gap=min_contact_gap,
        max_episode_steps=HORIZON,
    )


def test_registered_env_passes_both_checkers_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = make_env()
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_default_env_runs_on_the_packaged_model_and_cdnow() -> None:
    env = gym.make(winback.envs.ACTIVATION_ID)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert env.spec is not None and env.spec.max_episode_steps == 52


def test_same_seed_same_episode() -> None:
    def episode(seed: int) -> list[float]:
        env = make_env()
        env.reset(seed=seed)
        env.action_space.seed(seed)
        return [env.step(env.action_space.sample())[1] for _ in range(HORIZON)]

    assert episode(3) == episode(3)
    assert episode(3) != episode(4)


def test_reward_components_add_up_and_episode_truncates_at_the_horizon() -> None:
    env = make_env()
    env.reset(seed=1)
    for t in range(HORIZON):
        _, reward, terminated, truncated, info = env.step(t % 4)
        assert reward == pytest.approx(info["margin"] - info["discount"] - info["contact_cost"])
        assert not terminated and truncated == (t == HORIZON - 1)


def test_masks_forbid_a_second_coupon_and_contacts_within_the_cap() -> None:
    env = make_env(min_contact_gap=3)
    env.reset(seed=2)
    assert env.unwrapped.action_masks().tolist() == [True, True, True, True]
    info = env.step(2)[-1]
    assert info["delivered"] == "coupon"
    assert env.unwrapped.action_masks().tolist() == [True, False, False, False]
    info = env.step(1)[-1]
    assert info["refused"] and info["contact_cost"] == 0.0
    env.step(0)
    assert env.unwrapped.action_masks().tolist() == [True, True, True, True]


def rollout_actions(n_envs: int, steps: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 4, (steps, n_envs))


def test_batched_and_single_envs_give_identical_trajectories() -> None:
    simulator, pool = small()
    n_envs, steps = 5, 2 * HORIZON + 1
    actions = rollout_actions(n_envs, steps)
    dummy = DummyVecEnv([make_env for _ in range(n_envs)])
    batched = PopulationVecEnv(n_envs, simulator, pool, EpisodeConfig(horizon=HORIZON))
    for vec in (dummy, batched):
        vec.seed(11)
    obs_dummy, obs_batched = dummy.reset(), batched.reset()
    np.testing.assert_allclose(obs_batched, obs_dummy, rtol=1e-6)
    for t in range(steps):
        obs_d, rew_d, done_d, info_d = dummy.step(actions[t])
        obs_b, rew_b, done_b, info_b = batched.step(actions[t])
        np.testing.assert_allclose(obs_b, obs_d, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(rew_b, rew_d, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(done_b, done_d)
        for d, b in zip(info_d, info_b, strict=True):
            assert b["delivered"] == d["delivered"] and b["purchases"] == d["purchases"]
            if "terminal_observation" in d:
                np.testing.assert_allclose(b["terminal_observation"], d["terminal_observation"], rtol=1e-6)
                assert b["TimeLimit.truncated"]
    np.testing.assert_array_equal(
        np.stack(batched.env_method("action_masks")), np.stack(dummy.env_method("action_masks"))
    )


def test_gymnasium_vector_env_matches_the_single_env_with_next_step_autoreset() -> None:
    simulator, pool = small()
    n_envs, seed = 3, 5
    vector = gym.make_vec(
        winback.envs.ACTIVATION_ID,
        num_envs=n_envs,
        simulator=simulator,
        population=pool,
        max_episode_steps=HORIZON,
    )
    assert isinstance(vector.unwrapped, ActivationVectorEnv)
    singles = [make_env() for _ in range(n_envs)]
    obs_v, _ = vector.reset(seed=seed)
    for i, env in enumerate(singles):
        np.testing.assert_allclose(obs_v[i], env.reset(seed=seed + i)[0], rtol=1e-6)
    actions = rollout_actions(n_envs, HORIZON)
    for t in range(HORIZON):
        obs_v, rew_v, term_v, trunc_v, info_v = vector.step(actions[t])
        for i, env in enumerate(singles):
            obs, reward, terminated, truncated, _ = env.step(actions[t, i])
            np.testing.assert_allclose(obs_v[i], obs, rtol=1e-6, atol=1e-7)
            assert rew_v[i] == pytest.approx(reward, rel=1e-5, abs=1e-6)
            assert (term_v[i], trunc_v[i]) == (terminated, truncated)
        np.testing.assert_allclose(rew_v, info_v["margin"] - info_v["discount"] - info_v["contact_cost"])
    obs_v, rew_v, _, trunc_v, _ = vector.step(actions[0])
    assert np.all(rew_v == 0) and not trunc_v.any(), "the step after truncation resets"
    for i, env in enumerate(singles):
        np.testing.assert_allclose(obs_v[i], env.reset()[0], rtol=1e-6)


def test_sb3_agents_train_on_the_batched_env() -> None:
    simulator, pool = small()
    env = PopulationVecEnv(8, simulator, pool, EpisodeConfig(horizon=HORIZON))
    env.seed(0)
    PPO("MlpPolicy", env, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(128)
    MaskablePPO("MlpPolicy", env, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(128)


def test_single_env_refuses_to_step_before_reset() -> None:
    simulator, pool = small()
    with pytest.raises(gym.error.ResetNeeded):
        ActivationEnv(simulator, pool).step(0)
