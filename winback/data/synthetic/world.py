"""A ground-truth world to step contact policies in: weekly users whose structure is not the LSTM's.

The simulator of :mod:`winback.simulator` is learned from event logs, so its verdicts on policies
need checking against a world it did not learn from. This module is such a world, written in the
classic customer-base terms (a decaying purchase rate and BG/NBD dropout, Fader, Hardie & Lee 2005)
rather than in the LSTM's, so a decay model fitted on its logs can only approximate it.

**Users** (drawn once from ``np.random.default_rng(seed)``, one row of :attr:`GroundTruthWorld.users`
each): base weekly purchase rate ``lam ~ Gamma`` (mean ``rate_mean``), decay time ``tau ~ Gamma``
(weeks, mean ``decay_weeks_mean``), dropout probability ``p ~ Beta(dropout_a, dropout_b)``, spend
level ``mu ~ Normal(spend_log_mean, spend_level_sd)``. A share ``share_new`` of users is *new*: born
in a week ``b`` drawn uniformly from ``[0, birth_weeks)``, with a purchase in it. The others are
*established*: present from week 0, their last purchase ``s0 ~ Uniform{1 .. initial_recency_weeks}``
weeks before it, and already dormant with probability ``p`` (they had the chance to drop out after
it).

**State** per user: week of the last purchase ``l``, dormant ``D``, opted out ``O``, fatigue ``F``,
coupon weeks left ``c``. **A week** ``t`` of every user, in this order (``s = contact_strength``):

1. *Delivery.* The chosen action ``a`` is delivered if the user is present (``b <= t``), not in the
   birth week, not opted out, and it is not a coupon while one is valid (``c > 0``); otherwise
   ``a = none``: nothing happens and nothing is paid.
2. *Fatigue factor* ``g = exp(-F / fatigue_scale)``, from the fatigue before this week's contact.
3. *Revival.* A dormant user who receives contact ``k`` becomes active again (until its next
   dropout) with probability ``min(1, s * g * revival[k])``.
4. *Coupon.* A delivered coupon sets ``c = coupon_validity``; it is valid this week if ``c > 0``.
5. *Rate.* With ``d = max(t - l, 0)`` weeks since the last purchase and the season
   ``S(t) = 1 + season_amplitude * cos(2 pi (y(t) - y_peak))`` (``y`` the fractional year of the
   week's Thursday, ``y_peak`` that of week ``season_peak_week`` of the year)::

       R = lam * (rate_floor + (1 - rate_floor) * exp(-d / tau)) * S(t) * W * (1 + B)
       W = exp(-fatigue_annoyance * max(F - fatigue_tolerance, 0))
       B = s * g * (push_boost * exp(-(d - 1) / push_recency_weeks) * [a = push]
                    + coupon_boost * [coupon valid] + care_boost * [a = care])

   ``W`` is the wear-out of over-contacted users: contacts beyond the tolerated fatigue lower the
   rate itself, which makes contacting everyone every week lose money.
6. *Purchases.* An active user (not dormant, or revived this week) buys with probability
   ``1 - exp(-R)``; a dormant one never; a new user always in the birth week. A buying week holds
   ``1 + Poisson(extra_purchases_mean)`` purchases (at most :data:`MAX_PURCHASES`), each of spend
   ``exp(mu + spend_log_sigma * z)``, ``z ~ Normal(0, 1)``, and quantity 1.
7. *Browsing.* ``views ~ Poisson(views_per_purchase * R * [active or birth week] + browse_views)``
   for present users (a dormant user still browses a little); ``carts ~ Binomial(views,
   cart_per_view)`` plus one per purchase; ``favs ~ Binomial(views, fav_per_view)``, written as a
   fourth event type ``fav`` (Taobao's four behaviours) only when ``fav_per_view > 0``.
8. *Economics.* ``margin * spend - coupon_discount * spend * [coupon valid] - contact_cost[a]``:
   the discount is paid on every purchase while valid, also on those that would have happened
   anyway.
9. *Updates.* A delivered contact adds ``fatigue[a]`` to ``F``, then the user opts out for good with
   probability ``min(1, opt_out + opt_out_per_fatigue * F)``. After a buying week other than the
   birth week the user turns dormant with probability ``p``; ``l = t`` after any buying week. Then
   ``F <- F * 2^(-1 / fatigue_half_life)``, ``c <- max(c - 1, 0)`` and the week ends.

**Common random numbers.** Every draw of a week is one uniform of
:meth:`winback.streams.RandomStreams.uniforms` keyed by (seed, user key, week, slot), with a fixed
slot per use, turned into Poisson, binomial and normal draws by inverting their CDFs: the same user
in the same week meets the same luck under every policy, so two copies of a state stepped under two
policies give paired outcomes. The logging policy of :meth:`GroundTruthWorld.write_log` and the
placement of events within their weeks draw from their own seeded generator.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from winback.data.schema import CONTACTS, INTERVENTIONS, EventLog, LoadReport
from winback.data.synthetic.logs import ARM, WeeklyCounts, events_from_counts
from winback.errors import ConfigError
from winback.streams import RandomStreams, user_keys

MAX_PURCHASES = 8
"""Most purchases in one user-week (``1 + Poisson`` is capped here; at the default mean of 0.1 the
cap binds with probability below 1e-12)."""
_BUY, _EXTRA, _VIEWS, _CARTS, _REVIVE, _OPT_OUT, _DROPOUT, _SPEND = range(8)
"""Slot of each use of randomness in a user-week; the spend of purchase ``j`` uses ``_SPEND + j``."""
_FAVS = _SPEND + MAX_PURCHASES
_N_SLOTS = _FAVS + 1
_PUSH, _COUPON, _CARE = (INTERVENTIONS.index(kind) for kind in ("push_new_items", "coupon", "care_message"))
_DAYS_PER_YEAR = 365.25

_UNIT = (0.0, True, 1.0, True, "[0, 1]")
_BELOW_ONE = (0.0, True, 1.0, False, "[0, 1)")
_POSITIVE = (0.0, False, math.inf, False, "> 0")
_NON_NEGATIVE = (0.0, True, math.inf, False, ">= 0")
_RANGES: dict[str, tuple[float, bool, float, bool, str]] = {
    "share_new": _UNIT,
    "rate_mean": (0.0, False, 5.0, True, "(0, 5]"),
    "rate_shape": _POSITIVE,
    "rate_floor": _UNIT,
    "decay_weeks_mean": _POSITIVE,
    "decay_weeks_shape": _POSITIVE,
    "dropout_a": _POSITIVE,
    "dropout_b": _POSITIVE,
    "extra_purchases_mean": _UNIT,
    "spend_log_mean": (-10.0, True, 10.0, True, "[-10, 10]"),
    "spend_log_sigma": (0.0, True, 3.0, True, "[0, 3]"),
    "spend_level_sd": (0.0, True, 3.0, True, "[0, 3]"),
    "views_per_purchase": (0.0, True, 100.0, True, "[0, 100]"),
    "browse_views": (0.0, True, 10.0, True, "[0, 10]"),
    "cart_per_view": _BELOW_ONE,
    "fav_per_view": _BELOW_ONE,
    "season_amplitude": _BELOW_ONE,
    "contact_strength": (0.0, True, 10.0, True, "[0, 10]"),
    "push_boost": _NON_NEGATIVE,
    "push_recency_weeks": _POSITIVE,
    "coupon_boost": _NON_NEGATIVE,
    "care_boost": _NON_NEGATIVE,
    "push_new_items_revival": _UNIT,
    "coupon_revival": _UNIT,
    "care_message_revival": _UNIT,
    "push_new_items_fatigue": _NON_NEGATIVE,
    "coupon_fatigue": _NON_NEGATIVE,
    "care_message_fatigue": _NON_NEGATIVE,
    "fatigue_half_life": _POSITIVE,
    "fatigue_scale": _POSITIVE,
    "fatigue_annoyance": _NON_NEGATIVE,
    "fatigue_tolerance": _NON_NEGATIVE,
    "opt_out": _UNIT,
    "opt_out_per_fatigue": _UNIT,
    "margin": _UNIT,
    "push_new_items_cost": _NON_NEGATIVE,
    "coupon_cost": _NON_NEGATIVE,
    "care_message_cost": _NON_NEGATIVE,
    "coupon_discount": _UNIT,
}
"""Allowed range of each float field: (low, low included, high, high included, description)."""
_INT_MINIMUM = {"n_users": 1, "birth_weeks": 1, "initial_recency_weeks": 1, "coupon_validity": 1, "seed": 0}


@dataclass(frozen=True)
class WorldConfig:
    """One ground-truth world (see the module docstring for the equations); checked on construction.

    Defaults: a shop whose decay and dropout show within a year (left alone, the share of established
    users buying in a week falls from 6.7% in the first quarter to 4.1% a year later, season off, as a
    third of them drop out), a Christmas season, and contacts strong enough that contacting the right
    users pays while contacting everyone every week loses money (tested in ``tests/test_world.py``,
    with a simple rule: a push the week after a purchase, a care message every eight weeks from the
    twelfth without one). Economics
    match the defaults of :mod:`winback.simulator` (``response.py`` and ``rewards.py``), so a
    winback scenario can use the same numbers.
    """

    n_users: int = 10_000
    """Number of users (>= 1)."""
    start: str = "2021-01-04"
    """ISO date of the Monday starting week 0."""
    share_new: float = 0.3
    """Share of users born during the world's life, in [0, 1]; the rest are established at week 0."""
    birth_weeks: int = 156
    """New users are born uniformly over weeks ``[0, birth_weeks)`` (>= 1); three years by default."""
    rate_mean: float = 0.15
    """Mean over users of the base weekly purchase rate ``lam`` (the rate just after a purchase), in
    (0, 5]. With ``rate_floor`` it puts an active user's weekly rate between 0.045 and 0.15,
    around CDNOW's mean BG/NBD rate r / alpha = 0.243 / 4.414 = 0.055 (Fader, Hardie & Lee 2005)."""
    rate_shape: float = 1.0
    """Gamma shape of ``lam`` across users (> 0). An assumption: CDNOW's BG/NBD shape is 0.243, which
    leaves most users almost never buying; 1 keeps heterogeneity with more informative users."""
    rate_floor: float = 0.3
    """Share of ``lam`` left long after the last purchase, in [0, 1] (an assumption)."""
    decay_weeks_mean: float = 12.0
    """Mean over users of the decay time ``tau`` of the rate, in weeks (> 0): a quarter, so decay
    shows within a year (an assumption)."""
    decay_weeks_shape: float = 2.0
    """Gamma shape of ``tau`` across users (> 0)."""
    dropout_a: float = 1.0
    """Beta ``a`` of the dropout probability after a buying week (> 0)."""
    dropout_b: float = 9.0
    """Beta ``b`` of the dropout probability (> 0). The mean 0.1 is below CDNOW's BG/NBD estimate
    (0.25, from a = 0.793, b = 2.426), which also stands for the decay of the rate that this world
    models separately, and at which every purchase a contact causes would risk a quarter of the
    user's future (an assumption). A tenth of established users is dormant at week 0 and a third a
    year later."""
    initial_recency_weeks: int = 26
    """Established users last bought uniformly 1 to this many weeks before week 0 (>= 1): customers of
    the last half year."""
    extra_purchases_mean: float = 0.1
    """Mean of the Poisson number of purchases beyond the first in a buying week, in [0, 1]."""
    spend_log_mean: float = 3.3
    """Mean over users of the log spend level ``mu``, in [-10, 10]; CDNOW's mean log spend is 3.31."""
    spend_log_sigma: float = 0.68
    """Standard deviation of log spend around the user's level, in [0, 3]; with ``spend_level_sd``
    the total is sqrt(0.68^2 + 0.3^2) = 0.74, CDNOW's."""
    spend_level_sd: float = 0.3
    """Standard deviation of the spend level ``mu`` across users, in [0, 3] (an assumption)."""
    views_per_purchase: float = 20.0
    """Expected views per unit of purchase rate, in [0, 100]: a 5% view-to-purchase conversion."""
    browse_views: float = 0.2
    """Expected views a week of every present user, dormant ones included, in [0, 10]."""
    cart_per_view: float = 0.1
    """Probability that a view adds to cart, in [0, 1)."""
    fav_per_view: float = 0.0
    """Probability that a view also saves the item as a favourite, in [0, 1); 0 (the default) writes no
    ``fav`` events and no ``fav`` event type."""
    season_amplitude: float = 0.4
    """Relative amplitude of the yearly season of the rate, in [0, 1); 0 turns it off. An assumption:
    the peak week sells 2.3 times the trough week."""
    season_peak_week: int = 47
    """Week of the year (1 to 52, counted from January 1) in which the season peaks: late November."""
    contact_strength: float = 1.0
    """Scales every effect of contacts (rate boosts and revival), in [0, 10]; 0 makes contacts inert
    (they still cost, tire and may opt the user out)."""
    push_boost: float = 1.0
    """Relative rate boost of a new-items push in its week, for a user who bought last week (>= 0):
    recent buyers still explore the catalogue. An assumption, of the order of the Hillstrom women's
    e-mail lift (conversion 0.88% vs 0.57% over two weeks)."""
    push_recency_weeks: float = 4.0
    """Weeks since the last purchase over which the push boost shrinks by e (> 0)."""
    coupon_boost: float = 1.5
    """Relative rate boost while a coupon is valid (>= 0): of the order of the Hillstrom men's e-mail
    lift (1.25% vs 0.57%), the largest observed, for the one contact with an offer."""
    care_boost: float = 0.3
    """Relative rate boost of a care message in its week (>= 0): small, no offer, no products."""
    push_new_items_revival: float = 0.02
    """Probability that a push revives a dormant user (times strength and fatigue factor), in [0, 1]."""
    coupon_revival: float = 0.05
    """Probability that a coupon revives a dormant user, in [0, 1]."""
    care_message_revival: float = 0.1
    """Probability that a care message revives a dormant user, in [0, 1]: its main effect (an
    assumption, as are the other revival probabilities)."""
    push_new_items_fatigue: float = 1.0
    """Fatigue added by a delivered push (>= 0); as in :mod:`winback.simulator.response`."""
    coupon_fatigue: float = 1.0
    """Fatigue added by a delivered coupon (>= 0)."""
    care_message_fatigue: float = 0.5
    """Fatigue added by a delivered care message (>= 0)."""
    fatigue_half_life: float = 4.0
    """Weeks in which fatigue halves (> 0), as in the simulator."""
    fatigue_scale: float = 3.0
    """Effects are multiplied by ``exp(-F / fatigue_scale)`` (> 0), as in the simulator."""
    fatigue_annoyance: float = 0.5
    """The purchase rate is multiplied by ``exp(-fatigue_annoyance * max(F - fatigue_tolerance, 0))``
    (>= 0; 0 turns it off): over-contacted users buy less (wear-out). An assumption: the world's
    cost of contacting too often."""
    fatigue_tolerance: float = 1.0
    """Fatigue users bear without buying less (>= 0): about one push every four weeks (an assumption)."""
    opt_out: float = 0.002
    """Opt-out probability of an unfatigued user per delivered contact, in [0, 1]: the 0.1-0.3% per
    campaign of e-mail providers' benchmarks (Mailchimp), as in the simulator."""
    opt_out_per_fatigue: float = 0.001
    """Added opt-out probability per unit of fatigue (after the contact), in [0, 1]; an assumption,
    as in the simulator."""
    margin: float = 0.30
    """Gross margin as a share of spend, in [0, 1]; the simulator's assumed retail margin."""
    push_new_items_cost: float = 0.02
    """Cost of a delivered push (>= 0); the simulator's assumed cost."""
    coupon_cost: float = 0.05
    """Cost of a delivered coupon before discounts (>= 0); the simulator's assumed cost."""
    care_message_cost: float = 0.03
    """Cost of a delivered care message (>= 0); the simulator's assumed cost."""
    coupon_discount: float = 0.15
    """Share of spend paid back on every purchase while a coupon is valid, in [0, 1]."""
    coupon_validity: int = 2
    """Weeks a coupon is valid, its week included (>= 1): Hillstrom's two-week window."""
    seed: int = 0
    """Seed of the users' parameters and of the per-week random streams (>= 0)."""

    def __post_init__(self) -> None:
        for name, minimum in _INT_MINIMUM.items():
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
                raise ConfigError(
                    f"WorldConfig.{name} = {value!r} is out of range (allowed: an integer >= {minimum})"
                )
        week = self.season_peak_week
        if not isinstance(week, int | np.integer) or isinstance(week, bool) or not 1 <= week <= 52:
            raise ConfigError(
                f"WorldConfig.season_peak_week = {week!r} is out of range (allowed: an integer in [1, 52])"
            )
        try:
            start = dt.date.fromisoformat(self.start)
        except (TypeError, ValueError):
            start = None
        if start is None or start.isoformat() != self.start:
            raise ConfigError(f"WorldConfig.start = {self.start!r} is not an ISO date (allowed: YYYY-MM-DD)")
        if start.weekday() != 0:
            raise ConfigError(
                f"WorldConfig.start = {self.start!r} is a {start.strftime('%A')}; it must be a Monday"
            )
        for name, (low, low_in, high, high_in, allowed) in _RANGES.items():
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not (
                ok
                and (low <= value if low_in else low < value)
                and (value <= high if high_in else value < high)
            ):
                raise ConfigError(f"WorldConfig.{name} = {value!r} is out of range (allowed: {allowed})")

    def per_action(self, parameter: str) -> np.ndarray:
        """(A,) array of ``{kind}_{parameter}`` over :data:`INTERVENTIONS`, 0 for ``none``."""
        return np.array([0.0, *(float(getattr(self, f"{kind}_{parameter}")) for kind in CONTACTS)])


