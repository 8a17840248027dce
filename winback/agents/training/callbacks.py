"""The callback of a training run: validation on the scenario's validation users, the best model,
and checkpoints, as training crosses their intervals.

Validation runs the benchmark's own rollout (:func:`winback.benchmarks.rollout.run_policy`) with a
fixed simulator seed, so a learning curve measures exactly what a benchmark reports: mean net value
per user over the scenario's horizon; an agent trained under prices (a scenario whose operations
limit coupons or care) is validated under the allocation, which sets them, and the limits per user
of the evaluation users (:meth:`~winback.scenarios.scenario.Scenario.with_limits_for`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.sb3 import MODEL_FILES, NORMALIZATION_FILES, ObservationNormalization, SB3Policy
from winback.agents.training.config import TrainConfig
from winback.agents.training.curves import append_curve
from winback.agents.training.runs import Checkpoint, save_checkpoint
from winback.benchmarks.rollout import run_policy
from winback.scenarios.scenario import Scenario
from winback.simulator.state import SimState

VALIDATION_SEED = 10_000
"""Simulator seed of every validation rollout (and of the validation subsample): fixed, so the
curves of different runs meet the same luck and compare directly."""


def validation_users(scenario: Scenario, n_users: int) -> SimState:
    """``n_users`` of the scenario's validation users (0: all), a fixed seeded subsample."""
    users = scenario.validation_users()
    if n_users == 0 or n_users >= users.n_users:
        return users
    chosen = np.random.default_rng(VALIDATION_SEED).choice(users.n_users, n_users, replace=False)
    return users.take(np.sort(chosen))


class RunMonitor(BaseCallback):
    """Evaluates on validation users and writes checkpoints as training crosses their intervals."""

    def __init__(
        self,
        config: TrainConfig,
        scenario: Scenario,
        env: VecNormalize,
        out: Path,
        checkpoint: Checkpoint | None,
        started: float,
    ) -> None:
        super().__init__()
        self.config, self.scenario, self.env, self.out, self.started = config, scenario, env, out, started
        self.users = validation_users(scenario, config.eval_users)
        self.world = (
            scenario.with_limits_for(self.users.n_users, scenario.eval_users().n_users)
            if scenario.operations.shared
            else scenario
        )
        """The scenario validation runs: its limits per user as on the evaluation users."""
        self.simulators = {VALIDATION_SEED: scenario.simulator_for(VALIDATION_SEED)}
        self.wall_offset = 0.0 if checkpoint is None else checkpoint.wall_seconds
        self.best_value = -math.inf if checkpoint is None else checkpoint.best_value
        self.best_timesteps = -1 if checkpoint is None else checkpoint.best_timesteps
        self.last_value = math.nan
        self.last_eval = self.last_checkpoint = 0 if checkpoint is None else checkpoint.timesteps

    def wall_seconds(self) -> float:
        return self.wall_offset + time.perf_counter() - self.started

    def _on_training_start(self) -> None:
        if self.num_timesteps == 0:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps // self.config.eval_every > self.last_eval // self.config.eval_every:
            self.evaluate()
        if (
            self.num_timesteps // self.config.checkpoint_every
            > self.last_checkpoint // self.config.checkpoint_every
        ):
            self.save_checkpoint()
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps > self.last_eval:
            self.evaluate()
        if self.num_timesteps > self.last_checkpoint:
            self.save_checkpoint()

    def evaluate(self) -> None:
        """Validation net value per user of the current model; keeps the best model."""
        normalization = ObservationNormalization.of(self.env)
        price_input = self.env.get_attr("price_input")[0]
        policy = SB3Policy(self.model, normalization, name=self.config.algo, price_input=price_input)
        run = run_policy(
            policy,
            self.world,
            self.users,
            [VALIDATION_SEED],
            category="agent",
            simulators=self.simulators,
            allocation=price_input is not None,
        )
        value = float(run.metrics["net_value"].mean())
        self.last_eval, self.last_value = self.num_timesteps, value
        append_curve(self.out, (self.num_timesteps, round(self.wall_seconds(), 2), value))
        self.logger.record("validation/net_value_per_user", value)
        self.logger.dump(self.num_timesteps)
        if value > self.best_value:
            self.best_value, self.best_timesteps = value, self.num_timesteps
            self.model.save(self.out / MODEL_FILES["best"])
            normalization.save(self.out / NORMALIZATION_FILES["best"])

    def save_checkpoint(self) -> None:
        """A checkpoint of the run at the current timesteps (:func:`runs.save_checkpoint`)."""
        returns = self.env.ret_rms
        state = Checkpoint(
            timesteps=self.num_timesteps,
            wall_seconds=self.wall_seconds(),
            best_value=self.best_value,
            best_timesteps=self.best_timesteps,
            returns={"mean": float(returns.mean), "var": float(returns.var), "count": float(returns.count)},
        )
        save_checkpoint(self.out, self.model, self.env, state)
        self.last_checkpoint = self.num_timesteps
