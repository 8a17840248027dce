"""One decision for a batch of validated users: features (given, or from stored state and activity),
masks by the card's rules, the exported policy's scores, action and probabilities; with limits on
contact actions, the actions fitted to them by the allocation and its prices (for a policy that reads
prices, the prices it was shown: 0 without limits)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from winback.export.runtime.artifact import Decision, ExportedArtifact
from winback.export.runtime.masks import Masks
from winback.export.runtime.state import DERIVED_FEATURES, UserStates, derived_features


class Decider:
    """Answers ``POST /v1/decide`` requests (:mod:`winback.serve.schemas`) with an exported artifact."""

    def __init__(self, artifact: ExportedArtifact) -> None:
        self.artifact = artifact
        card = artifact.card
        features = card["observation"]["features"]
        self.names = artifact.feature_names
        self.low = np.array([f["low"] for f in features], dtype=np.float32)
        self.high = np.array([f["high"] for f in features], dtype=np.float32)
        self.derived = [self.names.index(name) for name in DERIVED_FEATURES]
        self.given = [j for j, name in enumerate(self.names) if name not in DERIVED_FEATURES]
        state_card = card["state_update"]
        self.event_types, self.contact_kinds = state_card["event_types"], state_card["contact_kinds"]
        self.new_user_periods = int(state_card["new_user_periods"])

    def decide(
        self, users: list[BaseModel], limits: BaseModel | None = None, prices: BaseModel | None = None
    ) -> dict[str, Any]:
        """``users``: one answer per user, in order: action, its index and probability, scores,
        probabilities, masks, and for users sent with their activity the features used and the state
        to store. With ``limits`` (per contact action, how many users it may go to), the actions are
        those of :func:`~winback.allocation.allocate` on the scores, and ``allocation`` gives each
        limited action's limit, use and price (a user gets it when its score gains more than that).
        With ``prices`` (per contact action), each user's choice pays them: a policy trained under
        prices is shown them, another has them taken off its scores; ``allocation`` gives each priced
        action's price and use."""
        observations = np.empty((len(users), len(self.names)), dtype=np.float32)
        with_activity = [i for i, user in enumerate(users) if hasattr(user, "state")]
        states: dict[int, dict[str, Any]] = {}
        for i, user in enumerate(users):
            if not hasattr(user, "state"):
                observations[i] = [getattr(user.features, name) for name in self.names]
        if with_activity:
            rows = self._from_activity([users[i] for i in with_activity])
            observations[with_activity] = rows[0]
            states = dict(zip(with_activity, rows[1].to_dicts(), strict=True))
        masks = self.artifact.masks(observations)
        answer: dict[str, Any] = {}
        asked = limits.model_dump() if limits is not None else {}
        given = {action: count for action, count in asked.items() if count is not None}
        priced = {
            a: p for a, p in (prices.model_dump() if prices is not None else {}).items() if p is not None
        }
        if given:
            decision, allocation = self.artifact.decide_within(observations, masks.allowed, given)
            answer["allocation"] = {
                a: {"limit": n, "used": int(allocation.used[r]), "price": float(allocation.prices[r])}
                for r, (a, n) in enumerate(given.items())
            }
        elif priced:
            decision = self.artifact.decide_at_prices(observations, masks.allowed, priced)
            answer["allocation"] = {
                a: {
                    "limit": None,
                    "used": int((decision.actions == self.artifact.actions.index(a)).sum()),
                    "price": p,
                }
                for a, p in priced.items()
            }
        else:
            decision = self.artifact.decide_at_prices(observations, masks.allowed, {})
        answer["users"] = [
            self._answer(i, observations, masks, decision, states.get(i)) for i in range(len(users))
        ]
        return answer

    def _from_activity(self, users: list[Any]) -> tuple[np.ndarray, UserStates]:
        """(n, F) features and the new stored states of users sent with state and activity."""
        n = len(users)
        stored = [user.state for user in users]
        states = UserStates(
            hidden=np.array([s.hidden for s in stored], dtype=np.float32),
            cell=np.array([s.cell for s in stored], dtype=np.float32),
            period=np.array([s.period for s in stored], dtype=np.int64),
            first_period=np.array([s.first_period for s in stored], dtype=np.int64),
            last_purchase=np.array([s.last_purchase for s in stored], dtype=np.int64),
            frequency=np.array([s.frequency for s in stored], dtype=np.float64),
            spend_total=np.array([s.spend_total for s in stored], dtype=np.float64),
        )
        interest = np.zeros(n, dtype=np.float32)
        lengths = np.array([len(user.activity) for user in users])
        for t in range(int(lengths.max())):
            rows = np.flatnonzero(lengths > t)
            periods = [users[i].activity[t] for i in rows]
            counts = np.array([[getattr(p.counts, e) for e in self.event_types] for p in periods])
            contacts = np.array([[getattr(p.contacts, k) for k in self.contact_kinds] for p in periods])
            spend = np.array([p.spend for p in periods], dtype=np.float64)
            following, interest[rows] = self.artifact.state_update.step(
                _take(states, rows), counts.reshape(len(rows), -1), spend, contacts.reshape(len(rows), -1)
            )
            for name in ("hidden", "cell", "period", "last_purchase", "frequency", "spend_total"):
                getattr(states, name)[rows] = getattr(following, name)
        observations = np.empty((n, len(self.names)), dtype=np.float32)
        derived = derived_features(states, interest, self.new_user_periods)
        for j, name in zip(self.derived, DERIVED_FEATURES, strict=True):
            observations[:, j] = np.clip(derived[name], self.low[j], self.high[j])
        for j in self.given:
            observations[:, j] = [getattr(user.features, self.names[j]) for user in users]
        return observations, states

    def _answer(
        self,
        i: int,
        observations: np.ndarray,
        masks: Masks,
        decision: Decision,
        state: dict[str, Any] | None,
    ) -> dict[str, Any]:
        names, action = self.artifact.actions, int(decision.actions[i])
        probabilities = decision.probabilities[i].tolist()
        answer: dict[str, Any] = {
            "action": names[action],
            "action_index": action,
            "probability": probabilities[action],
            "probabilities": dict(zip(names, probabilities, strict=True)),
            "scores": {
                a: (float(s) if np.isfinite(s) else None)
                for a, s in zip(names, decision.scores[i], strict=True)
            },
            "allowed": {a: bool(m) for a, m in zip(names, masks.allowed[i], strict=True)},
            "masked_by": {
                a: [rule for rule, masked in masks.by_rule.items() if masked[i, k]]
                for k, a in enumerate(names)
                if not masks.allowed[i, k]
            },
        }
        if state is not None:
            answer["features"] = dict(zip(self.names, observations[i].tolist(), strict=True))
            answer["state"] = state
        return answer


def _take(states: UserStates, rows: np.ndarray) -> UserStates:
    return UserStates(**{name: value[rows] for name, value in vars(states).items()})
