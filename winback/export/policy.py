"""An exported policy as a :class:`~winback.agents.base.Policy`: the benchmark, the what-if engine and
the server run the ONNX artifact exactly as they run a trained agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from winback.agents.base import DecisionContext, Policy, ScoreKind, ScoringPolicy
from winback.agents.sb3 import SB3Policy
from winback.errors import ArtifactError
from winback.export.card import CARD_FILE, POLICY_FILE, STATE_FILE, read_card
from winback.export.graphs import POLICY_OUTPUTS
from winback.export.masks import masks_from_features
from winback.export.runtime import inference_session
from winback.export.state import StateUpdate


class ExportedPolicy(ScoringPolicy):
    """``policy.onnx`` (and ``state_update.onnx``) of an export directory, described by its card.

    Deterministic: each user gets the valid action the policy scores highest (the first on ties), as
    :class:`~winback.agents.sb3.SB3Policy` chooses.
    """

    def __init__(self, card: dict[str, Any], policy_model: bytes, state_model: bytes) -> None:
        self.card = card
        self.name = f"{card['policy']['algo']}-onnx"
        self.feature_names: tuple[str, ...] = tuple(f["name"] for f in card["observation"]["features"])
        self.actions: tuple[str, ...] = tuple(card["actions"])
        self.session = inference_session(policy_model)
        self.state_update = StateUpdate(state_model)

    @classmethod
    def load(cls, directory: str | Path) -> ExportedPolicy:
        """The artifact in ``directory``; refuses missing, edited or incompatible files (see read_card)."""
        root = Path(directory)
        card = read_card(root)
        return cls(card, (root / POLICY_FILE).read_bytes(), (root / STATE_FILE).read_bytes())

    @property
    def min_gap(self) -> int:
        """The frequency cap the policy was trained under."""
        return int(self.card["masks"]["min_contact_gap"])

    def reset(self, context: DecisionContext) -> None:
        if context.feature_names and tuple(context.feature_names) != self.feature_names:
            raise ArtifactError(
                f"the exported policy reads features {list(self.feature_names)}, this simulator gives "
                f"{list(context.feature_names)}"
            )
        if context.actions and tuple(context.actions) != self.actions:
            raise ArtifactError(
                f"the exported policy chooses among {list(self.actions)}, this simulator offers "
                f"{list(context.actions)}"
            )
        super().reset(context)

    def decide(self, observations: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, A) float32 scores (``-inf`` where masked) and (n,) int64 actions, in one run of the graph."""
        observations = np.ascontiguousarray(observations, dtype=np.float32)
        if observations.ndim != 2 or observations.shape[1] != len(self.feature_names):
            raise ValueError(f"observations must be (n, {len(self.feature_names)}), got {observations.shape}")
        scores, actions = self.session.run(
            list(POLICY_OUTPUTS), {"observations": observations, "masks": np.asarray(masks, dtype=bool)}
        )
        return scores, actions

    @property
    def score_kind(self) -> ScoreKind:
        return "q_value" if self.card["policy"]["algo"] == "dqn" else "log_probability"

    def scores(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return self.decide(observations, masks)[0]

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return self.decide(observations, masks)[1]

    def masks(self, observations: np.ndarray) -> np.ndarray:
        """(n, A) bool masks of the card's rules (:mod:`winback.export.masks`) for these features."""
        return masks_from_features(observations, self.feature_names, self.actions, self.min_gap)


def load_policy_dir(path: str | Path) -> Policy:
    """The policy in ``path``: an export directory (with ``policy_card.json``) as an
    :class:`ExportedPolicy`, else a training run's best model as an :class:`SB3Policy`."""
    root = Path(path)
    if (root / CARD_FILE).is_file():
        return ExportedPolicy.load(root)
    return SB3Policy.load(root, which="best")
