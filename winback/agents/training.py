"""Train an RL agent on a scenario's training users and select it on its validation users.

A run directory holds what a user reads as JSON/CSV/PNG: ``config.json`` (the :class:`TrainConfig`),
``train.json`` (timesteps, wall time, best validation value), ``learning_curve.csv`` and ``.png``
(validation net value per user against timesteps), the observation statistics
(``normalization.json``, ``best_normalization.json``); SB3's zips (``model.zip``,
``best_model.zip``, ``checkpoints/``) are internal artifacts that :class:`~winback.agents.sb3.SB3Policy`
loads. TensorBoard logs go to ``tb/``.

Validation runs the benchmark's own rollout (:func:`winback.benchmarks.rollout.run_policy`) with a
fixed simulator seed, so a learning curve measures exactly what a benchmark reports: mean net value
per user over the scenario's horizon.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.fast_rollouts import horizon_callback, without_distribution_checks
from winback.agents.sb3 import (
    ALGORITHMS,
    MODEL_FILES,
    NORMALIZATION_FILES,
    ObservationNormalization,
    SB3Policy,
)
from winback.benchmarks.rollout import run_policy
from winback.envs.population import PopulationVecEnv
from winback.errors import ConfigError
from winback.scenarios.scenario import BUILT_IN, Scenario, load_scenario
from winback.simulator.state import SimState

VALIDATION_SEED = 10_000
"""Simulator seed of every validation rollout (and of the validation subsample): fixed, so the
curves of different runs meet the same luck and compare directly."""
PPO_FAMILY = ("ppo", "maskable_ppo", "recurrent_ppo")
"""Algorithms that split a rollout into minibatches of ``batch_size``."""
CURVE_COLUMNS = ("timesteps", "wall_seconds", "validation_net_value")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; the defaults are the best found on the default scenario."""

    algo: str = "maskable_ppo"
    """Algorithm: ppo, a2c, dqn, maskable_ppo (never samples a masked action) or recurrent_ppo (LSTM).
    On the default scenario at 1M timesteps MaskablePPO and PPO tie over five seeds; RecurrentPPO,
    A2C and DQN score lower (``benchmarks/RESULTS.md``, "Which algorithm")."""
    scenario: str = "default"
    """Scenario whose training users the agent learns on: a built-in name or the path of a TOML file."""
    total_timesteps: int = 300_000
    """User-periods to train on (on-policy algorithms round up to whole rollouts)."""
    seed: int = 0
    """Seeds the simulator's streams, the environment's draws of users and the networks."""
    n_envs: int = 64
    """Users stepping together in the vectorised environment."""
    learning_rate: float = 3e-4
    """Adam step size (constant; 1e-4 learns too slowly in 300k timesteps, 1e-3 ends lower)."""
    n_steps: int = 128
    """On-policy rollout length per environment slot (PPO family, A2C)."""
    batch_size: int = 256
    """Minibatch size (PPO family: must divide ``n_steps * n_envs``; DQN: replay sample size)."""
    n_epochs: int = 10
    """Passes over each rollout (PPO family; 4 learns less per timestep)."""
    gamma: float = 0.999
    """Discount factor; also discounts the returns reward normalisation scales by. Contacts pay back over
    months (a care message's lift fades over six weeks, a win-back rekindles interest): discount little."""
    gae_lambda: float = 0.95
    """GAE bias-variance trade-off (PPO family, A2C)."""
    clip_range: float = 0.2
    """PPO's policy-ratio clip."""
    ent_coef: float = 0.01
    """Entropy bonus (PPO family, A2C)."""
    vf_coef: float = 0.5
    """Value-loss weight (PPO family, A2C)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value (or Q) networks."""
    lstm_hidden_size: int = 64
    """LSTM units (recurrent_ppo)."""
    buffer_size: int = 100_000
    """Replay buffer transitions (DQN)."""
    learning_starts: int = 5_000
    """Transitions collected before the first gradient step (DQN)."""
    train_freq: int = 4
    """Vectorised steps between DQN updates."""
    gradient_steps: int = 16
    """Gradient steps per DQN update."""
    target_update_interval: int = 5_000
    """Timesteps between target-network updates (DQN)."""
    exploration_fraction: float = 0.2
    """Share of training over which DQN's epsilon falls from 1 to ``exploration_final_eps``."""
    exploration_final_eps: float = 0.05
    """Final epsilon of DQN's epsilon-greedy exploration."""
    normalize_observations: bool = True
    """Standardise observations with running statistics (saved as JSON with every model)."""
    reward: str = "expected"
    """What the agent learns from: ``expected`` (each period's net value in expectation over its
    draws, :meth:`~winback.simulator.core.Simulator.expected_reward`: the same objective with the
    purchase-draw noise removed) or ``realised`` (the drawn net value). Validation is realised.
    Expected: over seeds 0-4 at 600k timesteps its best validation value beat realised's in every seed
    (mean +1.39 $/user, ``benchmarks/RESULTS.md``)."""
    bootstrap_horizon: bool = False
    """What an episode's return holds at the scenario's horizon. ``False``: nothing after it, so the
    agent maximises what the benchmark measures, the net value over the horizon; the environment
    still reports a time limit, and training treats it as the end of the task. ``True``: SB3's
    time-limit bootstrap adds the critic's value of the user beyond the horizon (a continuing task).
    False: over seeds 0-3 at 600k timesteps its best validation value beat True's in three seeds and
    its mean by 1.66 $/user, with 1-4 points more opt-outs; a fifth seed, trained afterwards, tied
    (``benchmarks/RESULTS.md``)."""
    normalize_rewards: bool = True
    """Scale rewards by the running std of discounted returns (training only; validation is in dollars).
    The hyperparameter that matters most: without it, PPO learns far less (see :func:`_make_env`)."""
    eval_every: int = 20_000
    """Timesteps between validation evaluations (also one before training and one at the end)."""
    eval_users: int = 0
    """Validation users evaluated (a fixed seeded subsample; 0: all)."""
    checkpoint_every: int = 50_000
    """Timesteps between checkpoints (also one at the end, from which ``resume`` extends a run)."""
    torch_threads: int = 1
    """Threads torch may use."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), str(field.type))
        rollout = self.n_steps * self.n_envs
        checks: dict[str, tuple[bool, str]] = {
            "algo": (self.algo in ALGORITHMS, f"one of {', '.join(ALGORITHMS)}"),
            "scenario": (
                self.scenario in BUILT_IN
                or (self.scenario.endswith(".toml") and Path(self.scenario).is_file()),
                f"one of {', '.join(BUILT_IN)}, or the path of an existing .toml file",
            ),
            "total_timesteps": (self.total_timesteps >= 1, ">= 1"),
            "n_envs": (self.n_envs >= 1, ">= 1"),
            "learning_rate": (0 < self.learning_rate < math.inf, "(0, inf)"),
            "n_steps": (self.n_steps >= 1 and rollout > 1, ">= 1, and n_steps * n_envs >= 2"),
            "batch_size": (
                self.batch_size >= 2 and (self.algo not in PPO_FAMILY or rollout % self.batch_size == 0),
                f">= 2, and for {', '.join(PPO_FAMILY)} a divisor of n_steps * n_envs = {rollout}",
            ),
            "n_epochs": (self.n_epochs >= 1, ">= 1"),
            "gamma": (0 < self.gamma <= 1, "(0, 1]"),
            "gae_lambda": (0 <= self.gae_lambda <= 1, "[0, 1]"),
            "clip_range": (0 < self.clip_range < math.inf, "(0, inf)"),
            "ent_coef": (0 <= self.ent_coef < math.inf, "[0, inf)"),
            "vf_coef": (0 <= self.vf_coef < math.inf, "[0, inf)"),
            "max_grad_norm": (0 < self.max_grad_norm < math.inf, "(0, inf)"),
            "net_arch": (all(size >= 1 for size in self.net_arch), "sizes >= 1"),
            "lstm_hidden_size": (self.lstm_hidden_size >= 1, ">= 1"),
            "buffer_size": (self.buffer_size >= self.batch_size, f">= batch_size = {self.batch_size}"),
            "learning_starts": (self.learning_starts >= 0, ">= 0"),
            "train_freq": (self.train_freq >= 1, ">= 1"),
            "gradient_steps": (self.gradient_steps >= 1, ">= 1"),
            "target_update_interval": (self.target_update_interval >= 1, ">= 1"),
            "exploration_fraction": (0 < self.exploration_fraction <= 1, "(0, 1]"),
            "exploration_final_eps": (0 <= self.exploration_final_eps <= 1, "[0, 1]"),
            "eval_every": (self.eval_every >= 1, ">= 1"),
            "eval_users": (self.eval_users >= 0, ">= 0 (0: all)"),
            "checkpoint_every": (self.checkpoint_every >= 1, ">= 1"),
            "torch_threads": (self.torch_threads >= 1, ">= 1"),
            "reward": (self.reward in ("expected", "realised"), "'expected' or 'realised'"),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ConfigError(f"TrainConfig.{name} = {getattr(self, name)!r} (allowed: {allowed})")

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (``net_arch`` as a list)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """A config from ``values`` (lists allowed for tuples); errors name ``source`` and the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        try:
            return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from err

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """The fields set in a TOML file (top-level keys), then ``overrides`` on top of them."""
        try:
            with open(path, "rb") as file:
                values = tomllib.load(file)
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the training config ({err.strerror})") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from err
        return cls.from_dict({**values, **overrides}, source=str(path))


