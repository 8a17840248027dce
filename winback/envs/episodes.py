"""Episodes of single users drawn from a population, N at a time: the core every environment adapts.

An episode follows one user of the population *pool* from where the pool stands. At reset, a slot's
generator draws which user and a 63-bit *luck* that, mixed with the user's key, keys the episode's
random stream: the same seed gives the same user with the same luck, whichever environment runs it
(single, SB3 vectorised or Gymnasium vectorised) and whichever other slots run beside it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from winback.allocation import RESOURCES, PriceInput
from winback.errors import ConfigError
from winback.scenarios.operations import resource_use
from winback.simulator.features import feature_bounds, feature_names, observe
from winback.simulator.outcome import StepOutcome
from winback.simulator.state import SimState
from winback.streams import draw_keys

if TYPE_CHECKING:
    from winback.envs.config import EnvConfig
    from winback.scenarios.scenario import Scenario
    from winback.simulator.core import Simulator

DEFAULT_HORIZON = 52
"""Periods per episode: a year of weeks."""

Reward = Literal["realised", "expected"]
"""What an environment's reward is: the period's drawn net value, or its expectation."""


LAPSE_CAP = 52
"""Periods since the last purchase beyond which :attr:`Demand.per_lapsed_period` stops adding up."""


@dataclass(frozen=True)
class Demand:
    """Shifts of every user's log-odds of buying that the decay model does not know about: the world
    of a scenario (a holiday peak, interest that decays faster than learned). Policies observe the
    decay model's interest, without these shifts."""

    by_period: tuple[float, ...] = ()
    """Shift in each period of the horizon (a demand shock: ``log(multiplier)`` of the odds); none
    past the tuple's end."""
    per_lapsed_period: float = 0.0
    """Shift per period since the last purchase beyond the first, up to :data:`LAPSE_CAP` periods
    (``log(0.95)``: the odds of buying fall by 5% for every week without a purchase)."""

    def __post_init__(self) -> None:
        if not all(math.isfinite(x) for x in (*self.by_period, self.per_lapsed_period)):
            raise ConfigError(f"{self} (allowed: finite numbers)")

    @property
    def shifts(self) -> bool:
        """Whether any period's demand is shifted."""
        return any(self.by_period) or self.per_lapsed_period != 0.0

    def shift(self, periods: np.ndarray, recency: np.ndarray) -> np.ndarray | None:
        """(n,) shifts for users in ``periods`` of the horizon with ``recency`` periods since their
        last purchase (:attr:`SimState.recency`); ``None`` when there are none."""
        shift = None
        if any(self.by_period):
            table = np.append(np.asarray(self.by_period, dtype=np.float64), 0.0)
            shift = table[np.minimum(periods, len(self.by_period))]
        if self.per_lapsed_period:
            lapse = self.per_lapsed_period * np.clip(recency - 1, 0, LAPSE_CAP)
            shift = lapse if shift is None else shift + lapse
        return shift


PRICE_CEILING = 5.0
"""The highest price per unit of a shared resource an episode draws, in dollars: more than a care
message or a coupon adds to a user's net value over a period in any built-in scenario."""
FREE_SHARE = 0.15
"""Share of episodes whose resources are free (price 0: operations have capacity to spare)."""
PRICE_FLOOR = 0.01
"""The lowest positive price drawn, as a share of the ceiling (prices are log-uniform above it)."""
_PRICE_SALT = 0x9E3779B9
"""Mixed with an episode's key to seed its prices apart from its simulator streams."""


