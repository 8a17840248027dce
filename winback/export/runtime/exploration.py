"""Exploration in logged decisions: every allowed action keeps at least a stated probability, so that
the log supports off-policy evaluation of other policies, and the probability of the action sent (its
propensity) is known exactly.

- ``none``: the policy's own choice, with probability 1 (a log of it evaluates no other policy
  except where the two agree);
- ``epsilon``: with probability ``epsilon`` an allowed action drawn uniformly, else the policy's
  choice: ``p(a) = (1 - epsilon) [a = choice] + epsilon / k`` over the ``k`` allowed actions;
- ``softmax``: ``p(a)`` proportional to ``exp(score(a) / temperature)`` over the allowed actions
  (for an actor-critic's log-probabilities at temperature 1: the policy's own distribution).

Then the floor: ``p <- (1 - k floor) p + floor``, so each allowed action has at least ``floor``
(``k floor <= 1``). The action is drawn by inverting the cumulative probabilities at a uniform keyed by
(seed, user, period) (:class:`~winback.streams.RandomStreams`): the same run draws the same actions,
whichever users share its batch. Masked actions have probability 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from winback.errors import ConfigError

ExplorationKind = Literal["none", "epsilon", "softmax"]


@dataclass(frozen=True)
class Exploration:
    """How a logged decision explores (module docstring)."""

    kind: ExplorationKind = "none"
    epsilon: float = 0.0
    """Share of decisions drawn uniformly among the allowed actions (``epsilon``)."""
    temperature: float = 1.0
    """Softmax temperature on the scores (``softmax``)."""
    floor: float = 0.0
    """Least probability of every allowed action, after the rest."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(ExplorationKind):
            raise ConfigError(
                f"exploration = {self.kind!r} (allowed: {', '.join(get_args(ExplorationKind))})"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon = {self.epsilon} (allowed: [0, 1])")
        if not 0.0 < self.temperature < math.inf:
            raise ConfigError(f"temperature = {self.temperature} (allowed: > 0, finite)")
        if not 0.0 <= self.floor < 1.0:
            raise ConfigError(f"floor = {self.floor} (allowed: [0, 1))")

    def probabilities(self, scores: np.ndarray, allowed: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """(n, A) float64 probability of each action: ``scores`` (n, A), ``allowed`` (n, A) bool masks
        (``none`` always allowed), ``choice`` (n,) the policy's action for each user."""
        allowed = np.asarray(allowed, dtype=bool)
        n, n_actions = allowed.shape
        k = allowed.sum(axis=1, keepdims=True)
        if np.any(self.floor * k > 1.0 + 1e-12):
            raise ConfigError(
                f"floor = {self.floor} over {int(k.max())} allowed actions exceeds 1 "
                "(allowed: floor <= 1 / actions)"
            )
        greedy = np.zeros((n, n_actions))
        greedy[np.arange(n), choice] = 1.0
        if self.kind == "none":
            p = greedy
        elif self.kind == "epsilon":
            p = (1.0 - self.epsilon) * greedy + self.epsilon * allowed / k
        else:
            logits = np.where(allowed, np.asarray(scores, dtype=np.float64) / self.temperature, -np.inf)
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = weights / weights.sum(axis=1, keepdims=True)
        if self.floor:
            p = (1.0 - self.floor * k) * p + self.floor * allowed
        return np.where(allowed, p, 0.0)

    def draw(self, probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """(n,) int64 actions drawn from (n, A) ``probabilities`` at (n,) ``uniforms`` in [0, 1): the
        first action whose cumulative probability exceeds the uniform (never one of probability 0)."""
        cumulative = np.cumsum(probabilities, axis=1)
        cumulative /= cumulative[:, -1:]
        chosen = (cumulative <= np.asarray(uniforms)[:, None]).sum(axis=1)
        chosen = np.minimum(chosen, probabilities.shape[1] - 1)
        zero = probabilities[np.arange(len(chosen)), chosen] == 0.0  # the uniform fell on a flat step
        if zero.any():
            chosen[zero] = np.argmax(probabilities[zero] > 0.0, axis=1)
        return chosen.astype(np.int64)
