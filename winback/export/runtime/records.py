"""The contact-side records a batch job keeps per user between its runs, and the features they give.

A policy reads fatigue, opt-out, whether a coupon of each kind is still valid and the periods since
the last contact of each kind (:mod:`winback.simulator.features`). A job that decides every period
keeps them from the contacts its users received, with the simulator's own bookkeeping
(:mod:`winback.contact_records`) and the parameters the card states (``contacts``): each kind's
fatigue and validity, how fast fatigue decays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from winback.contact_records import SINCE_CAP, close_period, receive


@dataclass(frozen=True)
class ContactRules:
    """How records follow contacts (the card's ``contacts``)."""

    kinds: tuple[str, ...]
    fatigue: np.ndarray
    """(K,) fatigue each delivered contact of a kind adds."""
    fatigue_decay: float
    """Fatigue is multiplied by this at every period's end."""
    validity: np.ndarray
    """(K,) periods a delivered contact of a kind stays valid (0: not a coupon)."""

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> ContactRules:
        contacts = card["contacts"]
        return cls(
            kinds=tuple(contacts["kinds"]),
            fatigue=np.asarray(contacts["fatigue"], dtype=np.float64),
            fatigue_decay=float(contacts["fatigue_decay"]),
            validity=np.asarray(contacts["validity"], dtype=np.int64),
        )


@dataclass
class ContactRecords:
    """The records of ``n`` users (their ``K`` contact kinds in :attr:`ContactRules.kinds` order)."""

    fatigue: np.ndarray
    """(n,) float64."""
    opted_out: np.ndarray
    """(n,) bool: the user accepts no more contacts (the platform's own record)."""
    valid_left: np.ndarray
    """(n, K) int64 periods a coupon of each kind is still valid (0: none)."""
    since_contact: np.ndarray
    """(n, K) int64 periods since the last contact of each kind, :data:`SINCE_CAP` for that many or
    more, or never."""

    def after(self, received: np.ndarray, rules: ContactRules) -> ContactRecords:
        """The records at the next period's start, after a period in which each user received the
        (n,) ``received`` contact (1 + its kind's index; 0: none)."""
        following = ContactRecords(
            self.fatigue.astype(np.float64),
            self.opted_out.copy(),
            self.valid_left.astype(np.int64),
            self.since_contact.astype(np.int64),
        )
        contacted = np.flatnonzero(received)
        kind = np.asarray(received)[contacted] - 1
        receive(following.valid_left, following.fatigue, contacted, kind, rules.validity, rules.fatigue)
        close_period(
            following.since_contact,
            following.valid_left,
            following.fatigue,
            contacted,
            kind,
            rules.fatigue_decay,
        )
        return following

    def features(self, rules: ContactRules) -> dict[str, np.ndarray]:
        """The contact-side observation features ((n,) float32, unclipped) by name, as the simulator
        computes them."""
        features = {
            "fatigue": self.fatigue.astype(np.float32),
            "opted_out": self.opted_out.astype(np.float32),
        }
        for k, kind in enumerate(rules.kinds):
            if rules.validity[k] > 0:
                features[f"{kind}_valid"] = (self.valid_left[:, k] > 0).astype(np.float32)
            features[f"since_{kind}"] = (self.since_contact[:, k] / SINCE_CAP).astype(np.float32)
        return features
