"""How simulated users respond to contacts: the response priors (RecSim's response model).

The decay model says how likely a user is to buy in a period when left alone (their *interest*
``p``). A contact of kind ``k`` raises the log-odds of buying by a lift ``L_k``, so the absolute lift
``sigmoid(logit(p) + L_k) - p`` is small for users who would buy anyway (``p`` near 1) and for users
whose interest is gone (``p`` near 0), and largest in between. Every number below is a scenario
parameter; the defaults and their sources:

- **Lifts** come from Kevin Hillstrom's MineThatData e-mail test (the MineThatData E-Mail Analytics
  and Data Mining Challenge, 2008: 64,000 customers who had bought in the last 12 months, randomized
  1/3 men's e-mail, 1/3 women's e-mail, 1/3 none, outcomes over two weeks), as widely reported:
  conversion 1.25% / 0.88% / 0.57%, i.e. two-week odds ratios of 2.21 and 1.55 against no e-mail.
  A lift ``L`` in the contact week that halves in the next week (``half_life = 1``) gives a two-week
  odds ratio of about ``(e^L + e^(L/2)) / 2`` for low ``p``; ``L = 1.015`` reproduces 2.21 and
  ``L = 0.571`` reproduces 1.55. New-item pushes get the larger lift for new users and the smaller for
  established ones (new users are still exploring the catalogue); care messages the reverse, at
  half the push lift for new users. Which Hillstrom arm stands for which kind is an assumption.
- **Coupons** have no public randomized figure bundled with winback: assumed to lift like the
  stronger Hillstrom arm (1.015) for as long as they are valid (``validity = 2`` weeks, Hillstrom's
  window), with a 15% discount paid on *every* purchase while valid, including purchases the user
  would have made anyway (couponing sure buyers loses money).
- **Repeats saturate**: a contact of a kind whose lift is still in force refreshes that lift to the
  larger of the two instead of adding to it (a weekly e-mail does not multiply the odds week after
  week); lifts of different kinds add.
- **Care messages** mainly slow the decay of interest: a small lift that fades slowly
  (``half_life = 6`` weeks), so its absolute effect is largest for users whose interest is sliding
  (mid-range ``p``), and it costs little.
- **Fatigue**: every delivered contact adds fatigue (push and coupon 1, care 0.5), which halves every
  ``fatigue_half_life = 4`` weeks; lifts are multiplied by ``exp(-fatigue / fatigue_scale)`` with
  ``fatigue_scale = 3``. Assumed values: weekly pushes settle at a fatigue of about 6, where a push
  keeps ~12% of its fresh lift.
- **Wear-out** (off by default): with ``fatigue_annoyance > 0``, fatigue beyond
  ``fatigue_tolerance`` lowers the log-odds of buying itself, by ``fatigue_annoyance`` per unit: users
  contacted too often buy less than if left alone. No public figure sizes it, and logs from a
  logging policy that never over-contacts cannot show it, so it is a prior to set (the ground-truth
  world of :mod:`winback.data.synthetic.world` has one; ``benchmarks/sim_to_real.py`` measures what
  leaving it out costs).
- **Opt-out**: each delivered contact makes the user opt out of all contacts for good with
  probability ``opt_out + opt_out_per_fatigue * fatigue`` (fatigue after the contact). The base
  0.2% per contact is the order of the average e-mail unsubscribe rate that e-mail service providers
  report (Mailchimp's benchmarks put it at 0.1-0.3% per campaign); the fatigue term (0.1% per unit)
  is an assumption.
- **Costs** per delivered contact (push $0.02, coupon $0.05 before discounts, care $0.03) are
  assumptions standing for creative, delivery and support costs: set your own.

When the decay model was fitted on logs with enough contacts of a kind
(:meth:`winback.decay_model.base.DecayModel.learned_contacts`), its learned effect of that kind
replaces the prior lift (``effects = "auto"``, the default); ``"prior"`` always uses the priors and
``"learned"`` requires every kind to be learned. Costs, discounts, fatigue and opt-outs always come
from this module: event logs do not show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from winback.errors import ConfigError

NEW_USER_PERIODS = 13
"""Periods after birth during which a user counts as new (a quarter of weekly periods)."""


@dataclass(frozen=True)
class ContactResponse:
    """How users respond to one kind of contact (see the module docstring for the sources)."""

    lift_new: float
    """Log-odds lift of the purchase probability of new users in the contact period."""
    lift_established: float
    """Log-odds lift for established users."""
    half_life: float
    """Periods in which the lift halves after the contact period (0: the contact period only). For
    a coupon the fade starts when it expires."""
    cost: float
    """Cost of one delivered contact, in the currency of spend."""
    fatigue: float
    """Fatigue added per delivered contact."""
    opt_out: float
    """Probability that a delivered contact makes an unfatigued user opt out for good."""
    discount: float = 0.0
    """Share of spend paid back on every purchase while valid (coupons)."""
    validity: int = 0
    """Periods a coupon stays valid, the contact period included (0: not a coupon). The lift holds
    while valid, and a new one cannot be sent before the last one expires."""

    def __post_init__(self) -> None:
        _check_range(self, "half_life", self.half_life, 0.0, math.inf)
        _check_range(self, "cost", self.cost, 0.0, math.inf)
        _check_range(self, "fatigue", self.fatigue, 0.0, math.inf)
        _check_range(self, "opt_out", self.opt_out, 0.0, 1.0)
        _check_range(self, "discount", self.discount, 0.0, 1.0)
        _check_range(self, "validity", self.validity, 0, math.inf)

    @property
    def fade(self) -> float:
        """Factor by which the lift shrinks per period once it fades."""
        return 0.5 ** (1.0 / self.half_life) if self.half_life > 0 else 0.0


PUSH, COUPON, CARE = "push_new_items", "coupon", "care_message"
"""The built-in contact kinds."""


def default_contacts() -> dict[str, ContactResponse]:
    """The built-in contact kinds with their documented priors, in action order."""
    return {
        PUSH: ContactResponse(
            lift_new=1.015, lift_established=0.571, half_life=1.0, cost=0.02, fatigue=1.0, opt_out=0.002
        ),
        COUPON: ContactResponse(
            lift_new=1.015,
            lift_established=1.015,
            half_life=0.0,
            cost=0.05,
            fatigue=1.0,
            opt_out=0.002,
            discount=0.15,
            validity=2,
        ),
        CARE: ContactResponse(
            lift_new=0.286, lift_established=0.571, half_life=6.0, cost=0.03, fatigue=0.5, opt_out=0.002
        ),
    }


Effects = Literal["auto", "prior", "learned"]


@dataclass(frozen=True)
class ResponseConfig:
    """All response parameters of the simulator (see the module docstring)."""

    contacts: dict[str, ContactResponse] = field(default_factory=default_contacts)
    """Contact kinds in action order (action 0 is ``none``, action ``i`` the ``i``-th kind)."""
    fatigue_half_life: float = 4.0
    """Periods in which fatigue halves."""
    fatigue_scale: float = 3.0
    """Lifts are multiplied by ``exp(-fatigue / fatigue_scale)``."""
    opt_out_per_fatigue: float = 0.001
    """Added opt-out probability per unit of fatigue, per delivered contact."""
    fatigue_annoyance: float = 0.0
    """Wear-out: the log-odds of buying fall by this much per unit of fatigue above
    ``fatigue_tolerance`` (fatigue before the period's contact); 0 (the default): contacts never
    lower demand, they only lose their lift."""
    fatigue_tolerance: float = 1.0
    """Fatigue a user takes before wear-out lowers their demand."""
    new_user_periods: int = NEW_USER_PERIODS
    """A user is new for this many periods after birth (the birth period included)."""
    effects: Effects = "auto"
    """Where contact effects come from: ``auto`` (learned kinds from the decay model, priors for
    the rest), ``prior`` (always the priors) or ``learned`` (the decay model, for every kind)."""

    def __post_init__(self) -> None:
        if not self.contacts:
            raise ConfigError("ResponseConfig.contacts is empty (expected at least one contact kind)")
        if "none" in self.contacts:
            raise ConfigError("ResponseConfig.contacts: 'none' is the no-contact action, not a contact kind")
        _check_range(self, "fatigue_half_life", self.fatigue_half_life, 1e-9, math.inf)
        _check_range(self, "fatigue_scale", self.fatigue_scale, 1e-9, math.inf)
        _check_range(self, "opt_out_per_fatigue", self.opt_out_per_fatigue, 0.0, 1.0)
        _check_range(self, "fatigue_annoyance", self.fatigue_annoyance, 0.0, math.inf)
        _check_range(self, "fatigue_tolerance", self.fatigue_tolerance, 0.0, math.inf)
        _check_range(self, "new_user_periods", self.new_user_periods, 0, math.inf)
        if self.effects not in ("auto", "prior", "learned"):
            raise ConfigError(
                f"ResponseConfig.effects = {self.effects!r} (allowed: 'auto', 'prior', 'learned')"
            )

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.contacts)

    @property
    def actions(self) -> tuple[str, ...]:
        """Action names: ``none`` then the contact kinds."""
        return ("none", *self.contacts)

    def table(self, name: str) -> np.ndarray:
        """(K,) float64 array of one ``ContactResponse`` field over the kinds, in action order."""
        return np.array([getattr(c, name) for c in self.contacts.values()], dtype=np.float64)


class ResponseTables(NamedTuple):
    """The per-kind parameters of a :class:`ResponseConfig` as arrays, for batched arithmetic (a named
    tuple, so the compiled step reads it as it is)."""

    lift_new: np.ndarray
    lift_established: np.ndarray
    fade: np.ndarray
    cost: np.ndarray
    fatigue: np.ndarray
    opt_out: np.ndarray
    discount: np.ndarray
    validity: np.ndarray
    fatigue_decay: float
    fatigue_scale: float
    opt_out_per_fatigue: float

    @classmethod
    def from_config(cls, config: ResponseConfig) -> ResponseTables:
        return cls(
            lift_new=config.table("lift_new"),
            lift_established=config.table("lift_established"),
            fade=np.array([c.fade for c in config.contacts.values()]),
            cost=config.table("cost"),
            fatigue=config.table("fatigue"),
            opt_out=config.table("opt_out"),
            discount=config.table("discount"),
            validity=config.table("validity").astype(np.int64),
            fatigue_decay=0.5 ** (1.0 / config.fatigue_half_life),
            fatigue_scale=config.fatigue_scale,
            opt_out_per_fatigue=config.opt_out_per_fatigue,
        )


def contact_lift(
    tables: ResponseTables, kind: np.ndarray, is_new: np.ndarray, fatigue: np.ndarray
) -> np.ndarray:
    """Log-odds lift of a contact of ``kind`` (index per user) given segment and fatigue before it."""
    base = np.where(is_new, tables.lift_new[kind], tables.lift_established[kind])
    return base * np.exp(-fatigue / tables.fatigue_scale)


def opt_out_probability(tables: ResponseTables, kind: np.ndarray, fatigue_after: np.ndarray) -> np.ndarray:
    """Probability that a delivered contact of ``kind`` makes the user opt out, given fatigue after it."""
    return np.minimum(tables.opt_out[kind] + tables.opt_out_per_fatigue * fatigue_after, 1.0)


def _check_range(owner: object, name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{type(owner).__name__}.{name} = {value} (allowed: [{low}, {high}])")