@dataclass(frozen=True)
class Pricing:
    """What an episode charges for the resources users share (coupons under a budget, care messages
    under a team): a price per unit, drawn at the episode's start and shown to the policy after its
    features, then charged on every contact delivered, so one policy learns to serve any price
    (BCORLE(lambda); deployed, :func:`winback.allocation.allocate_conditioned` finds the price at which
    its requests fit the limits of the period)."""

    input: PriceInput
    use: tuple[tuple[float, ...], ...]
    """(P, A) units of each priced resource every action takes."""
    free_share: float = FREE_SHARE

    @classmethod
    def of(cls, scenario: Scenario, simulator: Simulator) -> Pricing | None:
        """The pricing of the resources the scenario's operations limit (``None``: none)."""
        use = resource_use(scenario.operations, simulator.kinds, simulator.tables.validity)
        priced = [r for r in range(len(use)) if use[r].any()]
        if not priced:
            return None
        resources = tuple(RESOURCES[r] for r in priced)
        return cls(PriceInput(resources, PRICE_CEILING), tuple(tuple(use[r]) for r in priced))

    def draw(self, key: int) -> np.ndarray:
        """(P,) prices of the episode whose stream is keyed by ``key``: all 0 with probability
        :attr:`free_share`, else each log-uniform between :data:`PRICE_FLOOR` of the ceiling and the
        ceiling (drawn from the key, so pricing leaves which users episodes draw unchanged)."""
        rng = np.random.default_rng([int(key), _PRICE_SALT])
        free = rng.random() < self.free_share
        levels = rng.random(len(self.use))
        return np.zeros(len(self.use)) if free else self.input.ceiling * PRICE_FLOOR ** (1.0 - levels)

    def charge(self, prices: np.ndarray, delivered: np.ndarray) -> np.ndarray:
        """(n,) what the (n,) ``delivered`` actions cost at each user's (n, P) ``prices``."""
        return np.einsum("np,pn->n", prices, np.asarray(self.use)[:, delivered])


@dataclass(frozen=True)
class EpisodeConfig:
    """How episodes run: their length, the frequency cap, demand shifts and the reward."""

    horizon: int = DEFAULT_HORIZON
    """Periods per episode: every environment truncates its episodes here."""
    min_contact_gap: int = 0
    """Frequency cap: a contact is masked (and refused) until this many periods have passed since
    the last contact of any kind (0: no cap)."""
    demand: Demand = field(default_factory=Demand)
    """Shifts of demand the decay model does not know about, by period of the episode and lapse."""
    reward: Reward = "realised"
    """The reward returned: the period's realised net value, or its expectation over the period's
    draws (:meth:`Simulator.expected_reward`: the same expected return, far less noise to learn
    from). ``info`` always carries the realised parts."""
    pricing: Pricing | None = None
    """Prices of the resources users share, drawn per episode, observed and charged (``None``:
    resources are free and not observed)."""

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ConfigError(f"EpisodeConfig.horizon = {self.horizon} (allowed: >= 1)")
        if self.min_contact_gap < 0:
            raise ConfigError(f"EpisodeConfig.min_contact_gap = {self.min_contact_gap} (allowed: >= 0)")
        if self.reward not in get_args(Reward):
            raise ConfigError(f"EpisodeConfig.reward = {self.reward!r} (allowed: 'realised', 'expected')")

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, simulator: Simulator, reward: Reward = "realised"
    ) -> EpisodeConfig:
        """A scenario's episodes: its horizon, frequency cap, demand (shocks, faster decay) and the
        pricing of what its operations limit (:meth:`Pricing.of`)."""
        pricing = Pricing.of(scenario, simulator)
        return cls(scenario.horizon, scenario.min_contact_gap, scenario.demand, reward, pricing)


def draw_users(pool: SimState, rngs: list[np.random.Generator]) -> SimState:
    """Copies of one user of ``pool`` per generator, each with an episode stream keyed by a drawn luck."""
    draws = np.array([(rng.integers(pool.n_users), rng.integers(2**63)) for rng in rngs], dtype=np.int64)
    users = pool.take(draws[:, 0])
    users.keys = draw_keys(pool.keys[draws[:, 0]] ^ draws[:, 1].astype(np.uint64), 1)
    return users


