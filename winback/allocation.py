"""Decisions that fit shared limits: a price per unit of each scarce resource, set each period.

Coupons a week, messages a care team can write: resources shared by every user. Given each user's
score of every action (higher better, ``-inf`` where masked) and the units of each resource every
action uses, :func:`allocate` chooses for each user the action that maximises its score minus the
prices of the resources it uses (the Lagrangian relaxation of "maximise the summed score subject to
the limits"), with prices set so that no limit is exceeded: a user gets a scarce contact when what
it adds over the user's best action without it exceeds the price, and the price is the value of the
first user the limit leaves out (the market-clearing price; Everett 1963, "Generalized Lagrange
multiplier method for solving problems of optimum allocation of resources").

With one resource the clearing price is an order statistic of the users' gains, computed exactly.
With several (a coupon budget and a care team: substitutes for a user), the first price is found by
bisection, the others cleared afresh at each trial price (users have unit demand, so a resource's
use falls as its price rises even as the others follow); the cost grows as the bisection's steps to
the power of the resources less one, fine for the two a shop has. Whatever still exceeds a limit
(ties within the tolerance) is cut at the users with the least gain, so a limit is never exceeded;
what a limit has left after its price is given to the users tied at it.
Written here because no library in the stack offers a vectorised clearing of this kind (OR solvers
solve the integer program, far slower, and are not in the deployment's dependencies).

A policy trained with the prices in its observation (:class:`PriceInput`, BCORLE(lambda): Zhang et
al. 2021, "BCORLE(lambda): An Offline Reinforcement Learning and Evaluation Framework for Coupons
Allocation in E-commerce Market") is priced differently: :func:`allocate_conditioned` searches the
price it is shown, in the reward's units, until its own choices fit the limits, and only then
clears what is left on its scores at that price.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from winback.errors import ConfigError

RESOURCES = ("coupons", "care_messages")
"""The resources shared across users that operations limit each period, in the order of every
price and limit vector: coupons in the budget, messages the care team can write."""
MAX_ROUNDS = 60
"""Bisection steps on a price (each halves its interval) before the cut settles the rest."""
_SLACK = 1e-9
"""Added to a clearing price, relative to the scores' scale: ties at the price go without."""


@dataclass(frozen=True)
class Allocation:
    """The actions chosen under the limits, and the prices that chose them."""

    actions: np.ndarray
    """(n,) int64 chosen actions."""
    prices: np.ndarray
    """(R,) price per unit of each resource (0 where its limit does not bind)."""
    used: np.ndarray
    """(R,) units of each resource the actions use."""
    rounds: int
    """Clearings of the last price (1 with one limited resource; the bisection's steps otherwise), or
    the policy's evaluations in :func:`allocate_conditioned`'s price search."""
    exact: bool
    """Whether every user's action maximises its score minus the prices (no cut was needed); for a
    price-conditioned policy, whether its own choices at the prices shown fit the limits."""


def allocate(scores: np.ndarray, use: np.ndarray, limits: np.ndarray) -> Allocation:
    """Each user's action under the resource ``limits``.

    ``scores``: (n, A) per user and action, ``-inf`` where not allowed; action 0 (no contact) uses
    nothing and is always allowed. ``use``: (R, A) units of each resource an action takes, the same
    for every action that takes any of it. ``limits``: (R,) units available (``inf``: no limit).
    Without a binding limit the actions are the scores' argmax (the first on ties), unchanged.
    """
    scores, use, limits = _checked(scores, use, limits)
    prices = np.zeros(len(limits))
    actions = _best(scores, use, prices)
    if np.all(_used(actions, use) <= limits):
        return Allocation(actions, prices, _used(actions, use), 0, True)
    limited = [r for r in range(len(limits)) if np.isfinite(limits[r]) and np.any(use[r] > 0)]
    rounds = _clear(scores, use, limits, prices, limited)
    actions = _fill_ties(scores, use, limits, prices, limited, _best(scores, use, prices))
    exact = bool(np.all(_used(actions, use) <= limits))
    if not exact:
        actions = _cut(scores, use, prices, limits, actions)
    return Allocation(actions, prices, _used(actions, use), rounds, exact)


