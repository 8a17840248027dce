"""Environments: API checkers, one configuration (scenarios by name), determinism, reward parts, masks,
and batched == single trajectories."""

from __future__ import annotations

import math
import warnings
from functools import cache
from pathlib import Path

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
from winback.allocation import RESOURCES, PriceInput
from winback.data.cdnow import load_cdnow_panel
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.envs.activation import ActivationEnv
from winback.envs.config import EnvConfig
from winback.envs.episodes import INFO_KEYS, Demand, EpisodeConfig, Pricing
from winback.envs.population import TERMINAL_OBSERVATION, TRUNCATED, PopulationVecEnv
from winback.envs.vector import ActivationVectorEnv
from winback.errors import ConfigError
from winback.scenarios.scenario import load_scenario
from winback.simulator.core import Simulator
from winback.simulator.population import warm_start
from winback.simulator.state import SimState

HORIZON = 6
PLAIN = EpisodeConfig(horizon=HORIZON)
SHIFTED = EpisodeConfig(
    horizon=HORIZON,
    min_contact_gap=1,
    demand=Demand(by_period=(0.0, 0.7, 0.7, -0.4), per_lapsed_period=math.log(0.95)),
    reward="expected",
)
"""Every part of an episode config in use: frequency cap, demand shocks and decay, expected reward."""
PRICED = EpisodeConfig(
    horizon=HORIZON,
    pricing=Pricing(PriceInput(RESOURCES, 2.0), ((0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0)), free_share=0.3),
)
"""Coupons and care messages priced per episode (actions: none, push, coupon, care)."""
CONFIGS = pytest.mark.parametrize("config", [PLAIN, SHIFTED, PRICED], ids=["plain", "shifted", "priced"])


@cache
def small() -> tuple[Simulator, SimState]:
    """A tiny model and a 300-user population, so tests do not load the packaged CDNOW defaults."""
    torch.set_num_threads(1)
    panel = load_cdnow_panel("cdnow-sample").select(np.arange(300))
    model = LSTMDecayModel(LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)).fit(panel, until=39)
    simulator = Simulator(model)
    return simulator, warm_start(simulator, panel, until=39)


def make_env(config: EpisodeConfig = PLAIN) -> gym.Env:
    simulator, pool = small()
    return gym.make(winback.envs.ACTIVATION_ID, simulator=simulator, population=pool, config=config)


def make_vec(config: EpisodeConfig, n_envs: int, mode: str = "vector_entry_point") -> gym.vector.VectorEnv:
    simulator, pool = small()
    return gym.make_vec(
        winback.envs.ACTIVATION_ID,
        num_envs=n_envs,
        vectorization_mode=mode,
        simulator=simulator,
        population=pool,
        config=config,
    )