@dataclass
class WorldState:
    """Per-user state of a world at the start of week :attr:`period` (changed in place by ``step``)."""

    period: int
    """The next week to play."""
    user_ids: np.ndarray
    """(n,) user ids, sorted; the same array in every copy."""
    last_purchase: np.ndarray
    """(n,) int64 week of the last purchase (negative before week 0; the birth week before birth)."""
    dormant: np.ndarray
    """(n,) bool: dropped out (buys only if a contact revives it)."""
    opted_out: np.ndarray
    """(n,) bool: receives no more contacts."""
    fatigue: np.ndarray
    """(n,) float64 contact fatigue."""
    coupon_left: np.ndarray
    """(n,) int64 weeks the current coupon stays valid, this week included (0: none)."""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def copy(self) -> WorldState:
        """An independent copy (the user ids are shared: they never change)."""
        return dataclasses.replace(
            self,
            last_purchase=self.last_purchase.copy(),
            dormant=self.dormant.copy(),
            opted_out=self.opted_out.copy(),
            fatigue=self.fatigue.copy(),
            coupon_left=self.coupon_left.copy(),
        )


@dataclass(frozen=True)
class WorldStep:
    """What happened to every user in one week (zeros for users not yet born)."""

    period: int
    present: np.ndarray
    """(n,) bool: born by this week."""
    views: np.ndarray
    """(n,) int64."""
    carts: np.ndarray
    """(n,) int64."""
    favs: np.ndarray
    """(n,) int64 (zeros when ``fav_per_view`` is 0)."""
    purchases: np.ndarray
    """(n,) int64."""
    purchase_spend: np.ndarray
    """(n, MAX_PURCHASES) float64 spend of each of the week's purchases in order (0 past the last)."""
    delivered: np.ndarray
    """(n,) int64 action index actually delivered (0 where ``none`` was chosen or it was refused)."""
    opted_out: np.ndarray
    """(n,) bool: opted out this week."""
    margin: np.ndarray
    """(n,) ``margin * spend``."""
    discount: np.ndarray
    """(n,) discount paid on the week's spend while a coupon was valid."""
    contact_cost: np.ndarray
    """(n,) cost of the delivered contact."""

    @property
    def spend(self) -> np.ndarray:
        """(n,) float64 total spend of the week's purchases."""
        return self.purchase_spend.sum(axis=1)

    @property
    def net(self) -> np.ndarray:
        """(n,) ``margin - discount - contact_cost``."""
        return self.margin - self.discount - self.contact_cost


