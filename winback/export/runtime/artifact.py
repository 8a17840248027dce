"""An export directory loaded for deciding: ``policy.onnx``, ``state_update.onnx`` and the card's rules;
decisions at given prices or fitted to given limits (:mod:`winback.allocation`), for the service and
batch jobs alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winback.allocation import RESOURCES, Allocation, PriceInput, allocate, allocate_conditioned
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


@dataclass(frozen=True)
class PricedUsers:
    """Users' decisions as a function of a price per limited contact action
    (:meth:`ExportedArtifact.priced`)."""

    use: np.ndarray
    """(L, A) 1 where an action is the limited one of a row."""
    ceilings: np.ndarray
    """(L,) the highest price worth searching: the one the policy was trained under, 0 where it does
    not read it; for a policy that does not read prices, the spread of its scores."""
    decide_at: Callable[[np.ndarray], Decision]
    """The decision at (L,) prices: a policy that reads prices is shown them, another has them taken
    off its scores (its ``actions`` the best of those, its ``probabilities`` its own)."""

    def scores_at(self, prices: np.ndarray) -> np.ndarray:
        """(n, A) scores at (L,) ``prices``."""
        return self.decide_at(prices).scores


class LimitsError(ValueError):
    """Limits or prices a policy cannot be fitted to (they name what it cannot read)."""


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
        self.price_actions: dict[str, list[str]] = (prices or {}).get("actions", {})
        """The actions that take each resource whose price the policy reads."""
        self.resource_of = {a: r for r, actions in self.price_actions.items() for a in actions}
        """The resource whose price the policy reads that each priced action takes."""
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

    def with_prices(self, observations: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """The graph's input: ``observations`` with the (R,) ``prices`` the policy reads, if any."""
        return observations if self.price_input is None else self.price_input.append(observations, prices)

    def decide_within(
        self, observations: np.ndarray, allowed: np.ndarray, given: Mapping[str, int]
    ) -> tuple[Decision, Allocation]:
        """The decision for users with (n, F) features and (n, A) ``allowed`` masks fitted to the
        ``given`` limits (per contact action, how many users it may go to), and its allocation: a
        policy that reads prices is shown, for the resource each limited action takes, the price at
        which its choices fit (:func:`~winback.allocation.allocate_conditioned`); another is fitted by
        its scores (:func:`~winback.allocation.allocate`). ``probabilities`` are the policy's own (at
        the price shown); the allocation's ``prices`` are per limited action."""
        limited = list(given)
        limits = np.array(list(given.values()), dtype=np.float64)
        priced = self.priced(observations, allowed, limited)
        if self.price_input is None:
            decision = self.decide(observations, allowed)
            allocation = allocate(decision.scores, priced.use, limits)
            return Decision(decision.scores, allocation.actions, decision.probabilities), allocation
        allocation = allocate_conditioned(priced.scores_at, priced.use, limits, priced.ceilings)
        decision = priced.decide_at(allocation.prices)
        return Decision(decision.scores, allocation.actions, decision.probabilities), allocation

    def priced(self, observations: np.ndarray, allowed: np.ndarray, limited: Sequence[str]) -> PricedUsers:
        """Users with (n, F) features and (n, A) ``allowed`` masks as a function of a price per
        ``limited`` contact action: shown to a policy that reads prices (one per resource: the actions
        of a resource are limited together), taken off the scores of another."""
        if unknown := [a for a in limited if a not in self.actions[1:]]:
            raise LimitsError(
                f"limits on {unknown}: not contact actions of the policy {list(self.actions[1:])}"
            )
        use = np.array([[float(a == action) for a in self.actions] for action in limited])
        if self.price_input is None:
            base = self.decide(observations, allowed)
            finite = base.scores[np.isfinite(base.scores)]
            spread = float(finite.max() - finite.min()) + 1.0 if finite.size else 1.0

            def taken_off(prices: np.ndarray) -> Decision:
                scores = base.scores - prices @ use
                return Decision(scores, np.argmax(scores, axis=1), base.probabilities)

            return PricedUsers(use, np.full(len(limited), spread), taken_off)
        rows = [self.resource_of.get(a) for a in limited]
        if len({r for r in rows if r is not None}) < sum(r is not None for r in rows):
            raise LimitsError(
                f"limits on {list(limited)}: the policy reads one price per resource "
                f"({self.price_actions}); limit the actions of a resource together, as one"
            )
        price_input = self.price_input

        def decide_at(row_prices: np.ndarray) -> Decision:
            prices = np.zeros(len(RESOURCES))
            for row, resource in enumerate(rows):
                if resource is not None:
                    prices[RESOURCES.index(resource)] = row_prices[row]
            return self.decide(self.with_prices(observations, prices), allowed)

        ceilings = np.array([price_input.ceiling if r is not None else 0.0 for r in rows])
        return PricedUsers(use, ceilings, decide_at)

    def decide_at_prices(
        self, observations: np.ndarray, allowed: np.ndarray, prices: Mapping[str, float]
    ) -> Decision:
        """The decision for users with (n, F) features and (n, A) ``allowed`` masks when each priced
        contact action costs its price: shown to a policy that reads prices (0 for what is not
        priced), taken off the scores of one that does not (``{}``: the policy's own choice)."""
        names = self.actions
        price_input = self.price_input
        if price_input is None:
            decision = self.decide(observations, allowed)
            cost = np.array([prices.get(a, 0.0) for a in names])
            return Decision(
                decision.scores, np.argmax(decision.scores - cost, axis=1), decision.probabilities
            )
        resource_of = self.resource_of
        if unread := [a for a in prices if a not in resource_of]:
            raise LimitsError(f"prices on {unread}: the policy reads prices of {self.price_actions} only")
        by_resource: dict[str, float] = {}
        for action, price in prices.items():
            if by_resource.setdefault(resource_of[action], price) != price:
                raise LimitsError(f"prices {prices}: the actions of {resource_of[action]} share one price")
        shown = np.array([by_resource.get(resource, 0.0) for resource in RESOURCES])
        return self.decide(self.with_prices(observations, shown), allowed)
