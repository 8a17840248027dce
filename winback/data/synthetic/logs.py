"""Synthetic event logs with known ground truth: interest that decays, purchases that rekindle it,
and randomized contacts whose true effects are known exactly.

Ground truth (one step per week, every user in parallel, all draws from one
``np.random.default_rng(seed)``):

- **Users.** A share ``share_new`` of users is *new*: born in a week drawn uniformly from the
  log's weeks, with interest ``new_user_interest`` and a purchase in the birth week (probability 1).
  The others are *established*: active from week 0 with interest ``I0 ~ Beta`` (mean
  ``initial_interest_mean``). Per user: decay rate ``k ~ Gamma`` (per week), purchase propensity
  ``q ~ Beta`` (the weekly purchase probability at full interest) and view rate ``r ~ Gamma``.
- **Contacts.** In every week in which a user can be contacted (from week 0 for established users,
  from the week after birth for new ones), the user receives with probability ``treatment_prob``
  one contact drawn uniformly from :data:`~winback.data.schema.CONTACTS`, independently of
  everything else: a randomized A/B log whose ``arm`` column reads ``random``.
- **Purchase.** ``p_buy = sigmoid(logit(q * I) + beta[contact])``, ``beta[none] = 0``; so without a
  contact ``p_buy = q * I``. A buying week holds ``1 + Poisson(extra_purchases_mean)`` purchases,
  each with spend ``LogNormal(spend_log_mean, spend_log_sigma)`` and quantity 1. A contact acts
  only on the purchase probability of the week it is received in; its later effects come only
  through the rekindling of interest by the purchases it causes.
- **Browsing.** ``views ~ Poisson(r * (view_floor + I))``; ``carts ~ Binomial(views,
  cart_per_view * I)`` plus one cart per purchase.
- **Interest update** at the end of the week: ``I <- I * exp(-k)``, then after a buying week
  ``I <- I + rekindle * (1 - I)``. Users with ``q * rekindle`` below about ``k`` drift to zero
  interest (they lapse); the others hover around ``1 - k / (q * rekindle)``.

Timestamps: each event falls uniformly within its week (day and time of day, to the second); a
contact row (empty ``event_type``) sits at 00:00:00 on the Monday starting its week, before that
week's events.

Because ``beta`` is a logit shift, a contact moves the purchase probability most for users with
high interest, i.e. recent buyers, as observed in e-mail tests (in Hillstrom's MineThatData test the
e-mails' effects were larger for recent buyers than for lapsed ones).
:attr:`SyntheticLog.true_effects` holds the exact average effect on the purchase probability of
the contacted week over the user-weeks that received each contact.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from winback.data.schema import CONTACTS, INTERVENTIONS, EventLog, LoadReport
from winback.errors import ConfigError

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")
"""Event types of a synthetic log in funnel order."""
ARM = "random"
"""The ``arm`` label of contact rows: every contact of a synthetic log is randomized."""
WEEK_SECONDS = 7 * 24 * 3600
_P_MIN = 1e-12


_UNIT = (0.0, 1.0, True, "[0, 1]")
_OPEN_UNIT = (0.0, 1.0, False, "(0, 1)")
_POSITIVE = (0.0, math.inf, False, "> 0")
_NON_NEGATIVE = (0.0, math.inf, True, ">= 0")
_LOGIT = (-5.0, 5.0, True, "[-5, 5]")
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "share_new": _UNIT,
    "new_user_interest": _OPEN_UNIT,
    "initial_interest_mean": _OPEN_UNIT,
    "initial_interest_concentration": _POSITIVE,
    "decay_rate_mean": _POSITIVE,
    "decay_rate_shape": _POSITIVE,
    "propensity_mean": _OPEN_UNIT,
    "propensity_concentration": _POSITIVE,
    "view_rate_mean": _POSITIVE,
    "view_rate_shape": _POSITIVE,
    "view_floor": _NON_NEGATIVE,
    "cart_per_view": _UNIT,
    "rekindle": _UNIT,
    "extra_purchases_mean": _NON_NEGATIVE,
    "spend_log_mean": (-math.inf, math.inf, True, "a finite number"),
    "spend_log_sigma": _NON_NEGATIVE,
    "treatment_prob": _UNIT,
    "push_new_items_logit": _LOGIT,
    "coupon_logit": _LOGIT,
    "care_message_logit": _LOGIT,
}
"""Allowed range of each float field: (low, high, bounds included, description)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """A scenario for :func:`generate_synthetic_log`; every value is checked on construction.

    Defaults give a CDNOW-like store (78 weeks, spend per purchase as in CDNOW, a weekly purchase
    rate of established users of a few percent that declines over the log) with contact effects
    sized from the MineThatData e-mail test (see the effect fields).
    """

    n_users: int = 10_000
    """Number of users (>= 1)."""
    n_periods: int = 78
    """Length of the log in weeks (>= 2); 78 is the CDNOW window (39 calibration + 39 holdout)."""
    start: str = "2021-01-04"
    """ISO date of the first day of week 0; must be a Monday."""
    share_new: float = 0.3
    """Share of users born during the log, in [0, 1]; the rest are established at week 0."""
    new_user_interest: float = 0.9
    """Interest of a new user at birth, in (0, 1)."""
    initial_interest_mean: float = 0.5
    """Mean of the Beta-distributed interest of established users at week 0, in (0, 1): customers who
    bought within the last months, like the MineThatData test population."""
    initial_interest_concentration: float = 4.0
    """Concentration (a + b) of that Beta distribution (> 0); 4 spreads users over the whole range."""
    decay_rate_mean: float = 0.08
    """Mean weekly interest decay rate k (> 0): a half-life of ln 2 / 0.08 = 9 weeks without purchases.
    With the other defaults the weekly purchase rate of uncontacted established users falls by about
    40% over the 78 weeks (6.2% to 3.7%), as CDNOW's does (2.9% in weeks 13-25, 1.7% in weeks 65-77)."""
    decay_rate_shape: float = 2.0
    """Gamma shape of k across users (> 0); 2 gives a right-skewed spread (a few fast forgetters)."""
    propensity_mean: float = 0.15
    """Mean of the Beta-distributed weekly purchase probability at full interest, in (0, 1); at the
    typical interest of 0.4-0.5 it gives about 0.06 purchases a week, close to the mean rate
    r / alpha = 0.243 / 4.414 = 0.055 of CDNOW's active customers under BG/NBD (Fader, Hardie & Lee
    2005's estimates on the 2,357-customer sample, reproduced in ``tests/test_bgnbd.py``)."""
    propensity_concentration: float = 4.0
    """Concentration (a + b) of the propensity Beta distribution (> 0)."""
    view_rate_mean: float = 3.0
    """Mean weekly views at full interest (> 0)."""
    view_rate_shape: float = 2.0
    """Gamma shape of the view rate across users (> 0)."""
    view_floor: float = 0.1
    """Interest-independent part of the view rate (>= 0): lapsed users still browse a little."""
    cart_per_view: float = 0.3
    """Probability that a view at full interest adds to cart, in [0, 1] (scaled by interest)."""
    rekindle: float = 0.2
    """Share of the lost interest a purchase restores, in [0, 1]. Low enough that most users' purchases
    do not offset the decay (q * rekindle < k), so users lapse as in CDNOW; 0 turns rekindling off."""
    extra_purchases_mean: float = 0.1
    """Mean of the Poisson number of purchases beyond the first in a buying week (>= 0)."""
    spend_log_mean: float = 3.3
    """Mean of log spend per purchase; CDNOW's is 3.31 (median about $27)."""
    spend_log_sigma: float = 0.75
    """Standard deviation of log spend per purchase (>= 0); CDNOW's is 0.74."""
    treatment_prob: float = 0.3
    """Probability that a contactable user-week receives a contact, in [0, 1]."""
    push_new_items_logit: float = 0.45
    """Logit shift of a new-items push, in [-5, 5]: the women's e-mail conversion lift in the
    MineThatData test (0.88% vs 0.57%, logit +0.44)."""
    coupon_logit: float = 0.8
    """Logit shift of a coupon, in [-5, 5]: the men's e-mail conversion lift in the MineThatData
    test (1.25% vs 0.57%, logit +0.79), the largest lift observed, for the one contact with an offer."""
    care_message_logit: float = 0.3
    """Logit shift of a care message (no offer, no products), in [-5, 5]: below both e-mail arms."""
    seed: int = 0
    """Seed of the single random generator (>= 0); the same seed gives the same log."""

    def __post_init__(self) -> None:
        _check_int(self, "n_users", 1)
        _check_int(self, "n_periods", 2)
        _check_int(self, "seed", 0)
        try:
            start = dt.date.fromisoformat(self.start)
        except (TypeError, ValueError):
            start = None
        if start is None or start.isoformat() != self.start:
            raise ConfigError(
                f"SyntheticConfig.start = {self.start!r} is not an ISO date (allowed: YYYY-MM-DD)"
            )
        if start.weekday() != 0:
            raise ConfigError(
                f"SyntheticConfig.start = {self.start!r} is a {start.strftime('%A')}; it must be a Monday"
            )
        for name, (low, high, closed, allowed) in _RANGES.items():
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not (ok and (low <= value <= high if closed else low < value < high)):
                raise ConfigError(f"SyntheticConfig.{name} = {value!r} is out of range (allowed: {allowed})")

    @property
    def logit_effects(self) -> dict[str, float]:
        """True logit shift of each contact, in :data:`CONTACTS` order."""
        return {kind: float(getattr(self, f"{kind}_logit")) for kind in CONTACTS}