@dataclass(frozen=True)
class WorldLog:
    """Weeks of a world under a randomized logging policy, as an event log, with their true effects."""

    log: EventLog
    origin: str
    """ISO date of the Monday starting the log's first week (``build_panel(log, origin=...)``)."""
    first_period: int
    """World week of the log's first week."""
    n_weeks: int
    true_effects: dict[str, float]
    """Per contact kind: the mean over the user-weeks that received it of ``P(buy | kind) -
    P(buy | none)`` in that week (NaN for a kind never sent)."""
    treated: dict[str, int]
    """Per contact kind: the user-weeks that received it."""
    contactable: np.ndarray
    """(n, n_weeks) bool, users in world order: the user-weeks the logging policy could contact
    (present, past the birth week, not opted out; a coupon drawn while one is valid is refused)."""
    base_purchase_rate: float
    """Mean ``P(buy | none)`` over all contacted user-weeks."""

    @property
    def end(self) -> str:
        """ISO date after the log's last day (``build_panel(log, end=...)``)."""
        return (dt.date.fromisoformat(self.origin) + dt.timedelta(weeks=self.n_weeks)).isoformat()


class EventRecorder:
    """Consecutive weeks of a world recorded as they are played (:meth:`add`), then written as an event
    log (:meth:`event_log`): every user's views, carts, favs (when the world has them) and purchases,
    and the contacts delivered, whose rows carry ``arm`` (the policy that sent them). Only what the log
    holds is kept of each week: the counts and the spend of the purchases made."""

    def __init__(self, world: GroundTruthWorld, arm: str) -> None:
        self.world, self.arm = world, arm
        self._kinds = ("views", "carts", "favs", "purchases") if world.config.fav_per_view else (
            "views", "carts", "purchases")  # fmt: skip
        self._periods: list[int] = []
        self._weekly: dict[str, list[np.ndarray]] = {kind: [] for kind in (*self._kinds, "contact")}
        self._buyers: list[np.ndarray] = []
        """Per week, the user of each purchase (users in order, a user's purchases in theirs)."""
        self._spend: list[np.ndarray] = []
        """Per week, the spend of each purchase, in the same order."""

    @property
    def origin(self) -> str:
        """ISO date of the Monday starting the first recorded week."""
        first = self._periods[0] if self._periods else 0
        return (dt.date.fromisoformat(self.world.config.start) + dt.timedelta(weeks=first)).isoformat()

    @property
    def n_weeks(self) -> int:
        return len(self._periods)

    def add(self, step: WorldStep) -> None:
        """Record the week ``step`` (the next one after those recorded)."""
        if self._periods and step.period != self._periods[-1] + 1:
            raise ValueError(f"week {step.period} does not follow the recorded week {self._periods[-1]}")
        self._periods.append(step.period)
        for kind in self._kinds:
            self._weekly[kind].append(getattr(step, kind))
        self._weekly["contact"].append((step.delivered - 1).astype(np.int8))
        bought = np.arange(MAX_PURCHASES) < step.purchases[:, None]
        self._buyers.append(np.nonzero(bought)[0])
        self._spend.append(step.purchase_spend[bought])

    def event_log(self, rng: np.random.Generator, *, source: str, notes: str) -> EventLog:
        """The recorded weeks as a canonical event log, events placed within their weeks by ``rng``."""
        if not self._periods:
            raise ValueError("no week recorded")
        n, n_weeks, first = self.world.n_users, self.n_weeks, self._periods[0]
        counts = WeeklyCounts(**{kind: np.stack(weeks, axis=1) for kind, weeks in self._weekly.items()})
        cells = np.concatenate([users * n_weeks + w for w, users in enumerate(self._buyers)])
        # user-week order, the purchases of a week in their order within it
        values = np.concatenate(self._spend)[np.argsort(cells, kind="stable")]
        events = events_from_counts(self.origin, self.world.user_ids, counts, rng, lambda _: values, self.arm)
        report = LoadReport(
            source=source,
            rows_read=len(events),
            notes=(f"{n} world users over weeks {first}-{first + n_weeks - 1} from {self.origin}; {notes}",),
        )
        return EventLog(
            events=events, report=report, purchase_event="purchase", declared_event_types=counts.event_types
        )