def _check_type(name: str, value: Any, annotation: str) -> None:
    """Raise if ``value`` is not of the annotated type (bools are not numbers here)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok, wanted = {
        "str": (isinstance(value, str), "a string"),
        "int": (is_int, "an integer"),
        "float": (is_int or isinstance(value, float), "a number"),
        "bool": (isinstance(value, bool), "true or false"),
        "tuple[int, ...]": (
            isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "a list of integers",
        ),
    }[annotation]
    if not ok:
        raise ConfigError(f"TrainConfig.{name} = {value!r} (expected {wanted})")


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


@dataclass
class _Checkpoint:
    """A saved point of a run that training resumes from."""

    timesteps: int
    wall_seconds: float
    best_value: float
    best_timesteps: int
    returns: dict[str, Any]
    """``VecNormalize``'s running statistics of discounted returns (mean, var, count)."""


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
    checkpoint = _resume_run(config, out) if resume else _start_run(config, out)
    torch.set_num_threads(config.torch_threads)
    env = _make_env(config, scenario)
    if checkpoint is None:
        model = _new_model(config, env, out / "tb")
    else:
        model = _load_checkpoint(config, env, out, checkpoint)
    monitor = _RunMonitor(config, scenario, env, out, checkpoint, started)
    horizon = horizon_callback(model, config.bootstrap_horizon)
    callbacks = [monitor] if horizon is None else [monitor, horizon]  # the monitor sees infos as returned
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
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot_curve(out, config)
    return TrainResult(
        out_dir=out,
        timesteps=model.num_timesteps,
        wall_seconds=wall_seconds,
        best_value=monitor.best_value,
        best_timesteps=monitor.best_timesteps,
        policy=SB3Policy(model, normalization, name=config.algo),
    )