@CONFIGS
def test_registered_env_passes_both_checkers_without_warnings(config: EpisodeConfig) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = make_env(config)
        gymnasium_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_default_env_runs_on_the_packaged_model_and_cdnow_and_a_scenario_by_name() -> None:
    for kwargs in ({}, {"scenario": "holiday_peak", "reward": "expected"}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            env = gym.make(winback.envs.ACTIVATION_ID, **kwargs)
            gymnasium_check_env(env.unwrapped)
        observation, _ = env.reset(seed=0)
        assert env.observation_space.contains(observation)
        assert env.unwrapped.episodes.config.horizon == 52


def test_v0_is_refused_with_gymnasiums_deprecation_error() -> None:
    assert winback.envs.ACTIVATION_ID == "winback/Activation-v1"
    with pytest.warns(DeprecationWarning), pytest.raises(gym.error.DeprecatedEnv, match="Activation-v1"):
        gym.make("winback/Activation-v0")


def test_a_scenario_file_sets_horizon_cap_demand_and_reward_in_every_env(tmp_path: Path) -> None:
    path = tmp_path / "short.toml"
    path.write_text("horizon = 4\nmin_contact_gap = 2\n[[shocks]]\nstart = 1\nend = 3\nmultiplier = 2.0\n")
    scenario = load_scenario(path)
    expected = EpisodeConfig(4, 2, Demand((0.0, math.log(2.0), math.log(2.0), 0.0)), "expected")
    envs = (
        gym.make(winback.envs.ACTIVATION_ID, scenario=str(path), reward="expected"),
        gym.make_vec(winback.envs.ACTIVATION_ID, num_envs=2, scenario=path, reward="expected"),
        PopulationVecEnv(2, scenario, "expected"),
    )
    for env in envs:
        assert env.unwrapped.episodes.config == expected
        assert env.unwrapped.episodes.pool is scenario.train_users()
    single = envs[0]
    single.reset(seed=0)
    single.step(1)
    assert single.unwrapped.action_masks().tolist() == [True, False, False, False]
    truncated = [single.step(0)[3] for _ in range(3)]
    assert truncated == [False, False, True], "truncated at the scenario's horizon"


def test_a_scenario_takes_explicit_parts_but_not_an_episode_config() -> None:
    simulator, pool = small()
    env = EnvConfig.make("holiday_peak", "expected", simulator=simulator, population=pool)
    assert env.simulator is simulator and env.population is pool
    assert env.episode == EpisodeConfig.from_scenario(
        load_scenario("holiday_peak"), env.simulator, "expected"
    )
    with pytest.raises(ConfigError, match="a scenario or an episode config, not both"):
        ActivationEnv("holiday_peak", simulator=simulator, population=pool, config=PLAIN)
    with pytest.raises(ConfigError, match=r"EpisodeConfig\.reward"):
        ActivationEnv(simulator=simulator, population=pool, reward="drawn")  # type: ignore[arg-type]


def test_holiday_peak_shifts_the_expected_rewards_of_its_shock_weeks_only() -> None:
    def rewards(scenario: str) -> np.ndarray:
        vector = gym.make_vec(winback.envs.ACTIVATION_ID, num_envs=32, scenario=scenario, reward="expected")
        vector.reset(seed=0)
        return np.array([vector.step(np.zeros(32, dtype=np.int64))[1] for _ in range(13)])

    default, holiday = rewards("default"), rewards("holiday_peak")
    np.testing.assert_array_equal(holiday[:8], default[:8])
    assert np.all(holiday[8:].sum(axis=1) > default[8:].sum(axis=1)), "odds x1.5 in weeks 8-12"


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
    env = make_env(EpisodeConfig(horizon=HORIZON, min_contact_gap=3))
    env.reset(seed=2)
    assert env.unwrapped.action_masks().tolist() == [True, True, True, True]
    info = env.step(2)[-1]
    assert info["delivered"] == "coupon"
    assert env.unwrapped.action_masks().tolist() == [True, False, False, False]
    info = env.step(1)[-1]
    assert info["refused"] and info["contact_cost"] == 0.0
    env.step(0)
    assert env.unwrapped.action_masks().tolist() == [True, True, True, True]


def test_a_priced_episode_shows_its_prices_and_charges_them_on_what_is_delivered() -> None:
    simulator, pool = small()
    n_envs, steps = 40, 2 * HORIZON
    actions = rollout_actions(n_envs, steps)
    priced = PopulationVecEnv(n_envs, simulator=simulator, population=pool, config=PRICED)
    plain = PopulationVecEnv(n_envs, simulator=simulator, population=pool, config=PLAIN)
    for vec in (priced, plain):
        vec.seed(5)
    obs_priced, obs_plain = priced.reset(), plain.reset()
    assert priced.observation_space.shape == (obs_plain.shape[1] + 2,)
    assert priced.price_input == PRICED.pricing.input and plain.price_input is None
    np.testing.assert_array_equal(obs_priced[:, :-2], obs_plain)
    starts = obs_priced[:, -2:].copy()
    free = (starts == 0).all(axis=1)
    assert 0 < free.sum() < n_envs, "some episodes free, the others priced"
    assert ((starts[~free] >= 2.0 * 0.01) & (starts[~free] <= 2.0)).all()
    use = np.array(PRICED.pricing.use)
    for t in range(steps):
        prices = obs_priced[:, -2:].copy()
        obs_priced, reward_priced, done, info = priced.step(actions[t])
        obs_plain, reward_plain, _, _ = plain.step(actions[t])
        delivered = np.array([simulator.actions.index(i["delivered"]) for i in info])
        np.testing.assert_allclose(
            reward_priced, reward_plain - (prices * use[:, delivered].T).sum(axis=1), atol=1e-5
        )
        kept = ~done
        np.testing.assert_array_equal(obs_priced[kept, -2:], prices[kept], "a price holds for its episode")
        np.testing.assert_array_equal(obs_priced[:, :-2], obs_plain)
    assert not np.array_equal(obs_priced[:, -2:], starts), "new episodes draw new prices"


def test_a_scenario_prices_what_its_operations_limit_and_nothing_else() -> None:
    simulator, pool = small()
    limited = EnvConfig.make("care_team_limited", simulator=simulator, population=pool)
    assert limited.episode.pricing is not None
    assert limited.episode.pricing.input.resources == ("care_messages",)
    assert limited.episode.pricing.use == ((0.0, 0.0, 0.0, 1.0),)
    assert EnvConfig.make("coupon_costly", simulator=simulator, population=pool).episode.pricing is None


def rollout_actions(n_envs: int, steps: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 4, (steps, n_envs))


def assert_same_info(info: dict, expected: dict) -> None:
    """Equal values under every key of ``expected``: floats to float32 round-off, the rest exactly."""
    for key, value in expected.items():
        if np.asarray(value).dtype.kind == "f":
            np.testing.assert_allclose(info[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(info[key], value, err_msg=key)


@CONFIGS
def test_batched_and_single_envs_give_identical_trajectories(config: EpisodeConfig) -> None:
    simulator, pool = small()
    n_envs, steps = 5, 2 * HORIZON + 1
    actions = rollout_actions(n_envs, steps)
    dummy = DummyVecEnv([lambda: make_env(config) for _ in range(n_envs)])
    batched = PopulationVecEnv(n_envs, simulator=simulator, population=pool, config=config)
    for vec in (dummy, batched):
        vec.seed(11)
    obs_dummy, obs_batched = dummy.reset(), batched.reset()
    np.testing.assert_allclose(obs_batched, obs_dummy, rtol=1e-6)
    for t in range(steps):
        np.testing.assert_array_equal(
            np.stack(batched.env_method("action_masks")), np.stack(dummy.env_method("action_masks"))
        )
        obs_d, rew_d, done_d, info_d = dummy.step(actions[t])
        obs_b, rew_b, done_b, info_b = batched.step(actions[t])
        np.testing.assert_allclose(obs_b, obs_d, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(rew_b, rew_d, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(done_b, done_d)
        for d, b in zip(info_d, info_b, strict=True):
            assert_same_info(b, {key: d[key] for key in INFO_KEYS})
            if TERMINAL_OBSERVATION in d:
                np.testing.assert_allclose(b[TERMINAL_OBSERVATION], d[TERMINAL_OBSERVATION], rtol=1e-6)
                assert b[TRUNCATED] and d[TRUNCATED]


@CONFIGS
def test_gymnasium_vector_env_returns_what_sync_vector_env_of_single_envs_does(config: EpisodeConfig) -> None:
    n_envs, seed, steps = 3, 5, 2 * HORIZON + 2
    vector, sync = make_vec(config, n_envs), make_vec(config, n_envs, mode="sync")
    assert isinstance(vector.unwrapped, ActivationVectorEnv)
    assert isinstance(sync.unwrapped, gym.vector.SyncVectorEnv)
    obs_v, info_v = vector.reset(seed=seed)
    obs_s, info_s = sync.reset(seed=seed)
    np.testing.assert_allclose(obs_v, obs_s, rtol=1e-6)
    assert info_v == info_s == {}
    actions = rollout_actions(n_envs, steps)
    for t in range(steps):
        obs_v, rew_v, term_v, trunc_v, info_v = vector.step(actions[t])
        obs_s, rew_s, term_s, trunc_s, info_s = sync.step(actions[t])
        np.testing.assert_allclose(obs_v, obs_s, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(rew_v, rew_s, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(term_v, term_s)
        np.testing.assert_array_equal(trunc_v, trunc_s)
        assert sorted(info_v) == sorted(info_s)
        assert_same_info(info_v, info_s)
        if t == HORIZON:
            assert not np.any(rew_v) and info_v == {}, "the step after truncation resets every slot"


def test_every_env_returns_the_same_info_keys_sb3_adding_only_its_own_at_an_episode_end() -> None:
    simulator, pool = small()
    keys = set(INFO_KEYS)
    single = make_env()
    single.reset(seed=0)
    assert single.step(1)[-1].keys() == keys
    vector = make_vec(PLAIN, 2)
    vector.reset(seed=0)
    assert vector.step(np.ones(2, dtype=np.int64))[-1].keys() == keys | {f"_{key}" for key in keys}
    sb3 = PopulationVecEnv(2, simulator=simulator, population=pool, config=PLAIN)
    sb3.reset()
    for t in range(HORIZON):
        infos = sb3.step(np.ones(2, dtype=np.int64))[-1]
        extra = {TRUNCATED, TERMINAL_OBSERVATION} if t == HORIZON - 1 else set()
        assert [info.keys() for info in infos] == [keys | extra] * 2


def test_sb3_agents_train_on_the_batched_env() -> None:
    simulator, pool = small()
    env = PopulationVecEnv(8, simulator=simulator, population=pool, config=SHIFTED)
    env.seed(0)
    PPO("MlpPolicy", env, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(128)
    MaskablePPO("MlpPolicy", env, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(128)


def test_single_env_refuses_to_step_before_reset() -> None:
    simulator, pool = small()
    with pytest.raises(gym.error.ResetNeeded):
        ActivationEnv(simulator=simulator, population=pool).step(0)