@dataclass(frozen=True)
class _Week:
    """The deterministic part of one week: delivery, fatigue factor, revival odds, coupon, rate."""

    present: np.ndarray
    born_now: np.ndarray
    delivered: np.ndarray
    revival: np.ndarray
    """Probability that the delivered contact revives the user (applies to dormant users)."""
    coupon_left: np.ndarray
    """Coupon weeks left after this week's delivery (valid this week where > 0)."""
    rate: np.ndarray
    """Purchase rate ``R`` if active."""


class GroundTruthWorld:
    """Users of a :class:`WorldConfig`, stepped one week at a time (see the module docstring).

    **Actions**: (n,) int indices into :attr:`actions` (:data:`INTERVENTIONS`). **Rewards**:
    :attr:`WorldStep.net` per user and week. The world has no end; users born later than the weeks
    played simply never appear.
    """

    actions: tuple[str, ...] = INTERVENTIONS

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = WorldConfig() if config is None else config
        self.users = _draw_users(self.config)
        self.user_ids = self.users["user_id"].to_numpy()
        self.keys = user_keys(self.user_ids)
        self.streams = RandomStreams(self.config.seed)
        self._birth = self.users["birth_period"].to_numpy()
        self._is_new = self.users["is_new"].to_numpy()
        self._rate = self.users["base_rate"].to_numpy()
        self._tau = self.users["decay_weeks"].to_numpy()
        self._dropout = self.users["dropout"].to_numpy()
        self._spend_level = self.users["spend_level"].to_numpy()
        self._cost = self.config.per_action("cost")
        self._fatigue = self.config.per_action("fatigue")
        self._revival = self.config.per_action("revival")
        self._season_peak = (7 * (self.config.season_peak_week - 1) + 3) / _DAYS_PER_YEAR

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def with_luck(self, seed: int) -> GroundTruthWorld:
        """The same world (its users and their parameters) whose weeks draw from ``seed``'s streams:
        another draw of the same weeks, for repeated experiments."""
        other = copy.copy(self)
        other.streams = RandomStreams(seed)
        return other

    def start(self) -> WorldState:
        """The state at the start of week 0."""
        n = self.n_users
        users = self.users
        return WorldState(
            period=0,
            user_ids=self.user_ids,
            last_purchase=users["last_purchase"].to_numpy().copy(),
            dormant=users["dormant"].to_numpy().copy(),
            opted_out=np.zeros(n, dtype=bool),
            fatigue=np.zeros(n),
            coupon_left=np.zeros(n, dtype=np.int64),
        )

    def season(self, period: int) -> float:
        """The season's multiplier ``S(t)`` of the rate in week ``period``."""
        thursday = dt.date.fromisoformat(self.config.start) + dt.timedelta(weeks=period, days=3)
        year = (thursday.timetuple().tm_yday - 1) / _DAYS_PER_YEAR
        return 1.0 + self.config.season_amplitude * math.cos(2 * math.pi * (year - self._season_peak))

    def step(self, state: WorldState, actions: np.ndarray) -> WorldStep:
        """Play week ``state.period`` under ``actions`` ((n,) action indices); advances ``state`` in place."""
        return self._play(state, actions)

    def expected_purchase_probability(self, state: WorldState, actions: np.ndarray) -> np.ndarray:
        """(n,) probability of buying in week ``state.period`` under ``actions``; ``state`` is unchanged."""
        week = self._week(state, actions)
        active = np.where(state.dormant, week.revival, 1.0)
        p = np.where(week.present, active * -np.expm1(-week.rate), 0.0)
        return np.where(week.born_now, 1.0, p)

    def run(self, state: WorldState, n_weeks: int, choose: Callable[[WorldState], np.ndarray]) -> np.ndarray:
        """(n,) net value per user summed over ``n_weeks`` weeks in which ``choose(state)`` picks the
        actions; advances ``state`` in place."""
        total = np.zeros(self.n_users)
        for _ in range(n_weeks):
            total += self.step(state, choose(state)).net
        return total

    def write_log(
        self, state: WorldState, n_weeks: int, contact_rates: dict[str, float] | float, seed: int
    ) -> WorldLog:
        """Play ``n_weeks`` weeks under a randomized logging policy and return them as an event log.

        Every contactable user-week (present, past the birth week, not opted out, no coupon still
        valid for a coupon) receives kind ``k`` with probability ``contact_rates[k]`` (a float is
        split evenly over the kinds), drawn from ``np.random.default_rng(seed)`` independently of
        everything else; the contact rows carry the arm ``random``. Advances ``state`` in place.
        """
        rates = _contact_rates(contact_rates)
        if not isinstance(n_weeks, int) or n_weeks < 1:
            raise ValueError(f"n_weeks must be an integer >= 1, got {n_weeks!r}")
        rng = np.random.default_rng(seed)
        n, first = self.n_users, state.period
        recorder = EventRecorder(self, ARM)
        contactable = np.zeros((n, n_weeks), dtype=bool)
        effect_sum, treated, base_sum = np.zeros(len(CONTACTS)), np.zeros(len(CONTACTS), np.int64), 0.0
        none = np.zeros(n, dtype=np.int64)
        for w in range(n_weeks):
            draw = np.searchsorted(np.cumsum(rates), rng.random(n), side="right") + 1
            chosen = np.where(draw <= len(CONTACTS), draw, 0)
            week = self._week(state, chosen)
            contactable[:, w] = week.present & ~week.born_now & ~state.opted_out
            actions = week.delivered
            sent = actions > 0
            p_none = self.expected_purchase_probability(state, none)[sent]
            lift = self.expected_purchase_probability(state, actions)[sent] - p_none
            kind = actions[sent] - 1
            effect_sum += np.bincount(kind, weights=lift, minlength=len(CONTACTS))
            treated += np.bincount(kind, minlength=len(CONTACTS))
            base_sum += float(p_none.sum())
            recorder.add(self.step(state, actions))
        log = recorder.event_log(
            rng,
            source=f"world(seed={self.config.seed}, log_seed={seed})",
            notes="contacts randomized with probabilities "
            f"{dict(zip(CONTACTS, rates.tolist(), strict=True))}",
        )
        return WorldLog(
            log=log,
            origin=recorder.origin,
            first_period=first,
            n_weeks=n_weeks,
            true_effects={
                kind: float(effect_sum[c] / treated[c]) if treated[c] else math.nan
                for c, kind in enumerate(CONTACTS)
            },
            treated={kind: int(treated[c]) for c, kind in enumerate(CONTACTS)},
            contactable=contactable,
            base_purchase_rate=float(base_sum / treated.sum()) if treated.sum() else math.nan,
        )

    def _week(self, state: WorldState, actions: np.ndarray) -> _Week:
        """Steps 1-5 of the week (see the module docstring), without drawing or changing anything."""
        actions = np.asarray(actions)
        if actions.shape != (self.n_users,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be an ({self.n_users},) integer array, got {actions.dtype} {actions.shape}"
            )
        if len(actions) and (actions.min() < 0 or actions.max() >= len(self.actions)):
            raise ValueError(f"actions must lie in [0, {len(self.actions) - 1}]")
        config, t = self.config, state.period
        present = self._birth <= t
        born_now = self._is_new & (self._birth == t)
        refused = ~present | born_now | state.opted_out | ((actions == _COUPON) & (state.coupon_left > 0))
        delivered = np.where(refused, 0, actions).astype(np.int64)
        strength = config.contact_strength * np.exp(-state.fatigue / config.fatigue_scale)
        coupon_left = np.where(delivered == _COUPON, config.coupon_validity, state.coupon_left)
        since = np.maximum(t - state.last_purchase, 0)  # 0 in the birth week and before it
        boost = strength * (
            config.push_boost * np.exp(-(since - 1) / config.push_recency_weeks) * (delivered == _PUSH)
            + config.coupon_boost * (coupon_left > 0)
            + config.care_boost * (delivered == _CARE)
        )
        decay = config.rate_floor + (1 - config.rate_floor) * np.exp(-since / self._tau)
        decay *= np.exp(-config.fatigue_annoyance * np.maximum(state.fatigue - config.fatigue_tolerance, 0))
        return _Week(
            present=present,
            born_now=born_now,
            delivered=delivered,
            revival=np.minimum(strength * self._revival[delivered], 1.0),
            coupon_left=coupon_left,
            rate=self._rate * decay * self.season(t) * (1 + boost),
        )

    def _play(self, state: WorldState, actions: np.ndarray) -> WorldStep:
        """Steps 1-9 of week ``state.period``."""
        config, t = self.config, state.period
        week = self._week(state, actions)
        u = self.streams.uniforms(self.keys, t, _N_SLOTS)
        present, delivered = week.present, week.delivered
        revived = state.dormant & (u[:, _REVIVE] < week.revival)
        active = present & ~week.born_now & (~state.dormant | revived)
        buys = week.born_now | (active & (u[:, _BUY] < -np.expm1(-week.rate)))
        extra = poisson_from_uniform(u[:, _EXTRA], np.full(self.n_users, config.extra_purchases_mean))
        purchases = np.where(buys, 1 + np.minimum(extra, MAX_PURCHASES - 1), 0)
        shopping = active | week.born_now
        view_mean = np.where(
            present, config.views_per_purchase * week.rate * shopping + config.browse_views, 0.0
        )
        views = poisson_from_uniform(u[:, _VIEWS], view_mean)
        carts = binomial_from_uniform(u[:, _CARTS], views, config.cart_per_view) + purchases
        favs = binomial_from_uniform(u[:, _FAVS], views, config.fav_per_view)
        bought = np.arange(MAX_PURCHASES) < purchases[:, None]
        purchase_spend = np.zeros((self.n_users, MAX_PURCHASES))
        purchase_spend[bought] = np.exp(
            np.broadcast_to(self._spend_level[:, None], bought.shape)[bought]
            + config.spend_log_sigma * ndtri(u[:, _SPEND:_FAVS][bought])
        )
        spend = purchase_spend.sum(axis=1)
        valid = week.coupon_left > 0

        contacted = delivered > 0
        state.fatigue += self._fatigue[delivered]
        opt_out = np.minimum(config.opt_out + config.opt_out_per_fatigue * state.fatigue, 1.0)
        newly_opted_out = contacted & (u[:, _OPT_OUT] < opt_out)
        state.opted_out |= newly_opted_out
        drops = buys & ~week.born_now & (u[:, _DROPOUT] < self._dropout)
        state.dormant = (state.dormant & ~revived) | drops
        state.last_purchase = np.where(buys, t, state.last_purchase)
        state.fatigue *= 0.5 ** (1.0 / config.fatigue_half_life)
        state.coupon_left = np.maximum(week.coupon_left - 1, 0)
        state.period = t + 1
        return WorldStep(
            period=t,
            present=present,
            views=views,
            carts=carts,
            favs=favs,
            purchases=purchases,
            purchase_spend=purchase_spend,
            delivered=delivered,
            opted_out=newly_opted_out,
            margin=config.margin * spend,
            discount=config.coupon_discount * spend * valid,
            contact_cost=self._cost[delivered],
        )


