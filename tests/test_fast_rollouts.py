"""SB3's rollouts with ``winback.agents.fast_rollouts``: the same buffers as SB3's own loop, faster."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.fast_rollouts import BatchedTimeoutBootstrap, without_distribution_checks
from winback.envs.episodes import EpisodeConfig
from winback.envs.population import PopulationVecEnv

N_ENVS, HORIZON, N_STEPS = 8, 3, 10


class Truncations(BaseCallback):
    """Counts the slots that end by the time limit, as the environment reports them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _on_step(self) -> bool:
        self.count += sum(info.get("TimeLimit.truncated", False) for info in self.locals["infos"])
        return True


def rollout(algo: type, fast: bool, normalize: bool) -> tuple[dict[str, np.ndarray], int]:
    """One rollout of a fresh model (seed 0) on episodes of :data:`HORIZON` periods: its buffer and
    how many episodes were truncated in it."""
    env = PopulationVecEnv(N_ENVS, config=EpisodeConfig(horizon=HORIZON))
    env = VecNormalize(env) if normalize else env
    env.seed(0)
    kwargs = {"batch_size": N_ENVS * N_STEPS} if algo is not A2C else {}
    model = algo("MlpPolicy", env, n_steps=N_STEPS, seed=0, device="cpu", **kwargs)
    truncations = Truncations()
    callbacks = [truncations, BatchedTimeoutBootstrap()] if fast else [truncations]
    _, callback = model._setup_learn(N_ENVS * N_STEPS, callbacks)
    callback.on_training_start(locals(), globals())
    with without_distribution_checks() if fast else nullcontext():
        model.collect_rollouts(env, callback, model.rollout_buffer, n_rollout_steps=N_STEPS)
    buffer = model.rollout_buffer
    fields = ("observations", "actions", "rewards", "returns", "advantages", "values", "log_probs")
    return {name: getattr(buffer, name).copy() for name in fields}, truncations.count


@pytest.mark.parametrize("algo", [PPO, A2C, MaskablePPO])
@pytest.mark.parametrize("normalize", [False, True])
def test_the_batched_bootstrap_fills_the_buffer_as_sb3s_loop_does(algo: type, normalize: bool) -> None:
    reference, truncated = rollout(algo, fast=False, normalize=normalize)
    fast, truncated_fast = rollout(algo, fast=True, normalize=normalize)
    # the flags as the environment returned them, seen before the callback clears them
    assert truncated == truncated_fast == N_ENVS * (N_STEPS // HORIZON)
    for name in ("observations", "actions", "values", "log_probs"):
        np.testing.assert_array_equal(fast[name], reference[name], err_msg=name)
    # the values of the truncated slots come from one batched forward pass instead of one per slot:
    # equal up to float32 rounding
    for name in ("rewards", "returns", "advantages"):
        np.testing.assert_allclose(fast[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)


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
