"""Trained stable-baselines3 agents as :class:`~winback.agents.base.Policy`: deterministic, mask-aware.

A training run (:func:`winback.agents.training.train`) leaves ``config.json``, the SB3 zips and the
observation statistics as JSON (``normalization.json``, ``best_normalization.json``): SB3's own
``VecNormalize.save`` pickles, so winback keeps the statistics as plain numbers and applies them
exactly as ``VecNormalize`` does during training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from winback.agents.base import DecisionContext, ScoreKind, ScoringPolicy
from winback.allocation import PriceInput
from winback.errors import ArtifactError, ConfigError

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "maskable_ppo": MaskablePPO,
    "recurrent_ppo": RecurrentPPO,
}
"""The algorithms winback trains, by the name a :class:`~winback.agents.training.TrainConfig` uses."""

MODEL_FILES = {"best": "best_model.zip", "final": "model.zip"}
"""The SB3 zip of a run's best-on-validation and final model."""
NORMALIZATION_FILES = {"best": "best_normalization.json", "final": "normalization.json"}
"""The observation statistics that go with each model."""
PRICES_FILE = "prices.json"
"""The prices of shared resources a run's agent reads after its features (:class:`PriceInput`), for
a run trained on a scenario whose operations limit them; absent otherwise."""
SEEDS_FILE = "seeds.json"
"""What a directory of several seeds' runs (:mod:`winback.agents.seeds`) records, with the run selected."""


