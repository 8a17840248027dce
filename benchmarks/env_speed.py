"""Environment throughput against references measured in the same run.

    python benchmarks/env_speed.py --out runs/env_speed            # full (a few minutes)
    python benchmarks/env_speed.py --out runs/env_speed --quick    # smoke

1. Single-environment ``step()`` calls per second of ``gymnasium.make("winback/Activation-v1")``
   (packaged CDNOW model, default wrappers) against ``gymnasium.make("CartPole-v1")``, both with
   random actions and resets at episode end. Issue target: at least 20,000 steps/s.
2. SB3 PPO with ``PopulationVecEnv(64)`` against ``DummyVecEnv`` of 64 ``ActivationEnv`` (the same
   episodes, see ``tests/test_envs.py``): rollout collection (env steps plus policy inference,
   ``collect_rollouts``) and end-to-end training (``learn``) env-steps per second. PPO settings for
   both: ``n_steps=64`` (4,096 steps per rollout), ``batch_size=1024``, ``n_epochs=4`` (a large
   minibatch: with PPO's defaults, minibatch 64 and 10 epochs, gradient work of 0.4-0.8 ms a sample
   holds training to ~1-2k env-steps/s whatever the environment costs). Issue targets: at least 5x
   rollout and 2x training throughput. Measured three times, each time on both sides: with SB3 as it
   ships, and with ``winback train``'s loop (``winback.agents.fast_rollouts``) returns bootstrapped
   at the horizon and, its default, ending there.

One torch thread (``--threads``) so the figures do not depend on what else runs; the load average
at start and end is reported. Writes ``env_speed.json`` and ``env_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import winback.envs
from winback.agents.fast_rollouts import horizon_callback, without_distribution_checks
from winback.envs.defaults import default_population
from winback.envs.population import PopulationVecEnv

N_ENVS = 64


def single_env_rate(make: Callable[[], gym.Env], seconds: float, seed: int) -> float:
    env = make()
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(4096)]
    for action in actions[:256]:  # warm-up: compiled code is built (or loaded) on first use
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    steps, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for action in actions[:256]:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        steps += 256
    return steps / elapsed


class _NoOp(BaseCallback):
    def _on_step(self) -> bool:
        return True


LOOPS: dict[str, tuple[str, bool | None]] = {
    "sb3": ("SB3 as shipped", None),
    "winback_bootstrap": ("winback train's loop, bootstrap_horizon = true", True),
    "winback": ("winback train's loop, the default", False),
}
"""Rollout loops measured: a label and ``winback train``'s ``bootstrap_horizon`` (``None``: SB3's own
loop, nothing added)."""


def ppo_rates(env: VecEnv, rollouts: int, seed: int, loop: str) -> dict[str, float]:
    """Env-steps per second of rollout collection alone and of ``learn`` (collection + updates) in
    the rollout loop ``loop`` (:data:`LOOPS`)."""
    env.seed(seed)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=1024, n_epochs=4, seed=seed, device="cpu")
    steps_per_rollout = model.n_steps * env.num_envs
    bootstrap = LOOPS[loop][1]

    def added() -> BaseCallback:
        return (None if bootstrap is None else horizon_callback(model, bootstrap)) or _NoOp()

    with nullcontext() if bootstrap is None else without_distribution_checks():
        _, callback = model._setup_learn(steps_per_rollout * rollouts, added())
        callback.on_training_start(locals(), globals())
        model.collect_rollouts(env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)  # warm-up
        started = time.perf_counter()
        for _ in range(rollouts):
            model.collect_rollouts(env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
        collect = steps_per_rollout * rollouts / (time.perf_counter() - started)
        started = time.perf_counter()
        model.learn(steps_per_rollout * rollouts, callback=added(), reset_num_timesteps=True)
        train = steps_per_rollout * rollouts / (time.perf_counter() - started)
    return {"rollout_steps_per_s": collect, "train_steps_per_s": train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/env_speed"))
    parser.add_argument("--quick", action="store_true", help="short measurements (smoke test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds, rollouts = (1.0, 1) if args.quick else (10.0, 6)
    load_start = os.getloadavg()
    default_population()  # load the packaged model and CDNOW once, outside the timings

    activation = single_env_rate(lambda: gym.make(winback.envs.ACTIVATION_ID), seconds, args.seed)
    cartpole = single_env_rate(lambda: gym.make("CartPole-v1"), seconds, args.seed)
    ppo = {}
    for loop in LOOPS:
        batched = ppo_rates(PopulationVecEnv(N_ENVS), rollouts, args.seed, loop)
        dummy = ppo_rates(
            DummyVecEnv([lambda: gym.make(winback.envs.ACTIVATION_ID) for _ in range(N_ENVS)]),
            rollouts,
            args.seed,
            loop,
        )
        ppo[loop] = {
            "population_vec_env": batched,
            "dummy_vec_env": dummy,
            "rollout_ratio": batched["rollout_steps_per_s"] / dummy["rollout_steps_per_s"],
            "train_ratio": batched["train_steps_per_s"] / dummy["train_steps_per_s"],
        }
    results = {
        "single_env_steps_per_s": {"activation": activation, "cartpole": cartpole},
        "activation_over_cartpole": activation / cartpole,
        "ppo": ppo,
        "threads": args.threads,
        "quick": args.quick,
        "load_average": {"start": load_start, "end": os.getloadavg()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "env_speed.json").write_text(json.dumps(results, indent=2))
    table = _markdown(results)
    (args.out / "env_speed.md").write_text(table)
    print(table)


def _markdown(r: dict) -> str:
    single = r["single_env_steps_per_s"]
    rows = [
        "| measurement | winback | reference | ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| single env steps/s (vs CartPole-v1) | {single['activation']:,.0f} "
        f"| {single['cartpole']:,.0f} | {r['activation_over_cartpole']:.3f} | >= 20,000 steps/s |",
    ]
    for loop, (label, _) in LOOPS.items():
        p = r["ppo"][loop]
        b, d = p["population_vec_env"], p["dummy_vec_env"]
        rows += [
            f"| PPO rollout env-steps/s, N={N_ENVS}, {label} (PopulationVecEnv vs DummyVecEnv) "
            f"| {b['rollout_steps_per_s']:,.0f} | {d['rollout_steps_per_s']:,.0f} "
            f"| {p['rollout_ratio']:.2f}x | >= 5x |",
            f"| PPO training env-steps/s, N={N_ENVS}, {label} | {b['train_steps_per_s']:,.0f} "
            f"| {d['train_steps_per_s']:,.0f} | {p['train_ratio']:.2f}x | >= 2x |",
        ]
    load = r["load_average"]
    rows += [
        "",
        f"threads {r['threads']}, load average at start {np.round(load['start'], 2).tolist()}, "
        f"at end {np.round(load['end'], 2).tolist()}",
        "",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
