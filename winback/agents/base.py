"""One interface for every policy: trained agents, baselines, the oracle and exported artifacts.

A :class:`Policy` decides for a batch of users at once. The harness (and the what-if engine, and the
server) calls :meth:`Policy.reset` when a batch of users starts, then each period :meth:`Policy.act`
with the users' observations, their action masks and the period's index, and :meth:`Policy.update`
with the rewards that followed (only policies that learn online, such as an A/B test, use them).

A deployable policy is told only what a production job has: the :class:`DecisionContext` at reset,
then observations, masks and the period. The references that look into the simulator (the oracle and
the planner) are :class:`~winback.agents.reference.Reference` policies, bound to the true world
apart. A :class:`ScoringPolicy` also scores every action per user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from winback.allocation import PriceInput
from winback.simulator.state import SINCE_CAP

ScoreKind = Literal["log_probability", "q_value", "net_value", "priority"]
"""What the scores of a :class:`ScoringPolicy` are: the log-probability of each action under the
policy's distribution (the masks not applied), its Q-value, its predicted net value per user, or a
rule's priority of its request (higher first; no contact at 0)."""


@dataclass(frozen=True)
class DecisionContext:
    """What a policy is told when a batch of users starts: what a production job knows too."""

    feature_names: tuple[str, ...]
    """Columns of the observations (:mod:`winback.simulator.features`)."""
    actions: tuple[str, ...]
    """Action names, ``none`` first."""
    n_users: int
    rng: np.random.Generator
    """The policy's own seeded generator (randomised policies draw only from it)."""
    horizon: int
    """Periods the batch will be followed."""
    keys: np.ndarray
    """(n_users,) uint64 stable keys of the users (hashes of their ids, :func:`winback.streams.user_keys`):
    a policy that draws per user from :class:`~winback.streams.RandomStreams` under these keys draws the
    same for a user whichever users share the batch."""


class Policy(ABC):
    """Chooses an action per user from observations ((n, F) float32) and masks ((n, A) bool)."""

    name: str = "policy"
    separable: bool = True
    """Whether each user's actions depend on that user alone: then a population split into shards
    and run apart gets the same actions. Policies that learn from or draw across the whole batch
    (experiments) are not."""

    def reset(self, context: DecisionContext) -> None:
        """A new batch of users starts (stateful policies clear their state here)."""
        self.context = context

    @abstractmethod
    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        """(n,) int64 actions in ``period`` (0 for the first after :meth:`reset`, then 1, 2, ...);
        a masked action is refused by the simulator (no cost, counts as none)."""

    def update(self, rewards: np.ndarray) -> None:
        """The (n,) rewards of the period just acted on (ignored unless the policy learns online)."""
        return None


class ScoringPolicy(Policy):
    """A policy that scores every action of every user, higher better: what a budget can rank by.

    Wherever it decides greedily, :meth:`act` chooses the highest score (the first on ties).
    """

    greedy: bool = True
    """Whether :meth:`act` always chooses the highest score: then an allocation under shared limits
    (:mod:`winback.allocation`) may choose from the scores instead."""
    price_input: PriceInput | None = None
    """The prices of shared resources the policy reads after the features (trained under them, see
    :class:`~winback.envs.episodes.Pricing`); ``None``: it reads none."""

    @property
    @abstractmethod
    def score_kind(self) -> ScoreKind:
        """What the scores are (:data:`ScoreKind`)."""

    @abstractmethod
    def scores(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        """(n, A) float scores, ``-inf`` where masked (the arguments as for :meth:`Policy.act`)."""


class Features:
    """Named columns of an observation batch, in the units rules are written in."""

    def __init__(self, names: tuple[str, ...], observations: np.ndarray) -> None:
        self.names, self.observations = names, observations

    def column(self, name: str) -> np.ndarray:
        return self.observations[:, self.names.index(name)]

    @property
    def interest(self) -> np.ndarray:
        return self.column("interest")

    @property
    def recency(self) -> np.ndarray:
        """(n,) int64 periods since the last purchase (or birth)."""
        return np.rint(np.expm1(self.column("log_recency"))).astype(np.int64)

    def since(self, kind: str) -> np.ndarray:
        """(n,) int64 periods since the last contact of ``kind``; ``SINCE_CAP`` also means never."""
        return np.rint(self.column(f"since_{kind}") * SINCE_CAP).astype(np.int64)

    def since_any(self, kinds: tuple[str, ...]) -> np.ndarray:
        """(n,) periods since the last contact of any of ``kinds``."""
        return np.min([self.since(k) for k in kinds], axis=0)

    def sent_this_lapse(self, kind: str) -> np.ndarray:
        """(n,) bool: a contact of ``kind`` went out after the last purchase."""
        since = self.since(kind)
        return (since < self.recency) & (since < SINCE_CAP)


def allowed(actions: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``actions`` with every masked choice replaced by ``none`` (0)."""
    return np.where(masks[np.arange(len(actions)), actions], actions, 0)
