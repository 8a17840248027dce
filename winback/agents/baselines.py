"""The rules growth teams run today, written against the same observations an agent sees.

Every rule reads only the policy features (:mod:`winback.simulator.features`), so it is deployable
exactly like a trained agent, and every parameter is tuned by :mod:`winback.agents.tuning` on
training users and seeds before a benchmark (an untuned rule would be a straw man). A chosen action
that the masks forbid (an opted-out user, a coupon still valid, the frequency cap) becomes ``none``.

A *lapse* is the time since a user's last purchase: rules that escalate do so within a lapse, and a
purchase starts the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from winback.agents.base import DecisionContext, Features, Policy, ScoreKind, ScoringPolicy, allowed
from winback.errors import ConfigError
from winback.simulator.response import CARE, COUPON, PUSH
from winback.streams import RandomStreams


class NoContact(Policy):
    """Never contacts anyone: the reference every gain is measured from."""

    name = "no_contact"

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return np.zeros(len(observations), dtype=np.int64)


@dataclass
class RandomContact(Policy):
    """Contacts at random: each period a user gets kind ``k`` with probability ``rates[k]``.

    With the rates of another policy (:meth:`matched`), it sends as many contacts of each kind, but
    to nobody in particular: the gap between the two is the value of choosing whom and when. Each
    user's draw is keyed by the user (:attr:`DecisionContext.keys`) and the period.
    """

    rates: dict[str, float]
    name: str = "random"

    def __post_init__(self) -> None:
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ConfigError(f"RandomContact.rates = {self.rates} (allowed: each >= 0, sum <= 1)")

    @classmethod
    def matched(
        cls, contacts_per_user: dict[str, float], horizon: int, name: str = "random"
    ) -> RandomContact:
        """Rates that send ``contacts_per_user[kind]`` contacts of each kind per user over ``horizon``."""
        return cls({kind: min(count / horizon, 1.0) for kind, count in contacts_per_user.items()}, name)

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self._streams = RandomStreams(int(context.rng.integers(2**63)))

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        actions = self.context.actions
        edges = np.cumsum([self.rates.get(kind, 0.0) for kind in actions[1:]])
        draws = self._streams.uniforms(self.context.keys, period, 1)[:, 0]
        chosen = np.searchsorted(edges, draws, side="right") + 1  # len(edges) + 1 past the last: none
        return allowed(np.where(chosen <= len(edges), chosen, 0), masks)


@dataclass
class FixedCadence(Policy):
    """Sends ``kind`` to every user every ``every`` periods (a newsletter schedule)."""

    kind: str
    every: int
    name: str = "fixed_cadence"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"FixedCadence.every = {self.every} (allowed: >= 1)")

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        due = Features(self.context.feature_names, observations).since(self.kind) >= self.every
        return allowed(np.where(due, self.context.actions.index(self.kind), 0), masks)


@dataclass
class RecencyRule(Policy):
    """RFM practice: a care message at recency ``care_at``, a push at ``push_at``, a coupon at ``coupon_at``.

    A user is in the stage of the largest threshold their recency has reached (a threshold of 0
    switches its kind off); the stage's contact goes out once per lapse, or again every
    ``repeat_every`` periods when that is positive.
    """

    care_at: int
    push_at: int
    coupon_at: int
    repeat_every: int = 0
    name: str = "recency_rule"

    def __post_init__(self) -> None:
        for field in ("care_at", "push_at", "coupon_at", "repeat_every"):
            if getattr(self, field) < 0:
                raise ConfigError(f"RecencyRule.{field} = {getattr(self, field)} (allowed: >= 0)")

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        features, actions = Features(self.context.feature_names, observations), self.context.actions
        recency = features.recency
        chosen = np.zeros(len(observations), dtype=np.int64)
        stage_threshold = np.zeros(len(observations), dtype=np.int64)
        for kind, threshold in ((CARE, self.care_at), (PUSH, self.push_at), (COUPON, self.coupon_at)):
            if threshold == 0:
                continue
            in_stage = (recency >= threshold) & (threshold > stage_threshold)
            due = ~features.sent_this_lapse(kind)
            if self.repeat_every > 0:
                due |= features.since(kind) >= self.repeat_every
            chosen = np.where(in_stage, np.where(due, actions.index(kind), 0), chosen)
            stage_threshold = np.where(in_stage, threshold, stage_threshold)
        return allowed(chosen, masks)


@dataclass
class InterestThresholdRule(Policy):
    """Acts when predicted interest falls to ``threshold``, escalating care -> push -> coupon.

    Within a lapse, a user whose interest is at or below the threshold gets the first kind of the
    ladder not yet sent in the lapse, at least ``gap`` periods after their last contact; the ladder
    stops at ``top`` (``care_message``, ``push_new_items`` or ``coupon``), whose contact then repeats
    every ``gap`` periods while interest stays low.
    """

    threshold: float
    gap: int
    top: str = COUPON
    name: str = "interest_threshold"

    LADDER = (CARE, PUSH, COUPON)

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"InterestThresholdRule.threshold = {self.threshold} (allowed: [0, 1])")
        if self.gap < 1:
            raise ConfigError(f"InterestThresholdRule.gap = {self.gap} (allowed: >= 1)")
        if self.top not in self.LADDER:
            raise ConfigError(f"InterestThresholdRule.top = {self.top!r} (allowed: {', '.join(self.LADDER)})")

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        features, actions = Features(self.context.feature_names, observations), self.context.actions
        ladder = self.LADDER[: self.LADDER.index(self.top) + 1]
        low = (features.interest <= self.threshold) & (features.since_any(ladder) >= self.gap)
        chosen = np.full(len(observations), actions.index(ladder[-1]))
        for kind in reversed(ladder[:-1]):
            chosen = np.where(features.sent_this_lapse(kind), chosen, actions.index(kind))
        return allowed(np.where(low, chosen, 0), masks)


Priority = Literal["at_risk", "engaged"]
"""Whose requests a :class:`Prioritized` rule serves first: the least interested users, or the most."""


@dataclass
class Prioritized(ScoringPolicy):
    """A rule whose requests carry a priority, so that under shared limits an allocation
    (:mod:`winback.allocation`) serves the requests that matter most and drops the rest at the source.

    A rule expects nothing of its contacts, so the priority is the user's interest (the decay model's
    forecast, a policy feature): ``at_risk`` serves the least interested first, ``engaged`` the most.
    The rule's request scores 0.5 to 1.5 by that priority, no contact 0, any other action ``-inf``:
    without a binding limit it is the rule, decision for decision.
    """

    rule: Policy
    priority: Priority = "at_risk"
    name: str = "prioritized_rule"

    def __post_init__(self) -> None:
        if self.priority not in ("at_risk", "engaged"):
            raise ConfigError(f"Prioritized.priority = {self.priority!r} (allowed: 'at_risk', 'engaged')")

    @property
    def score_kind(self) -> ScoreKind:
        return "priority"

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self.rule.reset(context)

    def scores(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        requested = np.asarray(self.rule.act(observations, masks, period), dtype=np.int64)
        interest = Features(self.context.feature_names, observations).interest
        priority = 1.5 - interest if self.priority == "at_risk" else 0.5 + interest
        scores = np.full(masks.shape, -np.inf)
        scores[:, 0] = 0.0
        rows = np.flatnonzero(requested > 0)
        scores[rows, requested[rows]] = np.clip(priority[rows], 0.5, 1.5)
        return scores

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        return np.argmax(self.scores(observations, masks, period), axis=1).astype(np.int64)
