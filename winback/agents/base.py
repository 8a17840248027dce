"""One interface for every policy: trained agents, baselines, the oracle and exported artifacts.

A :class:`Policy` decides for a batch of users at once. The harness (and the what-if engine, and the
server) calls :meth:`Policy.reset` when a batch of users starts, then each period :meth:`Policy.act`
with the users' observations and action masks, and :meth:`Policy.update` with the rewards that
followed (only policies that learn online, such as an A/B test, use them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from winback.envs.episodes import Demand
from winback.simulator.core import Simulator
from winback.simulator.state import SINCE_CAP, SimState


@dataclass
class DecisionContext:
    """What a policy is told when a batch of users starts."""

    feature_names: tuple[str, ...]
    """Columns of the observations (:mod:`winback.simulator.features`)."""
    actions: tuple[str, ...]
    """Action names, ``none`` first."""
    n_users: int
    rng: np.random.Generator
    """The policy's own seeded generator (randomised policies draw only from it)."""
    horizon: int
    """Periods the batch will be followed."""
    simulator: Simulator | None = None
    """The true simulator and the live state it steps: only the :class:`~winback.agents.oracle.Oracle`,
    a reference that no deployed policy could be, looks at them."""
    state: SimState | None = None
    min_gap: int = 0
    """The frequency cap the simulator enforces."""
    demand: Demand = field(default_factory=Demand)
    """The scenario's shifts of demand (:attr:`Scenario.demand`): only the oracle looks at them."""


class Policy(ABC):
    """Chooses an action per user from observations ((n, F) float32) and masks ((n, A) bool)."""

    name: str = "policy"
    separable: bool = True
    """Whether each user's actions depend on that user alone: then a population split into shards
    and run apart gets the same actions. Policies that learn from or draw across the whole batch
    (experiments, random draws by position) are not."""

    def reset(self, context: DecisionContext) -> None:
        """A new batch of users starts (stateful policies clear their state here)."""
        self.context = context

    @abstractmethod
    def act(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(n,) int64 actions; a masked action is refused by the simulator (no cost, counts as none)."""

    def update(self, rewards: np.ndarray) -> None:
        """The (n,) rewards of the period just acted on (ignored unless the policy learns online)."""
        return None


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