def _clear(
    scores: np.ndarray, use: np.ndarray, limits: np.ndarray, prices: np.ndarray, resources: list[int]
) -> int:
    """Set the prices of ``resources`` (in place, the others held) to clear their limits; returns the
    clearings of the last resource computed. The last is cleared exactly (an order statistic); each
    one before it by bisection on its price, the rest cleared afresh at every trial price: a user
    wants a resource less as its price rises, even as the others' prices follow."""
    if len(resources) == 1:
        prices[resources[0]] = _clearing_price(scores, use, prices, limits, resources[0])
        return 1
    r, rest = resources[0], resources[1:]

    def over(price: float) -> bool:
        prices[r] = price
        _clear(scores, use, limits, prices, rest)
        return bool(_used(_best(scores, use, prices), use)[r] > limits[r])

    clearings = len(rest)
    if not over(0.0):
        return clearings
    free = np.where((use == 0).all(axis=0), scores, -np.inf).max(axis=1)
    low, high = 0.0, float(np.max((scores[:, use[r] > 0].max(axis=1) - free) / use[r, use[r] > 0][0])) + 1.0
    scale = _SLACK * (1.0 + np.abs(scores[np.isfinite(scores)]).max())
    for clearings in range(1, MAX_ROUNDS + 1):  # noqa: B007 - reported
        if high - low <= scale:
            break
        middle = 0.5 * (low + high)
        low, high = (middle, high) if over(middle) else (low, middle)
    over(high)
    return clearings


def _checked(scores: np.ndarray, use: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, ...]:
    scores = np.asarray(scores, dtype=np.float64)
    use = np.asarray(use, dtype=np.float64)
    limits = np.asarray(limits, dtype=np.float64)
    if scores.ndim != 2 or use.ndim != 2 or use.shape[1] != scores.shape[1] or limits.shape != use.shape[:1]:
        raise ConfigError(
            f"allocation: scores {scores.shape}, use {use.shape} and limits {limits.shape} "
            "(expected (users, actions), (resources, actions) and (resources,))"
        )
    if np.any(use < 0) or np.any(use[:, 0] != 0) or np.any(limits < 0) or np.isnan(limits).any():
        raise ConfigError("allocation: use must be >= 0 and 0 for action 0, limits >= 0")
    for r, row in enumerate(use):
        if len(set(row[row > 0])) > 1:
            raise ConfigError(f"allocation: resource {r} is used in different amounts by actions {row}")
    if np.isnan(scores).any() or np.any(scores == np.inf) or np.any(scores[:, 0] == -np.inf):
        raise ConfigError("allocation: scores must be finite or -inf, and finite for action 0")
    return scores, use, limits