def _start_run(config: TrainConfig, out: Path) -> None:
    """A new run directory with ``config.json`` and the header of the learning curve."""
    if (out / "config.json").exists():
        raise ConfigError(f"{out} already holds a training run: resume it or choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    _write_curve(out, [])


def _resume_run(config: TrainConfig, out: Path) -> _Checkpoint:
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
    checkpoint = _Checkpoint(**json.loads(found[-1].read_text()))
    shutil.copy2(directory / MODEL_FILES["best"], out / MODEL_FILES["best"])
    shutil.copy2(directory / NORMALIZATION_FILES["best"], out / NORMALIZATION_FILES["best"])
    _write_curve(out, [row for row in read_curve(out) if row[0] <= checkpoint.timesteps])
    config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return checkpoint


def _make_env(config: TrainConfig, scenario: Scenario) -> VecNormalize:
    env = PopulationVecEnv(
        config.n_envs, scenario, config.reward, simulator=scenario.simulator_for(config.seed)
    )
    env.seed(config.seed)
    # Reward normalisation (on by default): a period's reward is a rare purchase worth a few dollars
    # (std ~3.5 for a mean ~0.3) and returns run to tens of dollars, so unscaled value targets are far
    # from the unit scale the value loss, its coefficient and the shared learning rate are tuned for.
    # Measured at 300k timesteps (MaskablePPO, seed 0): validation net value per user 22.1 with and
    # 20.2 without it at gamma 0.99; 24.1 with and 16.8 without at gamma 0.999.
    # It changes only what the learner sees: validation and benchmarks measure dollars.
    return VecNormalize(
        env, norm_obs=config.normalize_observations, norm_reward=config.normalize_rewards, gamma=config.gamma
    )


def _new_model(config: TrainConfig, env: VecNormalize, tensorboard_log: Path) -> BaseAlgorithm:
    common: dict[str, Any] = {
        "env": env,
        "learning_rate": config.learning_rate,
        "gamma": config.gamma,
        "max_grad_norm": config.max_grad_norm,
        "seed": config.seed,
        "device": "cpu",
        "tensorboard_log": str(tensorboard_log),
    }
    policy_kwargs: dict[str, Any] = {"net_arch": list(config.net_arch)}
    if config.algo == "dqn":
        return ALGORITHMS["dqn"](
            "MlpPolicy",
            batch_size=config.batch_size,
            buffer_size=config.buffer_size,
            learning_starts=config.learning_starts,
            train_freq=config.train_freq,
            gradient_steps=config.gradient_steps,
            target_update_interval=config.target_update_interval,
            exploration_fraction=config.exploration_fraction,
            exploration_final_eps=config.exploration_final_eps,
            replay_buffer_kwargs={"handle_timeout_termination": config.bootstrap_horizon},
            policy_kwargs=policy_kwargs,
            **common,
        )
    on_policy = {
        "n_steps": config.n_steps,
        "gae_lambda": config.gae_lambda,
        "ent_coef": config.ent_coef,
        "vf_coef": config.vf_coef,
        **common,
    }
    if config.algo == "a2c":
        return ALGORITHMS["a2c"]("MlpPolicy", policy_kwargs=policy_kwargs, **on_policy)
    policy = "MlpPolicy"
    if config.algo == "recurrent_ppo":
        policy, policy_kwargs = (
            "MlpLstmPolicy",
            {**policy_kwargs, "lstm_hidden_size": config.lstm_hidden_size},
        )
    return ALGORITHMS[config.algo](
        policy,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        clip_range=config.clip_range,
        policy_kwargs=policy_kwargs,
        **on_policy,
    )


def _load_checkpoint(
    config: TrainConfig, env: VecNormalize, out: Path, checkpoint: _Checkpoint
) -> BaseAlgorithm:
    """The checkpointed model on a fresh environment, with the normalisation statistics it trained with."""
    directory = out / "checkpoints" / _checkpoint_name(checkpoint.timesteps)
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


def _checkpoint_name(timesteps: int) -> str:
    return f"{timesteps:012d}"


def validation_users(scenario: Scenario, n_users: int) -> SimState:
    """``n_users`` of the scenario's validation users (0: all), a fixed seeded subsample."""
    users = scenario.validation_users()
    if n_users == 0 or n_users >= users.n_users:
        return users
    chosen = np.random.default_rng(VALIDATION_SEED).choice(users.n_users, n_users, replace=False)
    return users.take(np.sort(chosen))


class _RunMonitor(BaseCallback):
    """Evaluates on validation users and writes checkpoints as training crosses their intervals."""

    def __init__(
        self,
        config: TrainConfig,
        scenario: Scenario,
        env: VecNormalize,
        out: Path,
        checkpoint: _Checkpoint | None,
        started: float,
    ) -> None:
        super().__init__()
        self.config, self.scenario, self.env, self.out, self.started = config, scenario, env, out, started
        self.users = validation_users(scenario, config.eval_users)
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
        policy = SB3Policy(self.model, normalization, name=self.config.algo)
        run = run_policy(
            policy, self.scenario, self.users, [VALIDATION_SEED], category="agent", simulators=self.simulators
        )
        value = float(run.metrics["net_value"].mean())
        self.last_eval, self.last_value = self.num_timesteps, value
        with open(self.out / "learning_curve.csv", "a", newline="") as file:
            csv.writer(file).writerow([self.num_timesteps, round(self.wall_seconds(), 2), value])
        self.logger.record("validation/net_value_per_user", value)
        self.logger.dump(self.num_timesteps)
        if value > self.best_value:
            self.best_value, self.best_timesteps = value, self.num_timesteps
            self.model.save(self.out / MODEL_FILES["best"])
            normalization.save(self.out / NORMALIZATION_FILES["best"])

    def save_checkpoint(self) -> None:
        """The model, its statistics and the best model so far; ``checkpoint.json`` last marks it complete."""
        directory = self.out / "checkpoints" / _checkpoint_name(self.num_timesteps)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILES["final"])
        ObservationNormalization.of(self.env).save(directory / NORMALIZATION_FILES["final"])
        shutil.copy2(self.out / MODEL_FILES["best"], directory / MODEL_FILES["best"])
        shutil.copy2(self.out / NORMALIZATION_FILES["best"], directory / NORMALIZATION_FILES["best"])
        returns = self.env.ret_rms
        state = _Checkpoint(
            timesteps=self.num_timesteps,
            wall_seconds=self.wall_seconds(),
            best_value=self.best_value,
            best_timesteps=self.best_timesteps,
            returns={"mean": float(returns.mean), "var": float(returns.var), "count": float(returns.count)},
        )
        (directory / "checkpoint.json").write_text(json.dumps(dataclasses.asdict(state), indent=2) + "\n")
        self.last_checkpoint = self.num_timesteps


def read_curve(out: Path) -> list[tuple[int, float, float]]:
    """The learning curve of the run in ``out``: (timesteps, wall seconds, validation net value) rows."""
    with open(out / "learning_curve.csv", newline="") as file:
        rows = list(csv.reader(file))[1:]
    return [(int(t), float(seconds), float(value)) for t, seconds, value in rows]


def _write_curve(out: Path, rows: list[tuple[int, float, float]]) -> None:
    with open(out / "learning_curve.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CURVE_COLUMNS)
        writer.writerows(rows)


def _plot_curve(out: Path, config: TrainConfig) -> None:
    rows = read_curve(out)
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot([r[0] for r in rows], [r[2] for r in rows], marker="o")
    axes.set_xlabel("timesteps (user-periods)")
    axes.set_ylabel("validation net value per user ($)")
    axes.set_title(f"{config.algo} on {config.scenario}, seed {config.seed}")
    axes.grid(alpha=0.3)
    figure.savefig(out / "learning_curve.png", dpi=120)