def seeds_record(path: str | Path) -> Any:
    """The parsed ``seeds.json`` of the directory ``path`` (``None`` when it holds none)."""
    seeds_path = Path(path) / SEEDS_FILE
    if not seeds_path.is_file():
        return None
    try:
        return json.loads(seeds_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{seeds_path}: not valid JSON ({err})") from err


def read_price_input(run: Path) -> PriceInput | None:
    """The price input a training run recorded (:data:`PRICES_FILE`), ``None`` when it has none."""
    path = run / PRICES_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from err
    try:
        return PriceInput.from_dict(values, str(path))
    except ConfigError as err:
        raise ArtifactError(str(err)) from err


def selected_run(path: str | Path) -> Path:
    """The training run ``path`` stands for: itself, or in a directory of several seeds' runs the run
    that :func:`~winback.agents.seeds.train_seeds` selected on validation users."""
    root = Path(path)
    body = seeds_record(root)
    if body is None:
        return root
    seeds_path = root / SEEDS_FILE
    selected = body.get("selected") if isinstance(body, dict) else None
    if selected is None and isinstance(body, dict) and "selected" in body:
        raise ArtifactError(
            f"{seeds_path}: no run selected yet; the seeds' training did not finish (resume it)"
        )
    if not isinstance(selected, str) or Path(selected).name != selected or not (root / selected).is_dir():
        raise ArtifactError(
            f"{seeds_path}: 'selected' = {selected!r} is not the directory of a seed's run in {root}"
        )
    return root / selected


@dataclass(frozen=True)
class ObservationNormalization:
    """``VecNormalize``'s observation statistics, applied as ``clip((obs - mean) / sqrt(var + epsilon))``."""

    enabled: bool
    """False when training saw raw observations (then :meth:`normalize` passes them through)."""
    mean: np.ndarray
    """(F,) float64 running mean of each feature."""
    var: np.ndarray
    """(F,) float64 running variance of each feature."""
    count: float
    """Observations the statistics were computed from (weights the next update when training resumes)."""
    clip: float
    epsilon: float

    @classmethod
    def of(cls, env: VecNormalize) -> ObservationNormalization:
        """A copy of ``env``'s current statistics (later updates do not change it)."""
        rms = env.obs_rms
        return cls(env.norm_obs, rms.mean.copy(), rms.var.copy(), float(rms.count), env.clip_obs, env.epsilon)

    def restore(self, env: VecNormalize) -> None:
        """Set ``env``'s statistics to these (to resume training)."""
        env.obs_rms.mean, env.obs_rms.var, env.obs_rms.count = self.mean.copy(), self.var.copy(), self.count
        env.clip_obs, env.epsilon = self.clip, self.epsilon

    def normalize(self, observations: np.ndarray) -> np.ndarray:
        """(n, F) float32 observations as the network saw them in training (same arithmetic as SB3)."""
        if not self.enabled:
            return np.asarray(observations, dtype=np.float32)
        scaled = (observations - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "count": self.count,
            "clip": self.clip,
            "epsilon": self.epsilon,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ObservationNormalization:
        try:
            values = json.loads(path.read_text())
            return cls(
                enabled=bool(values["enabled"]),
                mean=np.asarray(values["mean"], dtype=np.float64),
                var=np.asarray(values["var"], dtype=np.float64),
                count=float(values["count"]),
                clip=float(values["clip"]),
                epsilon=float(values["epsilon"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"{path}: not a readable observation normalization ({err})") from err


class SB3Policy(ScoringPolicy):
    """A trained SB3 model choosing, for every user, the valid action it scores highest.

    Scores are the log-probabilities of the policy's actions (PPO, A2C, MaskablePPO, RecurrentPPO:
    its logits as ``Categorical`` normalises them) or the Q-values (DQN), with masked actions at
    ``-inf``. A recurrent policy keeps one LSTM state per user from :meth:`reset` on: each call of
    :meth:`scores` (or :meth:`act`) is the next period of the same users.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        normalization: ObservationNormalization,
        name: str = "sb3",
        price_input: PriceInput | None = None,
    ) -> None:
        self.model, self.normalization, self.name = model, normalization, name
        self.price_input = price_input
        self._lstm_states: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def load(cls, run_dir: str | Path, which: Literal["best", "final"] = "best") -> SB3Policy:
        """The ``best`` (on validation users) or ``final`` model of a training run (of the selected
        seed's run, for a directory of several seeds)."""
        root = selected_run(run_dir)
        if which not in MODEL_FILES:
            raise ArtifactError(
                f"unknown model '{which}' of a run (expected one of {', '.join(MODEL_FILES)})"
            )
        model_path, config_path = root / MODEL_FILES[which], root / "config.json"
        if not model_path.is_file() or not config_path.is_file():
            raise ArtifactError(f"{root} holds no trained {which} model ({model_path.name}, config.json)")
        algo = json.loads(config_path.read_text()).get("algo")
        if algo not in ALGORITHMS:
            raise ArtifactError(
                f"{config_path}: unknown algo {algo!r} (expected one of {', '.join(ALGORITHMS)})"
            )
        model = ALGORITHMS[algo].load(model_path, device="cpu")
        normalization = ObservationNormalization.load(root / NORMALIZATION_FILES[which])
        return cls(model, normalization, name=algo, price_input=read_price_input(root))

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self._lstm_states = None

    @property
    def score_kind(self) -> ScoreKind:
        return "q_value" if isinstance(self.model, DQN) else "log_probability"

    def scores(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        """(n, A) float32 log-probabilities or Q-values, ``-inf`` where masked; one forward pass for
        all users."""
        obs = torch.as_tensor(self.normalization.normalize(observations), device=self.model.device)
        policy = self.model.policy
        with torch.no_grad():
            if isinstance(self.model, DQN):
                values = policy.q_net(obs)
            elif isinstance(self.model, RecurrentPPO):
                values = self._recurrent_logits(obs)
            else:
                values = policy.get_distribution(obs).distribution.logits
        scores = values.cpu().numpy().astype(np.float32)
        scores[~np.asarray(masks, dtype=bool)] = -np.inf
        return scores

    def _recurrent_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits of one period, carrying each user's LSTM state to the next call."""
        n = obs.shape[0]
        if self._lstm_states is None:
            layers, _, hidden = self.model.policy.lstm_hidden_state_shape
            self._lstm_states = (torch.zeros(layers, n, hidden), torch.zeros(layers, n, hidden))
        elif self._lstm_states[0].shape[1] != n:
            raise ValueError(
                f"a batch of {n} users continues one of {self._lstm_states[0].shape[1]}: reset first"
            )
        # Zero states are already those of an episode start: no episode restarts within a batch.
        distribution, self._lstm_states = self.model.policy.get_distribution(
            obs, self._lstm_states, torch.zeros(n)
        )
        return distribution.distribution.logits

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return np.argmax(self.scores(observations, masks, period), axis=1).astype(np.int64)
