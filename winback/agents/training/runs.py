"""Run directories: starting one, its checkpoints, and resuming from the latest.

A run directory holds ``config.json`` (the :class:`TrainConfig`), the learning curve
(:mod:`winback.agents.training.curves`), the best model so far (``best_model.zip``,
``best_normalization.json``), and ``checkpoints/<timesteps>/`` with the model, its observation
statistics, the best model at that point and ``checkpoint.json`` (written last: a checkpoint without
it is incomplete and ignored).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.sb3 import ALGORITHMS, MODEL_FILES, NORMALIZATION_FILES, ObservationNormalization
from winback.agents.training.config import TrainConfig
from winback.agents.training.curves import read_curve, write_curve
from winback.errors import ConfigError


@dataclass
class Checkpoint:
    """A saved point of a run that training resumes from."""

    timesteps: int
    wall_seconds: float
    best_value: float
    best_timesteps: int
    returns: dict[str, Any]
    """``VecNormalize``'s running statistics of discounted returns (mean, var, count)."""


def start_run(config: TrainConfig, out: Path) -> None:
    """A new run directory with ``config.json`` and the header of the learning curve."""
    if (out / "config.json").exists():
        raise ConfigError(f"{out} already holds a training run: resume it or choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    write_curve(out, [])


def resume_run(config: TrainConfig, out: Path) -> Checkpoint:
    """The run's latest checkpoint, with the best model and the learning curve restored to it."""
    config_path = out / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{out} holds no training run to resume (no config.json)")
    stored = TrainConfig.from_dict(json.loads(config_path.read_text()), source=str(config_path))
    differing = [
        f"{key} (run: {value!r}, given: {getattr(config, key)!r})"
        for key, value in stored.__dict__.items()
        if key != "total_timesteps" and getattr(config, key) != value
    ]
    if differing:
        raise ConfigError(
            f"cannot resume {out} with a different config (only total_timesteps may change): "
            + "; ".join(differing)
        )
    found = sorted((out / "checkpoints").glob("*/checkpoint.json"))
    if not found:
        raise ConfigError(f"{out} holds no checkpoint to resume from")
    directory = found[-1].parent
    checkpoint = Checkpoint(**json.loads(found[-1].read_text()))
    shutil.copy2(directory / MODEL_FILES["best"], out / MODEL_FILES["best"])
    shutil.copy2(directory / NORMALIZATION_FILES["best"], out / NORMALIZATION_FILES["best"])
    write_curve(out, [row for row in read_curve(out) if row[0] <= checkpoint.timesteps])
    config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return checkpoint


def save_checkpoint(out: Path, model: BaseAlgorithm, env: VecNormalize, checkpoint: Checkpoint) -> None:
    """The model, its statistics and the best model so far; ``checkpoint.json`` last marks it complete."""
    directory = _checkpoint_dir(out, checkpoint.timesteps)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILES["final"])
    ObservationNormalization.of(env).save(directory / NORMALIZATION_FILES["final"])
    shutil.copy2(out / MODEL_FILES["best"], directory / MODEL_FILES["best"])
    shutil.copy2(out / NORMALIZATION_FILES["best"], directory / NORMALIZATION_FILES["best"])
    (directory / "checkpoint.json").write_text(json.dumps(dataclasses.asdict(checkpoint), indent=2) + "\n")


def load_checkpoint(
    config: TrainConfig, env: VecNormalize, out: Path, checkpoint: Checkpoint
) -> BaseAlgorithm:
    """The checkpointed model on a fresh environment, with the normalisation statistics it trained with."""
    directory = _checkpoint_dir(out, checkpoint.timesteps)
    ObservationNormalization.load(directory / NORMALIZATION_FILES["final"]).restore(env)
    returns = env.ret_rms
    returns.mean, returns.var, returns.count = (
        np.float64(checkpoint.returns["mean"]),
        np.float64(checkpoint.returns["var"]),
        checkpoint.returns["count"],
    )
    # Loading re-seeds every generator; a seed moved by the timesteps gives the resumed part fresh users.
    return ALGORITHMS[config.algo].load(
        directory / MODEL_FILES["final"],
        env=env,
        device="cpu",
        seed=config.seed + checkpoint.timesteps,
        tensorboard_log=str(out / "tb"),
    )


def _checkpoint_dir(out: Path, timesteps: int) -> Path:
    return out / "checkpoints" / f"{timesteps:012d}"