def _net(scores: np.ndarray, use: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """(n, A) scores minus the prices of what each action uses."""
    return scores - prices @ use


def _best(scores: np.ndarray, use: np.ndarray, prices: np.ndarray) -> np.ndarray:
    return np.argmax(_net(scores, use, prices), axis=1).astype(np.int64)


def _used(actions: np.ndarray, use: np.ndarray) -> np.ndarray:
    return use[:, actions].sum(axis=1)


def _gains(scores: np.ndarray, use: np.ndarray, prices: np.ndarray, r: int) -> np.ndarray:
    """(n,) what each user's best action using resource ``r`` adds over its best one that does not,
    per unit of ``r``, at the other resources' prices (``-inf``: no allowed action uses ``r``)."""
    others = prices.copy()
    others[r] = 0.0
    net = _net(scores, use, others)
    takes = use[r] > 0
    inside = net[:, takes].max(axis=1)
    outside = net[:, ~takes].max(axis=1)
    return (inside - outside) / use[r, takes][0]


def _clearing_price(
    scores: np.ndarray, use: np.ndarray, prices: np.ndarray, limits: np.ndarray, r: int
) -> float:
    """The lowest price of ``r`` at which the users whose gain exceeds it fit its limit: the gain of
    the first user left out, plus a slack far below any difference of scores that matters, so that
    user prefers an action without ``r`` whatever the rounding (0 when the limit leaves nobody out)."""
    if not np.any(use[r] > 0) or limits[r] == np.inf:
        return 0.0
    gains = _gains(scores, use, prices, r)
    unit = use[r, use[r] > 0][0]
    slots = int(limits[r] // unit)
    if (gains >= 0).sum() <= slots:  # even the users indifferent at no price fit
        return 0.0
    positive = gains[gains > 0]
    left_out = 0.0 if positive.size <= slots else -np.partition(-positive, slots)[slots]
    scale = 1.0 + np.abs(scores[np.isfinite(scores)]).max()
    return float(left_out + _SLACK * scale / unit)


def _fill_ties(
    scores: np.ndarray,
    use: np.ndarray,
    limits: np.ndarray,
    prices: np.ndarray,
    resources: list[int],
    actions: np.ndarray,
) -> np.ndarray:
    """``actions`` with what each priced resource has left given to the users whose gain ties with
    the price (indifferent at it: the price's slack sent them without), first in user order."""
    actions = actions.copy()
    scale = 1.0 + np.abs(scores[np.isfinite(scores)]).max()
    for r in resources:
        unit = use[r, use[r] > 0][0]
        left = int((limits[r] - _used(actions, use)[r]) // unit)
        if prices[r] == 0 or left <= 0:
            continue
        gains = _gains(scores, use, prices, r)
        tied = np.flatnonzero(
            (np.abs(gains - prices[r]) <= 2 * _SLACK * scale / unit) & (use[r, actions] == 0)
        )
        chosen = tied[:left]
        inside = np.where(use[r] > 0, _net(scores[chosen], use, prices), -np.inf)
        actions[chosen] = np.argmax(inside, axis=1)
    return actions


def _cut(
    scores: np.ndarray, use: np.ndarray, prices: np.ndarray, limits: np.ndarray, actions: np.ndarray
) -> np.ndarray:
    """``actions`` with the users of least gain on each exceeded resource moved to their best action
    that uses no limited resource (no contact at worst), until every limit holds."""
    actions = actions.copy()
    net = _net(scores, use, prices)
    free = np.where((use[np.isfinite(limits)] == 0).all(axis=0), net, -np.inf)
    for r in range(len(limits)):
        excess = _used(actions, use)[r] - limits[r]
        if excess <= 0:
            continue
        takers = np.flatnonzero(use[r, actions] > 0)
        gain = net[takers, actions[takers]] - free[takers].max(axis=1)
        count = int(np.ceil(excess / use[r, use[r] > 0][0]))
        dropped = takers[np.argsort(gain, kind="stable")[:count]]
        actions[dropped] = np.argmax(free[dropped], axis=1)
    return actions


PRICE_STEPS = 14
"""Bisection steps of the price shown to a price-conditioned policy (a 16,384th of its ceiling)."""
PRICE_SWEEPS = 3
"""Passes over the resources when several prices are searched one at a time."""


@dataclass(frozen=True)
class PriceInput:
    """Prices a policy reads after its features, one column per resource it was trained under:
    ``price_<resource>``, per unit of the resource in the reward's units (dollars), seen in training
    between 0 and ``ceiling``."""

    resources: tuple[str, ...]
    """Of :data:`RESOURCES`, in their order."""
    ceiling: float

    def __post_init__(self) -> None:
        if not self.resources or any(r not in RESOURCES for r in self.resources):
            raise ConfigError(f"price input for {list(self.resources)} (allowed: some of {list(RESOURCES)})")
        if list(self.resources) != [r for r in RESOURCES if r in self.resources]:
            raise ConfigError(f"price input for {list(self.resources)}: not in the order {list(RESOURCES)}")
        if not 0 < self.ceiling < np.inf:
            raise ConfigError(f"price input ceiling = {self.ceiling} (allowed: > 0, finite)")

    @property
    def columns(self) -> tuple[str, ...]:
        """The observation columns of the prices."""
        return tuple(f"price_{resource}" for resource in self.resources)

    @property
    def ceilings(self) -> np.ndarray:
        """(R,) the highest price shown of each of :data:`RESOURCES` (0: not shown)."""
        return np.array([self.ceiling if r in self.resources else 0.0 for r in RESOURCES])

    def append(self, observations: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """(n, F + P) float32 ``observations`` with the prices (R,) of :data:`RESOURCES` it reads."""
        shown = np.asarray(prices, dtype=np.float32)[[RESOURCES.index(r) for r in self.resources]]
        return np.hstack([observations, np.broadcast_to(shown, (len(observations), len(shown)))])

    def to_dict(self) -> dict[str, Any]:
        return {"resources": list(self.resources), "ceiling": self.ceiling}

    @classmethod
    def from_dict(cls, values: Any, source: str) -> PriceInput:
        """The price input recorded in ``values``; errors name ``source``."""
        try:
            return cls(tuple(values["resources"]), float(values["ceiling"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{source}: not a price input {{resources, ceiling}} ({err!r})") from err


def allocate_conditioned(
    scores_at: Callable[[np.ndarray], np.ndarray],
    use: np.ndarray,
    limits: np.ndarray,
    ceilings: np.ndarray,
    steps: int = PRICE_STEPS,
) -> Allocation:
    """Actions of a price-conditioned policy under the resource ``limits``.

    ``scores_at(prices)``: (n, A) scores of the policy shown the (R,) ``prices``; ``ceilings``: (R,)
    the highest price it was trained under for each resource (0: it does not read that price). Each
    price it reads is raised (:func:`search_prices`) until the policy's own choices fit that limit (as
    a price-conditioned policy is deployed: it asks for less as the price rises); what still exceeds
    a limit (past a ceiling, or a resource it does not read) is then cleared by :func:`allocate` on
    its scores at the prices found. ``prices`` of the result are those shown.
    """
    use, limits = np.asarray(use, dtype=np.float64), np.asarray(limits, dtype=np.float64)
    prices, evaluations = search_prices(
        lambda trial: _used(np.argmax(scores_at(trial), axis=1), use), limits, ceilings, steps
    )
    final = allocate(scores_at(prices), use, limits)
    return Allocation(final.actions, prices, final.used, evaluations, final.exact and not final.prices.any())


def search_prices(
    used_at: Callable[[np.ndarray], np.ndarray],
    limits: np.ndarray,
    ceilings: np.ndarray,
    steps: int = PRICE_STEPS,
) -> tuple[np.ndarray, int]:
    """The (R,) lowest prices, to a ``2^-steps`` share of each ceiling, at which ``used_at(prices)``
    ((R,) the units of each resource taken at those prices, falling as its price rises) fits the
    (R,) ``limits``, and the evaluations of ``used_at`` it took. Prices are raised by bisection on
    ``[0, ceilings]``, one resource at a time (:data:`PRICE_SWEEPS` passes when several are searched);
    a resource of ceiling 0 or no limit is left at 0, and one over its limit even at its ceiling is
    left there."""
    limits, ceilings = np.asarray(limits, dtype=np.float64), np.asarray(ceilings, dtype=np.float64)
    prices, evaluations = np.zeros(len(limits)), 0

    def over(trial: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        evaluations += 1
        return np.asarray(used_at(trial)) > limits

    searched: Sequence[int] = [r for r in range(len(limits)) if ceilings[r] > 0 and np.isfinite(limits[r])]
    for _ in range(PRICE_SWEEPS if len(searched) > 1 else 1):
        exceeded = over(prices)
        if not exceeded[searched].any():
            break
        for r in searched:
            if prices[r] == 0.0 and not exceeded[r]:  # free and within its limit: nothing to search
                continue
            low, high = 0.0, float(ceilings[r])
            trial = prices.copy()
            trial[r] = high
            if not over(trial)[r]:
                for _ in range(steps):
                    trial[r] = 0.5 * (low + high)
                    low, high = (trial[r], high) if over(trial)[r] else (low, trial[r])
            prices[r] = high
    return prices, evaluations
