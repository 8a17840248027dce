"""Action masks from observation features, by the rules of :meth:`Simulator.action_masks`.

``none`` is always allowed. A contact is masked

- ``opted_out``: for every contact kind once the user has opted out;
- ``<kind>_valid``: for that kind while a coupon-like contact of it is still valid;
- ``min_gap``: for every kind, with a frequency cap ``min_gap > 0``, until ``min_gap`` periods have
  passed since the last contact of any kind (``since_<kind> * since_cap`` rounded gives the periods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MASK_RULES = {
    "opted_out": "opted_out = 1 masks every contact",
    "<kind>_valid": "<kind>_valid = 1 masks that kind (a coupon of it is still valid)",
    "min_gap": (
        "with min_contact_gap > 0, every contact is masked while round(min over kinds of since_<kind> "
        "x since_cap) < min_contact_gap"
    ),
}
"""The rules as the policy card states them; ``none`` is never masked."""


@dataclass(frozen=True)
class Masks:
    """The masks of a batch of users, and which rule masks what."""

    allowed: np.ndarray
    """(n, A) bool: the actions no rule masks."""
    by_rule: dict[str, np.ndarray]
    """(n, A) bool per rule that masks anything in the batch: which actions it masks for which users."""


@dataclass(frozen=True)
class MaskRules:
    """The mask rules (module docstring) for observations of these features, among these actions."""

    feature_names: tuple[str, ...]
    actions: tuple[str, ...]
    """Action names, ``none`` first, then the contact kinds."""
    min_gap: int
    """The frequency cap in periods (0: none); the card's ``masks.min_contact_gap``."""
    since_cap: int
    """``since_<kind> x since_cap`` is the periods since the last contact of ``kind``; the card's
    ``masks.since_cap``."""

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> MaskRules:
        return cls(
            feature_names=tuple(f["name"] for f in card["observation"]["features"]),
            actions=tuple(card["actions"]),
            min_gap=int(card["masks"]["min_contact_gap"]),
            since_cap=int(card["masks"]["since_cap"]),
        )

    def apply(self, observations: np.ndarray) -> Masks:
        """The masks of the users whose (n, F) features are ``observations``."""
        names, n, n_actions = self.feature_names, len(observations), len(self.actions)
        kinds = self.actions[1:]
        by_rule: dict[str, np.ndarray] = {}
        opted_out = observations[:, names.index("opted_out")] > 0.5
        if opted_out.any():
            by_rule["opted_out"] = _contacts(n, n_actions, opted_out)
        for k, kind in enumerate(kinds):
            if f"{kind}_valid" in names:
                valid = observations[:, names.index(f"{kind}_valid")] > 0.5
                if valid.any():
                    masked = np.zeros((n, n_actions), dtype=bool)
                    masked[:, 1 + k] = valid
                    by_rule[f"{kind}_valid"] = masked
        if self.min_gap > 0:
            columns = [names.index(f"since_{kind}") for kind in kinds]
            too_soon = np.rint(observations[:, columns] * self.since_cap).min(axis=1) < self.min_gap
            if too_soon.any():
                by_rule["min_gap"] = _contacts(n, n_actions, too_soon)
        allowed = np.ones((n, n_actions), dtype=bool)
        for masked in by_rule.values():
            allowed &= ~masked
        return Masks(allowed, by_rule)


def _contacts(n: int, n_actions: int, users: np.ndarray) -> np.ndarray:
    """(n, A) bool: every contact (not ``none``) of ``users``."""
    masked = np.zeros((n, n_actions), dtype=bool)
    masked[:, 1:] = users[:, None]
    return masked