@dataclass(frozen=True)
class SyntheticLog:
    """A generated event log together with the ground truth that produced it."""

    log: EventLog
    users: pd.DataFrame
    """One row per user, sorted by ``user_id``: ``user_id``, ``decay_rate`` (k per week),
    ``propensity`` (q), ``view_rate`` (r), ``birth_period`` (week of birth; 0 for established
    users), ``is_new``, ``initial_interest`` (interest at birth, or at week 0 if established)."""
    true_effects: dict[str, float]
    """Per contact: the mean over the user-weeks that received it of p_buy(contact) - p_buy(none),
    computed from the generator's probabilities (NaN for a contact that was never sent)."""
    true_logit_effects: dict[str, float]
    """Per contact: the logit shift ``beta`` of the configuration."""
    base_purchase_rate: float
    """Mean p_buy(none) over all contacted user-weeks: the baseline the effects add to."""
    config: SyntheticConfig


def generate_synthetic_log(config: SyntheticConfig | None = None) -> SyntheticLog:
    """Simulate the users of ``config`` (default :class:`SyntheticConfig`) and return their event log."""
    config = SyntheticConfig() if config is None else config
    rng = np.random.default_rng(config.seed)
    users = _draw_users(config, rng)
    activity = _simulate(config, users, rng)
    events = events_from_counts(
        config.start,
        users["user_id"].to_numpy(),
        activity.counts,
        rng,
        lambda n: rng.lognormal(config.spend_log_mean, config.spend_log_sigma, size=n),
    )
    report = LoadReport(
        source=f"synthetic(seed={config.seed})",
        rows_read=len(events),
        notes=(
            f"{config.n_users} synthetic users over {config.n_periods} weeks from {config.start}; "
            f"contacts randomized with probability {config.treatment_prob} per user-week",
        ),
    )
    log = EventLog(events=events, report=report, purchase_event="purchase", declared_event_types=EVENT_TYPES)
    treated = activity.treated_count
    true_effects = {
        kind: float(activity.effect_sum[c] / treated[c]) if treated[c] else math.nan
        for c, kind in enumerate(CONTACTS)
    }
    base = float(activity.base_sum / treated.sum()) if treated.sum() else math.nan
    return SyntheticLog(
        log=log,
        users=users,
        true_effects=true_effects,
        true_logit_effects=config.logit_effects,
        base_purchase_rate=base,
        config=config,
    )