class EpisodeBatch:
    """N episodes stepping together through one batched simulator call."""

    def __init__(self, env: EnvConfig, n: int) -> None:
        if env.population.n_users == 0:
            raise ConfigError("the environment's population is empty")
        self.simulator, self.pool, self.config = env.simulator, env.population, env.episode
        self.state = self.pool.take(np.zeros(n, dtype=np.int64))
        self.started = self.state.period.copy()
        """(N,) the period each slot's episode started in."""
        self.names = feature_names(self.simulator)
        self.low, self.high = feature_bounds(self.simulator)
        pricing = self.config.pricing
        self.prices = np.zeros((n, 0 if pricing is None else len(pricing.use)))
        """(N, P) each slot's prices of the shared resources (:class:`Pricing`), after the features."""
        if pricing is not None:
            self.names = (*self.names, *pricing.input.columns)
            self.low = np.append(self.low, np.zeros(len(pricing.use), dtype=np.float32))
            self.high = np.append(
                self.high, np.full(len(pricing.use), pricing.input.ceiling, dtype=np.float32)
            )

    @property
    def n(self) -> int:
        return self.state.n_users

    def start(self, slots: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Begin new episodes in ``slots`` with users drawn by the slots' generators ``rngs``."""
        self.state.assign(slots, draw_users(self.pool, rngs))
        self.started[slots] = self.state.period[slots]
        if self.config.pricing is not None:
            self.prices[slots] = [self.config.pricing.draw(key) for key in self.state.keys[slots]]

    @property
    def elapsed(self) -> np.ndarray:
        """(N,) periods each slot's episode has run."""
        return self.state.period - self.started

    def step(self, actions: np.ndarray) -> tuple[StepOutcome, np.ndarray]:
        """The period's outcome and the (N,) float64 rewards of :attr:`EpisodeConfig.reward`, less
        the prices of the shared resources the delivered contacts took."""
        gap = self.config.min_contact_gap
        demand = self.config.demand
        shift = demand.shift(self.elapsed, self.state.recency) if demand.shifts else None
        expected = (
            self.simulator.expected_reward(self.state, actions, min_gap=gap, demand_shift=shift).total
            if self.config.reward == "expected"
            else None
        )
        outcome = self.simulator.step(self.state, actions, min_gap=gap, demand_shift=shift)
        rewards = outcome.reward.total if expected is None else expected
        if self.config.pricing is not None:
            rewards = rewards - self.config.pricing.charge(self.prices, outcome.delivered)
        return outcome, rewards

    def observe(self) -> np.ndarray:
        """(N, F) float32 observations (the prices last, under a :class:`Pricing`)."""
        features = observe(self.simulator, self.state)
        return (
            features if self.config.pricing is None else np.hstack([features, self.prices], dtype=np.float32)
        )

    def action_masks(self) -> np.ndarray:
        """(N, A) bool valid actions."""
        return self.simulator.action_masks(self.state, self.config.min_contact_gap)

    def truncated(self) -> np.ndarray:
        return self.elapsed >= self.config.horizon


INFO_KEYS = ("margin", "discount", "contact_cost", "purchases", "spend", "delivered", "refused", "opted_out")
"""The keys of a step's ``info`` in every environment: the realised reward parts (``margin -
discount - contact_cost`` is the realised reward), purchases and spend, the contact delivered (its
name), whether the chosen contact was refused, and whether the user opted out."""


def info_columns(outcome: StepOutcome, actions: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The step's ``info`` of every user as (N,) arrays under :data:`INFO_KEYS` (``delivered``:
    an object array of action names)."""
    reward, activity = outcome.reward, outcome.activity
    columns = (
        reward.margin,
        reward.discount,
        reward.contact_cost,
        activity.purchases,
        activity.spend,
        _action_names(actions)[outcome.delivered],
        outcome.refused,
        outcome.opted_out,
    )
    return dict(zip(INFO_KEYS, columns, strict=True))


@functools.cache
def _action_names(actions: tuple[str, ...]) -> np.ndarray:
    """``actions`` as an object array, to index by action (shared: do not modify)."""
    return np.asarray(actions, dtype=object)


def step_infos(outcome: StepOutcome, actions: tuple[str, ...]) -> list[dict[str, float | int | str | bool]]:
    """Each user's ``info`` for a step: :func:`info_columns` as one dict per user of Python scalars."""
    rows = zip(*(column.tolist() for column in info_columns(outcome, actions).values()), strict=True)
    return [dict(zip(INFO_KEYS, row, strict=True)) for row in rows]
