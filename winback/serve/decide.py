"""One decision for a batch of validated users: features (given, or from stored state and activity),
masks by the card's rules, the exported policy's scores, action and probabilities; with limits on
contact actions, the actions fitted to them by the allocation and its prices (for a policy that reads
prices, the prices it was shown: 0 without limits)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from winback.allocation import RESOURCES, Allocation, allocate, allocate_conditioned
from winback.export.runtime.artifact import Decision, ExportedArtifact
from winback.export.runtime.masks import Masks
from winback.export.runtime.state import DERIVED_FEATURES, UserStates, derived_features


class LimitsError(ValueError):
    """Limits a request gives that the policy cannot be fitted to."""


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
        self.price_actions: dict[str, list[str]] = (card["observation"].get("prices") or {}).get(
            "actions", {}
        )
        """The actions that take each resource whose price the policy reads."""

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
            decision, allocation = self._allocate(observations, masks.allowed, given)
            answer["allocation"] = {
                a: {"limit": n, "used": int(allocation.used[r]), "price": float(allocation.prices[r])}
                for r, (a, n) in enumerate(given.items())
            }
        elif priced:
            decision = self._at_prices(observations, masks.allowed, priced)
            answer["allocation"] = {
                a: {
                    "limit": None,
                    "used": int((decision.actions == self.artifact.actions.index(a)).sum()),
                    "price": p,
                }
                for a, p in priced.items()
            }
        else:
            decision = self.artifact.decide(
                self._priced(observations, np.zeros(len(RESOURCES))), masks.allowed
            )
        answer["users"] = [
            self._answer(i, observations, masks, decision, states.get(i)) for i in range(len(users))
        ]
        return answer

    def _priced(self, observations: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """The graph's input: ``observations`` with the (R,) ``prices`` the policy reads, if any."""
        price_input = self.artifact.price_input
        return observations if price_input is None else price_input.append(observations, prices)

    def _allocate(
        self, observations: np.ndarray, allowed: np.ndarray, given: dict[str, int]
    ) -> tuple[Decision, Allocation]:
        """The decision fitted to the ``given`` limits per action: by the price a price-reading policy
        is shown for the resource each limited action takes (:func:`allocate_conditioned`), else by
        the scores (:func:`allocate`)."""
        limited = list(given)
        use = np.array([[float(a == action) for a in self.artifact.actions] for action in limited])
        limits = np.array(list(given.values()), dtype=np.float64)
        price_input = self.artifact.price_input
        if price_input is None:
            decision = self.artifact.decide(observations, allowed)
            allocation = allocate(decision.scores, use, limits)
            return Decision(decision.scores, allocation.actions, decision.probabilities), allocation
        resource_of = {a: r for r, actions in self.price_actions.items() for a in actions}
        rows = [resource_of.get(a) for a in limited]
        if len({r for r in rows if r is not None}) < sum(r is not None for r in rows):
            raise LimitsError(
                f"limits on {limited}: the policy reads one price per resource "
                f"({self.price_actions}); limit the actions of a resource together, as one"
            )
        ceilings = np.array([price_input.ceiling if r is not None else 0.0 for r in rows])

        def resource_prices(row_prices: np.ndarray) -> np.ndarray:
            prices = np.zeros(len(RESOURCES))
            for row, resource in enumerate(rows):
                if resource is not None:
                    prices[RESOURCES.index(resource)] = row_prices[row]
            return prices

        def scores_at(row_prices: np.ndarray) -> np.ndarray:
            return self.artifact.decide(
                self._priced(observations, resource_prices(row_prices)), allowed
            ).scores

        allocation = allocate_conditioned(scores_at, use, limits, ceilings)
        decision = self.artifact.decide(
            self._priced(observations, resource_prices(allocation.prices)), allowed
        )
        return Decision(decision.scores, allocation.actions, decision.probabilities), allocation

    def _at_prices(self, observations: np.ndarray, allowed: np.ndarray, prices: dict[str, float]) -> Decision:
        """The decision when each of the priced actions costs its price: shown to a policy that reads
        prices, taken off the scores of one that does not."""
        names = self.artifact.actions
        price_input = self.artifact.price_input
        if price_input is None:
            decision = self.artifact.decide(observations, allowed)
            cost = np.array([prices.get(a, 0.0) for a in names])
            return Decision(
                decision.scores, np.argmax(decision.scores - cost, axis=1), decision.probabilities
            )
        resource_of = {a: r for r, actions in self.price_actions.items() for a in actions}
        if unread := [a for a in prices if a not in resource_of]:
            raise LimitsError(f"prices on {unread}: the policy reads prices of {self.price_actions} only")
        by_resource: dict[str, float] = {}
        for action, price in prices.items():
            if by_resource.setdefault(resource_of[action], price) != price:
                raise LimitsError(f"prices {prices}: the actions of {resource_of[action]} share one price")
        shown = np.array([by_resource.get(resource, 0.0) for resource in RESOURCES])
        return self.artifact.decide(self._priced(observations, shown), allowed)

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
