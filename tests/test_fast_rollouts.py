"""SB3's rollouts with ``winback.agents.fast_rollouts``: the same buffers as SB3's own loop, faster;
returns that end at the horizon."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.fast_rollouts import (
    BatchedTimeoutBootstrap,
    EndReturnsAtHorizon,
    horizon_callback,
    without_distribution_checks,
)
from winback.envs.episodes import EpisodeConfig
from winback.envs.population import PopulationVecEnv

N_ENVS, HORIZON, N_STEPS = 8, 3, 10


class Seen(BaseCallback):
    """What the environment returned, before any later callback changes it: the slots that ended by
    the time limit, and each step's rewards."""

    def __init__(self) -> None:
        super().__init__()
        self.truncations = 0
        self.rewards: list[np.ndarray] = []

    def _on_step(self) -> bool:
        self.truncations += sum(info.get("TimeLimit.truncated", False) for info in self.locals["infos"])
        self.rewards.append(self.locals["rewards"].copy())
        return True


def rollout(
    algo: type, normalize: bool = False, horizon: BaseCallback | None = None, fast: bool = False
) -> tuple[dict[str, np.ndarray], Seen]:
    """One rollout of a fresh model (seed 0) on episodes of :data:`HORIZON` periods, with the callback
    ``horizon`` after the one that records what the environment returned (:class:`Seen`); ``fast``:
    inside :func:`without_distribution_checks`."""
    env = PopulationVecEnv(N_ENVS, config=EpisodeConfig(horizon=HORIZON))
    env = VecNormalize(env) if normalize else env
    env.seed(0)
    kwargs = {"batch_size": N_ENVS * N_STEPS} if algo is not A2C else {}
    policy = "MlpLstmPolicy" if algo is RecurrentPPO else "MlpPolicy"
    model = algo(policy, env, n_steps=N_STEPS, seed=0, device="cpu", **kwargs)
    seen = Seen()
    _, callback = model._setup_learn(N_ENVS * N_STEPS, [seen] if horizon is None else [seen, horizon])
    callback.on_training_start(locals(), globals())
    with without_distribution_checks() if fast else nullcontext():
        model.collect_rollouts(env, callback, model.rollout_buffer, n_rollout_steps=N_STEPS)
    buffer = model.rollout_buffer
    fields = ("observations", "actions", "rewards", "returns", "advantages", "values", "log_probs")
    return {name: getattr(buffer, name).copy() for name in fields}, seen


@pytest.mark.parametrize("algo", [PPO, A2C, MaskablePPO])
@pytest.mark.parametrize("normalize", [False, True])
def test_the_batched_bootstrap_fills_the_buffer_as_sb3s_loop_does(algo: type, normalize: bool) -> None:
    reference, seen = rollout(algo, normalize)
    fast, seen_fast = rollout(algo, normalize, BatchedTimeoutBootstrap(), fast=True)
    # the flags as the environment returned them, seen before the callback clears them
    assert seen.truncations == seen_fast.truncations == N_ENVS * (N_STEPS // HORIZON)
    for name in ("observations", "actions", "values", "log_probs"):
        np.testing.assert_array_equal(fast[name], reference[name], err_msg=name)
    # the values of the truncated slots come from one batched forward pass instead of one per slot:
    # equal up to float32 rounding
    for name in ("rewards", "returns", "advantages"):
        np.testing.assert_allclose(fast[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("algo", [PPO, A2C, MaskablePPO, RecurrentPPO])
def test_returns_that_end_at_the_horizon_hold_only_the_environments_rewards(algo: type) -> None:
    bootstrapped, seen = rollout(algo)
    ended, seen_ended = rollout(algo, horizon=EndReturnsAtHorizon())
    assert seen.truncations == seen_ended.truncations == N_ENVS * (N_STEPS // HORIZON)
    returned = np.stack(seen_ended.rewards)
    np.testing.assert_array_equal(ended["rewards"], returned)
    at_horizon = np.zeros_like(returned, dtype=bool)
    at_horizon[HORIZON - 1 :: HORIZON] = True  # every slot's episode ends on these steps
    assert np.all(bootstrapped["rewards"][at_horizon] != np.stack(seen.rewards)[at_horizon])  # SB3 adds V
    np.testing.assert_array_equal(bootstrapped["rewards"][~at_horizon], ended["rewards"][~at_horizon])


def test_ending_returns_at_the_horizon_is_for_on_policy_algorithms() -> None:
    with pytest.raises(TypeError, match="on-policy"):
        EndReturnsAtHorizon().init_callback(DQN("MlpPolicy", PopulationVecEnv(2), device="cpu"))


@pytest.mark.parametrize("algo", [DQN, RecurrentPPO])
def test_the_batched_bootstrap_refuses_algorithms_that_bootstrap_otherwise(algo: type) -> None:
    policy = "MlpLstmPolicy" if algo is RecurrentPPO else "MlpPolicy"
    model = algo(policy, PopulationVecEnv(2), device="cpu")
    with pytest.raises(TypeError, match="BatchedTimeoutBootstrap is for"):
        BatchedTimeoutBootstrap().init_callback(model)


def test_distribution_checks_come_back_after_the_block() -> None:
    distribution = torch.distributions.Distribution
    assert distribution._validate_args
    with pytest.raises(RuntimeError, match="inside"):
        with without_distribution_checks():
            torch.distributions.Categorical(logits=torch.tensor([float("nan"), 0.0]))  # not checked
            assert not distribution._validate_args
            raise RuntimeError("inside")
    assert distribution._validate_args
    with pytest.raises(ValueError):
        torch.distributions.Categorical(logits=torch.tensor([float("nan"), 0.0]))


@pytest.mark.parametrize(
    ("algo", "ending", "bootstrapping"),
    [
        (PPO, EndReturnsAtHorizon, BatchedTimeoutBootstrap),
        (A2C, EndReturnsAtHorizon, BatchedTimeoutBootstrap),
        (MaskablePPO, EndReturnsAtHorizon, BatchedTimeoutBootstrap),
        (RecurrentPPO, EndReturnsAtHorizon, type(None)),
        (DQN, type(None), type(None)),
    ],
)
def test_each_algorithm_gets_the_horizon_callback_its_rollouts_need(
    algo: type, ending: type, bootstrapping: type
) -> None:
    policy = "MlpLstmPolicy" if algo is RecurrentPPO else "MlpPolicy"
    model = algo(policy, PopulationVecEnv(2), device="cpu")
    assert type(horizon_callback(model, bootstrap=False)) is ending
    assert type(horizon_callback(model, bootstrap=True)) is bootstrapping