def poisson_from_uniform(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Poisson(``mean``) draws by exact inversion of the CDF at ``u`` (int64; means up to 700)."""
    if len(mean) and mean.max() > 700:
        raise ValueError(f"Poisson mean {mean.max()} too large for inversion (allowed: <= 700)")
    return _invert(u, np.exp(-mean), lambda idx, j: mean[idx] / (j + 1))


def binomial_from_uniform(u: np.ndarray, trials: np.ndarray, p: float) -> np.ndarray:
    """Binomial(``trials``, ``p``) draws by exact inversion of the CDF at ``u`` (int64; ``p < 1``)."""
    odds = p / (1 - p)
    return _invert(u, (1 - p) ** trials.astype(np.float64), lambda idx, j: (trials[idx] - j) / (j + 1) * odds)


def _invert(u: np.ndarray, pmf_0: np.ndarray, ratio: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """The smallest ``k`` with ``CDF(k) >= u`` for a count distribution given by ``P(0)`` and
    ``P(j + 1) / P(j) = ratio(users, j)``; one vector operation per count value, over the users whose
    draw is still above the running CDF."""
    k = np.zeros(len(u), dtype=np.int64)
    cdf = pmf_0.copy()
    idx = np.flatnonzero(u > cdf)
    pmf, cdf, target = pmf_0[idx], cdf[idx], u[idx]
    j = 0
    while len(idx):
        k[idx] += 1
        pmf = pmf * ratio(idx, j)
        cdf = cdf + pmf
        keep = (target > cdf) & (pmf > 0)
        idx, pmf, cdf, target = idx[keep], pmf[keep], cdf[keep], target[keep]
        j += 1
    return k


def _contact_rates(contact_rates: dict[str, float] | float) -> np.ndarray:
    """(C,) contact probabilities per kind from a dict (missing kinds 0) or one total split evenly."""
    if isinstance(contact_rates, dict):
        unknown = set(contact_rates) - set(CONTACTS)
        if unknown:
            raise ValueError(f"unknown contact kinds {sorted(unknown)} (allowed: {list(CONTACTS)})")
        rates = np.array([float(contact_rates.get(kind, 0.0)) for kind in CONTACTS])
    else:
        rates = np.full(len(CONTACTS), float(contact_rates) / len(CONTACTS))
    if not (np.isfinite(rates).all() and (rates >= 0).all() and rates.sum() <= 1 + 1e-12):
        raise ValueError(f"contact rates must be >= 0 and sum to at most 1, got {rates.tolist()}")
    return rates


def _draw_users(config: WorldConfig) -> pd.DataFrame:
    """The users' fixed parameters and week-0 state, from ``np.random.default_rng(config.seed)``."""
    rng = np.random.default_rng(config.seed)
    n = config.n_users
    width = len(str(n - 1))
    is_new = np.zeros(n, dtype=bool)
    is_new[rng.choice(n, size=round(config.share_new * n), replace=False)] = True
    birth = np.where(is_new, rng.integers(0, config.birth_weeks, size=n), 0)
    base_rate = rng.gamma(config.rate_shape, config.rate_mean / config.rate_shape, size=n)
    decay_weeks = rng.gamma(
        config.decay_weeks_shape, config.decay_weeks_mean / config.decay_weeks_shape, size=n
    )
    dropout = rng.beta(config.dropout_a, config.dropout_b, size=n)
    spend_level = rng.normal(config.spend_log_mean, config.spend_level_sd, size=n)
    recency = rng.integers(1, config.initial_recency_weeks + 1, size=n)
    dormant = ~is_new & (rng.random(n) < dropout)
    return pd.DataFrame(
        {
            "user_id": pd.Series([f"u{i:0{width}d}" for i in range(n)], dtype="str"),
            "is_new": is_new,
            "birth_period": birth.astype(np.int64),
            "base_rate": base_rate,
            "decay_weeks": decay_weeks,
            "dropout": dropout,
            "spend_level": spend_level,
            "last_purchase": np.where(is_new, birth, -recency).astype(np.int64),
            "dormant": dormant,
        }
    )