@dataclass(frozen=True)
class WeeklyCounts:
    """Per user-week counts to expand into event rows: (n, P) arrays over weeks ``0 .. P - 1``."""

    views: np.ndarray
    carts: np.ndarray
    purchases: np.ndarray
    contact: np.ndarray
    """(n, P) int8 index into :data:`CONTACTS`, -1 for no contact."""
    favs: np.ndarray | None = None
    """Favourites saved, written as ``fav`` events; ``None``: a log of :data:`EVENT_TYPES` only."""

    @property
    def event_types(self) -> tuple[str, ...]:
        """The log's event types in funnel order, the purchase last."""
        return EVENT_TYPES if self.favs is None else (*EVENT_TYPES[:-1], "fav", EVENT_TYPES[-1])

    def per_type(self) -> tuple[np.ndarray, ...]:
        """The (n, P) counts of each of :attr:`event_types`, in order."""
        middle = () if self.favs is None else (self.favs,)
        return (self.views, self.carts, *middle, self.purchases)


@dataclass(frozen=True)
class _Activity:
    """Per user-week counts of a simulation, plus the sums behind the true effects."""

    counts: WeeklyCounts
    effect_sum: np.ndarray
    """(C,) sum of p_buy(contact) - p_buy(none) over the user-weeks that received each contact."""
    treated_count: np.ndarray
    """(C,) user-weeks that received each contact."""
    base_sum: float
    """Sum of p_buy(none) over all contacted user-weeks."""


