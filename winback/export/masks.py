"""Action masks from observation features, by the rules of :meth:`Simulator.action_masks`.

``none`` is always allowed. A contact is masked

- ``opted_out``: for every contact kind once the user has opted out;
- ``<kind>_valid``: for that kind while a coupon-like contact of it is still valid;
- ``min_gap``: for every kind, with a frequency cap ``min_gap > 0``, until ``min_gap`` periods have
  passed since the last contact of any kind (``since_<kind> * 52`` rounded gives the periods).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from winback.simulator.state import SINCE_CAP

MASK_RULES = {
    "opted_out": "opted_out = 1 masks every contact",
    "<kind>_valid": "<kind>_valid = 1 masks that kind (a coupon of it is still valid)",
    "min_gap": (
        f"with min_contact_gap > 0, every contact is masked while round(min over kinds of since_<kind> "
        f"x {SINCE_CAP}) < min_contact_gap"
    ),
}
"""The rules as the policy card states them; ``none`` is never masked."""


def mask_rules(
    observations: np.ndarray, feature_names: Sequence[str], actions: Sequence[str], min_gap: int
) -> dict[str, np.ndarray]:
    """(n, A) bool per rule that masks anything in the batch: which actions it masks for which users."""
    names = list(feature_names)
    n, kinds = len(observations), list(actions[1:])
    rules: dict[str, np.ndarray] = {}
    opted_out = observations[:, names.index("opted_out")] > 0.5
    if opted_out.any():
        rules["opted_out"] = _contacts(n, len(actions), opted_out)
    for k, kind in enumerate(kinds):
        if f"{kind}_valid" in names:
            valid = observations[:, names.index(f"{kind}_valid")] > 0.5
            if valid.any():
                masked = np.zeros((n, len(actions)), dtype=bool)
                masked[:, 1 + k] = valid
                rules[f"{kind}_valid"] = masked
    if min_gap > 0:
        since = np.rint(observations[:, [names.index(f"since_{kind}") for kind in kinds]] * SINCE_CAP)
        too_soon = since.min(axis=1) < min_gap
        if too_soon.any():
            rules["min_gap"] = _contacts(n, len(actions), too_soon)
    return rules


def masks_from_features(
    observations: np.ndarray, feature_names: Sequence[str], actions: Sequence[str], min_gap: int
) -> np.ndarray:
    """(n, A) bool: the actions no rule masks."""
    masks = np.ones((len(observations), len(actions)), dtype=bool)
    for masked in mask_rules(observations, feature_names, actions, min_gap).values():
        masks &= ~masked
    return masks


def _contacts(n: int, n_actions: int, users: np.ndarray) -> np.ndarray:
    """(n, A) bool: every contact (not ``none``) of ``users``."""
    masked = np.zeros((n, n_actions), dtype=bool)
    masked[:, 1:] = users[:, None]
    return masked
