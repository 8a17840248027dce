"""An exported policy as a :class:`~winback.agents.base.Policy`: the benchmark and the what-if engine
run the ONNX artifact (:class:`~winback.export.runtime.ExportedArtifact`) exactly as they run a
trained agent."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winback.agents.base import DecisionContext, Policy, ScoreKind, ScoringPolicy
from winback.agents.sb3 import SB3Policy
from winback.errors import ArtifactError
from winback.export.runtime.artifact import ExportedArtifact
from winback.export.runtime.card import CARD_FILE


class ExportedPolicy(ScoringPolicy):
    """An :class:`ExportedArtifact` deciding for the harness: the valid action it scores highest."""

    def __init__(self, artifact: ExportedArtifact) -> None:
        self.artifact = artifact
        self.name = artifact.name
        self.feature_names = artifact.feature_names
        self.actions = artifact.actions
        self.price_input = artifact.price_input

    @classmethod
    def load(cls, directory: str | Path) -> ExportedPolicy:
        """The artifact in ``directory``; refuses missing, edited or incompatible files (see read_card)."""
        return cls(ExportedArtifact.load(directory))

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

    @property
    def score_kind(self) -> ScoreKind:
        return "q_value" if self.artifact.card["policy"]["algo"] == "dqn" else "log_probability"

    def scores(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        """(n, A) float32 scores of ``policy.onnx``, ``-inf`` where masked."""
        return self.artifact.decide(observations, masks).scores

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return self.artifact.decide(observations, masks).actions


def load_policy_dir(path: str | Path) -> Policy:
    """The policy in ``path``: an export directory (with ``policy_card.json``) as an
    :class:`ExportedPolicy`, else a training run's best model as an :class:`SB3Policy`."""
    root = Path(path)
    if (root / CARD_FILE).is_file():
        return ExportedPolicy.load(root)
    return SB3Policy.load(root, which="best")