def _check_int(config: SyntheticConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ConfigError(
            f"SyntheticConfig.{name} = {value!r} is out of range (allowed: an integer >= {minimum})"
        )


def _draw_users(config: SyntheticConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = config.n_users
    width = len(str(n - 1))
    user_ids = np.array([f"u{i:0{width}d}" for i in range(n)])
    is_new = np.zeros(n, dtype=bool)
    is_new[rng.choice(n, size=round(config.share_new * n), replace=False)] = True
    birth = np.where(is_new, rng.integers(0, config.n_periods, size=n), 0)
    a = config.initial_interest_mean * config.initial_interest_concentration
    b = (1 - config.initial_interest_mean) * config.initial_interest_concentration
    established_interest = rng.beta(a, b, size=n)
    initial_interest = np.where(is_new, config.new_user_interest, established_interest)
    decay_rate = rng.gamma(config.decay_rate_shape, config.decay_rate_mean / config.decay_rate_shape, size=n)
    a = config.propensity_mean * config.propensity_concentration
    b = (1 - config.propensity_mean) * config.propensity_concentration
    propensity = rng.beta(a, b, size=n)
    view_rate = rng.gamma(config.view_rate_shape, config.view_rate_mean / config.view_rate_shape, size=n)
    return pd.DataFrame(
        {
            "user_id": pd.Series(user_ids, dtype="str"),
            "decay_rate": decay_rate,
            "propensity": propensity,
            "view_rate": view_rate,
            "birth_period": birth.astype(np.int64),
            "is_new": is_new,
            "initial_interest": initial_interest,
        }
    )


def _simulate(config: SyntheticConfig, users: pd.DataFrame, rng: np.random.Generator) -> _Activity:
    n, n_periods, n_contacts = config.n_users, config.n_periods, len(CONTACTS)
    decay = np.exp(-users["decay_rate"].to_numpy())
    propensity = users["propensity"].to_numpy()
    view_rate = users["view_rate"].to_numpy()
    birth = users["birth_period"].to_numpy()
    is_new = users["is_new"].to_numpy()
    beta = np.array([0.0, *config.logit_effects.values()])
    interest = users["initial_interest"].to_numpy().copy()
    views = np.zeros((n, n_periods), dtype=np.int32)
    carts = np.zeros((n, n_periods), dtype=np.int32)
    purchases = np.zeros((n, n_periods), dtype=np.int32)
    contact = np.full((n, n_periods), -1, dtype=np.int8)
    effect_sum = np.zeros(n_contacts)
    treated_count = np.zeros(n_contacts, dtype=np.int64)
    base_sum = 0.0
    for t in range(n_periods):
        alive = birth <= t
        born_now = is_new & (birth == t)
        contactable = alive & ~born_now
        treated = contactable & (rng.random(n) < config.treatment_prob)
        kind = np.where(treated, rng.integers(0, n_contacts, size=n), -1)
        p_none = np.clip(propensity * interest, _P_MIN, 1 - _P_MIN)
        p_buy = 1 / (1 + np.exp(-(np.log(p_none) - np.log1p(-p_none) + beta[kind + 1])))
        p_buy = np.where(born_now, 1.0, np.where(alive, p_buy, 0.0))
        buys = rng.random(n) < p_buy
        n_buys = np.where(buys, 1 + rng.poisson(config.extra_purchases_mean, size=n), 0)
        n_views = rng.poisson(np.where(alive, view_rate * (config.view_floor + interest), 0.0))
        n_carts = rng.binomial(n_views, config.cart_per_view * interest) + n_buys
        effect_sum += np.bincount(kind[treated], weights=(p_buy - p_none)[treated], minlength=n_contacts)
        treated_count += np.bincount(kind[treated], minlength=n_contacts)
        base_sum += float(p_none[treated].sum())
        views[:, t], carts[:, t], purchases[:, t], contact[:, t] = n_views, n_carts, n_buys, kind
        decayed = interest * decay
        interest = np.where(
            alive, np.where(buys, decayed + config.rekindle * (1 - decayed), decayed), interest
        )
    return _Activity(WeeklyCounts(views, carts, purchases, contact), effect_sum, treated_count, base_sum)


def events_from_counts(
    start: str,
    user_ids: np.ndarray,
    counts: WeeklyCounts,
    rng: np.random.Generator,
    purchase_values: Callable[[int], np.ndarray],
    arm: str = ARM,
) -> pd.DataFrame:
    """Expand per user-week counts into canonical, sorted event rows (no per-event Python objects).

    ``start`` is the ISO date of the Monday of week 0 and ``user_ids`` must be sorted. ``rng`` places
    the events within their weeks; ``purchase_values(m)`` gives the spend of the ``m`` purchase rows
    in user-week order (called after the placement draws); contact rows carry ``arm``.
    """
    n_periods = counts.contact.shape[1]
    contact = counts.contact.ravel()
    cells = [np.flatnonzero(contact >= 0)]
    for weekly in counts.per_type():
        flat = weekly.ravel()
        nonzero = np.flatnonzero(flat)
        cells.append(np.repeat(nonzero, flat[nonzero]))
    cell = np.concatenate(cells)
    type_code = np.repeat(np.arange(len(cells), dtype=np.int8), [len(c) for c in cells])
    n_contact_rows, n_purchase_rows = len(cells[0]), len(cells[-1])
    # Contacts at second 0 of their week; events uniformly over the rest of it.
    offset = np.concatenate(
        [
            np.zeros(n_contact_rows, dtype=np.int64),
            rng.integers(1, WEEK_SECONDS, size=len(cell) - n_contact_rows),
        ]
    )
    value = np.zeros(len(cell))
    value[len(cell) - n_purchase_rows :] = purchase_values(n_purchase_rows)
    quantity = (type_code == len(cells) - 1).astype(np.float64)
    intervention_code = np.zeros(len(cell), dtype=np.int8)
    intervention_code[:n_contact_rows] = contact[cells[0]] + 1

    order = np.argsort(cell * WEEK_SECONDS + offset, kind="stable")
    cell, type_code, offset = cell[order], type_code[order], offset[order]
    seconds = (cell % n_periods) * WEEK_SECONDS + offset
    origin = np.datetime64(start, "ns")
    return pd.DataFrame(
        {  # the canonical column order
            "user_id": _strings(user_ids, cell // n_periods),
            "timestamp": origin + seconds.astype("timedelta64[s]").astype("timedelta64[ns]"),
            "event_type": _strings(np.array(["", *counts.event_types]), type_code),
            "value": value[order],
            "quantity": quantity[order],
            "intervention": pd.Categorical.from_codes(
                intervention_code[order], categories=list(INTERVENTIONS)
            ),
            "arm": _strings(np.array([arm, ""]), (type_code != 0).astype(np.int8)),
        }
    )


def _strings(labels: np.ndarray, codes: np.ndarray) -> pd.Series:
    """A ``str`` series of ``labels[codes]``, gathered in Arrow (several times faster than from objects)."""
    return pd.Series(pa.array(labels).take(pa.array(codes)), dtype="str")
