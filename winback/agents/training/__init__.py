"""Train an RL agent on a scenario's training users and select it on its validation users.

A run directory holds what a user reads as JSON/CSV/PNG: ``config.json`` (the :class:`TrainConfig`),
``prices.json`` (on a scenario whose operations limit coupons or care: the prices of those the agent
reads after its features, :class:`~winback.allocation.PriceInput`), ``train.json`` (timesteps, wall
time, best validation value, where the users came from:
:func:`~winback.scenarios.population.describe_population`, the rule it was cloned from if any),
``learning_curve.csv`` and ``.png`` (validation net value per user against timesteps), the
observation statistics (``normalization.json``, ``best_normalization.json``); SB3's zips
(``model.zip``, ``best_model.zip``, ``checkpoints/``) are internal artifacts that
:class:`~winback.agents.sb3.SB3Policy` loads. TensorBoard logs go to ``tb/``.

One concern a module: :mod:`~winback.agents.training.config` (the :class:`TrainConfig` and its
checks), :mod:`~winback.agents.training.runs` (run directories, checkpoints, resuming),
:mod:`~winback.agents.training.factory` (environment and model),
:mod:`~winback.agents.training.callbacks` (validation and checkpoints during training),
:mod:`~winback.agents.training.imitation` (starting from a tuned rule),
:mod:`~winback.agents.training.curves` (the learning curve); this package runs them in order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import CallbackList

from winback.agents.fast_rollouts import horizon_callback, without_distribution_checks
from winback.agents.sb3 import (
    MODEL_FILES,
    NORMALIZATION_FILES,
    PRICES_FILE,
    ObservationNormalization,
    SB3Policy,
)
from winback.agents.training.callbacks import VALIDATION_SEED, RunMonitor
from winback.agents.training.config import TrainConfig
from winback.agents.training.curves import plot_curve
from winback.agents.training.factory import make_env, new_model
from winback.agents.training.imitation import CriticWarmUp, kickstart
from winback.agents.training.runs import load_checkpoint, resume_run, start_run
from winback.errors import ConfigError
from winback.scenarios.population import describe_population
from winback.scenarios.scenario import load_scenario

__all__ = ["TrainConfig", "TrainResult", "train"]

IMITATION_FILE = "imitation.json"
"""The rule a run was cloned from and how closely (:class:`~winback.agents.training.imitation.Imitation`)."""


@dataclass
class TrainResult:
    """Where a run ended; every file of it is in ``out_dir``."""

    out_dir: Path
    timesteps: int
    wall_seconds: float
    """Training time, over every resumed part of the run."""
    best_value: float
    """Best validation net value per user (the model in ``best_model.zip``)."""
    best_timesteps: int
    """Timesteps at which the best model was evaluated."""
    policy: SB3Policy
    """The final model, in memory."""


def train(
    config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> TrainResult:
    """Train ``config.algo`` on the scenario's training users up to ``config.total_timesteps``.

    ``resume`` continues the run in ``out_dir`` from its latest checkpoint; the config must equal the
    run's except for ``total_timesteps``. Without ``resume``, ``out_dir`` must not hold a run yet.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    scenario = load_scenario(config.scenario)
    population = describe_population(scenario.population_config, scenario.model_config)
    env = make_env(config, scenario)
    price_input = env.get_attr("price_input")[0]
    if price_input is not None and config.imitate:
        raise ConfigError(
            f"TrainConfig.imitate = {config.imitate!r}: {scenario.name}'s operations limit "
            f"{' and '.join(price_input.resources)}, which the agent learns under prices a rule does not "
            "read; train it from random weights (imitate = '')"
        )
    checkpoint = resume_run(config, out) if resume else start_run(config, out)
    torch.set_num_threads(config.torch_threads)
    if price_input is not None:
        (out / PRICES_FILE).write_text(json.dumps(price_input.to_dict(), indent=2) + "\n")
    if checkpoint is None:
        model = new_model(config, env, out / "tb")
        if config.imitate:
            imitation = kickstart(config, scenario, model, env, progress=progress)
            (out / IMITATION_FILE).write_text(json.dumps(imitation.to_dict(), indent=2) + "\n")
    else:
        model = load_checkpoint(config, env, out, checkpoint)
    monitor = RunMonitor(config, scenario, env, out, checkpoint, started)
    horizon = horizon_callback(model, config.bootstrap_horizon)
    callbacks = [monitor] if horizon is None else [monitor, horizon]  # the monitor sees infos as returned
    if config.imitate:
        callbacks.append(CriticWarmUp(config.value_warmup))
    with without_distribution_checks():
        model.learn(
            max(config.total_timesteps - model.num_timesteps, 0),
            callback=CallbackList(callbacks),
            tb_log_name=config.algo,
            reset_num_timesteps=checkpoint is None,
            progress_bar=progress,
        )
    model.save(out / MODEL_FILES["final"])
    normalization = ObservationNormalization.of(env)
    normalization.save(out / NORMALIZATION_FILES["final"])
    wall_seconds = monitor.wall_seconds()
    summary = {
        "algo": config.algo,
        "scenario": config.scenario,
        "timesteps": model.num_timesteps,
        "wall_seconds": round(wall_seconds, 1),
        "best_validation_net_value": monitor.best_value,
        "best_timesteps": monitor.best_timesteps,
        "final_validation_net_value": monitor.last_value,
        "validation_users": monitor.users.n_users,
        "validation_seed": VALIDATION_SEED,
        "population": population,
    }
    if config.imitate:
        summary["imitation"] = json.loads((out / IMITATION_FILE).read_text())
    (out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_curve(out, config)
    return TrainResult(
        out_dir=out,
        timesteps=model.num_timesteps,
        wall_seconds=wall_seconds,
        best_value=monitor.best_value,
        best_timesteps=monitor.best_timesteps,
        policy=SB3Policy(model, normalization, name=config.algo, price_input=price_input),
    )
