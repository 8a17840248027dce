"""An export directory loaded for deciding: ``policy.onnx``, ``state_update.onnx`` and the card's rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winback.allocation import PriceInput
from winback.export.runtime.card import POLICY_FILE, STATE_FILE, read_card
from winback.export.runtime.masks import MaskRules, Masks
from winback.export.runtime.session import POLICY_OUTPUTS, inference_session
from winback.export.runtime.state import StateUpdate


@dataclass(frozen=True)
class Decision:
    """The outputs of ``policy.onnx`` for a batch of users, as the card's ``policy.outputs`` states them."""

    scores: np.ndarray
    """(n, A) float32: log-probabilities of the softmax over all actions (actor-critic) or Q-values
    (DQN), ``-inf`` where masked."""
    actions: np.ndarray
    """(n,) int64: the allowed action of highest score (the first on ties)."""
    probabilities: np.ndarray
    """(n, A) float32: the policy's distribution over the allowed actions (0 where masked, rows sum
    to 1); one-hot on ``actions`` for DQN."""

    @classmethod
    def from_outputs(cls, outputs: Sequence[np.ndarray]) -> Decision:
        """The outputs of a run of ``policy.onnx``, in the order of :data:`POLICY_OUTPUTS`."""
        out = dict(zip(POLICY_OUTPUTS, outputs, strict=True))
        return cls(scores=out["scores"], actions=out["action"], probabilities=out["probabilities"])


class ExportedArtifact:
    """``policy.onnx`` (and ``state_update.onnx``) of an export directory, described by its card.

    Deterministic: each user gets the valid action the policy scores highest (the first on ties), as
    :class:`~winback.agents.sb3.SB3Policy` chooses.
    """

    def __init__(self, card: dict[str, Any], policy_model: bytes, state_model: bytes) -> None:
        self.card = card
        self.name = f"{card['policy']['algo']}-onnx"
        self.mask_rules = MaskRules.from_card(card)
        self.feature_names = self.mask_rules.feature_names
        self.actions = self.mask_rules.actions
        prices = card["observation"].get("prices")
        self.price_input = None if prices is None else PriceInput.from_dict(prices, "observation.prices")
        """The prices the policy reads after its features (``None``: none)."""
        self.session = inference_session(policy_model)
        self.state_update = StateUpdate(state_model)

    @classmethod
    def load(cls, directory: str | Path) -> ExportedArtifact:
        """The artifact in ``directory``; refuses missing, edited or incompatible files (see read_card)."""
        root = Path(directory)
        card = read_card(root)
        return cls(card, (root / POLICY_FILE).read_bytes(), (root / STATE_FILE).read_bytes())

    def masks(self, observations: np.ndarray) -> Masks:
        """The masks of the card's rules (:mod:`winback.export.runtime.masks`) for these features."""
        return self.mask_rules.apply(observations)

    def decide(self, observations: np.ndarray, masks: np.ndarray) -> Decision:
        """Scores, actions and probabilities of users with (n, F) features (then the P prices of
        :attr:`price_input`) and (n, A) bool masks (true where allowed; ``none`` at least), in one run
        of the graph."""
        observations = np.ascontiguousarray(observations, dtype=np.float32)
        masks = np.asarray(masks, dtype=bool)
        n_prices = 0 if self.price_input is None else len(self.price_input.resources)
        n_features, n_actions = len(self.feature_names) + n_prices, len(self.actions)
        if observations.ndim != 2 or observations.shape[1] != n_features:
            raise ValueError(f"observations must be (n, {n_features}), got {observations.shape}")
        if masks.shape != (len(observations), n_actions):
            raise ValueError(f"masks must be ({len(observations)}, {n_actions}), got {masks.shape}")
        if not (some := masks.any(axis=1)).all():
            raise ValueError(f"users {np.flatnonzero(~some)[:5].tolist()} have no allowed action")
        feeds = {"observations": observations, "masks": masks}
        return Decision.from_outputs(self.session.run(list(POLICY_OUTPUTS), feeds))
