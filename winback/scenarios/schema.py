"""The sections of a scenario file as validated, frozen dataclasses, and the rules their values obey.

Every scalar of a scenario file is checked against a :class:`Rule` (its type and allowed range) under
its dotted key, so a message names the key and what it may be. The economic, response and fatigue
sections map onto the simulator's own configs (:class:`~winback.simulator.response.ContactResponse`,
:class:`~winback.simulator.response.ResponseConfig`, :class:`~winback.simulator.rewards.RewardConfig`),
whose docstrings document their fields; the other sections are the dataclasses below.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from winback.data.io import file_format
from winback.data.mapping import load_mapping
from winback.data.shards import is_sharded_panel
from winback.errors import ConfigError, DataError
from winback.simulator.response import default_contacts

INT_MAX = 2**63 - 1
"""Largest integer a scenario may hold (integers end up in int64 arrays)."""


@dataclass(frozen=True)
class Rule:
    """What a scalar must be: a string (optionally one of ``choices``), or an integer or a finite
    number in the range from ``low`` to ``high`` (ends excluded when ``open_low`` / ``open_high``)."""

    kind: type
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()

    def check(self, key: str, value: Any) -> Any:
        """``value`` (an integer given for a number as a float), or a ConfigError naming ``key``."""
        if not self._accepts(value):
            raise ConfigError(f"{key} = {shown(value)} (allowed: {self.allowed})")
        return float(value) if self.kind is float else value

    @property
    def allowed(self) -> str:
        if self.kind is str:
            return " or ".join(map(repr, self.choices)) if self.choices else "a string"
        if self.kind is int:
            high = "2^63 - 1" if self.high == math.inf else f"{self.high:g}"
            return f"an integer in [{self.low:g}, {high}]"
        if self.low == -math.inf and self.high == math.inf:
            return "a finite number"
        if self.high == math.inf:
            return f"a number {'>' if self.open_low else '>='} {self.low:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"

    def _accepts(self, value: Any) -> bool:
        if self.kind is str:
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int:
            return isinstance(value, int) and self.low <= value <= min(self.high, INT_MAX)
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range
            return False
        above = self.low < number if self.open_low else self.low <= number
        below = number < self.high if self.open_high else number <= self.high
        return math.isfinite(number) and above and below


def shown(value: Any) -> str:
    """``repr(value)`` for a message, cut to 80 characters."""
    try:
        text = repr(value)
    except ValueError:  # holds an integer of more than 4300 digits
        return "<a value too long to show>"
    return text if len(text) <= 80 else text[:77] + "..."


def check_fields(config: Any, rules: dict[str, Rule], section: str) -> None:
    """Check the fields of ``config`` named in ``rules``; messages name ``section.field``."""
    for name, rule in rules.items():
        rule.check(f"{section}.{name}" if section else name, getattr(config, name))


SCENARIO_RULES: dict[str, Rule] = {
    "name": Rule(str),
    "description": Rule(str),
    "horizon": Rule(int, 1),
    "min_contact_gap": Rule(int, 0),
    "eval_share": Rule(float, 0, 1, open_low=True, open_high=True),
    "validation_share": Rule(float, 0, 1, open_low=True, open_high=True),
}
"""Top-level keys of a scenario file: the scalar fields of ``Scenario``."""
CONTACT_RULES: dict[str, Rule] = {
    "lift_new": Rule(float),
    "lift_established": Rule(float),
    "half_life": Rule(float, 0),
    "cost": Rule(float, 0),
    "fatigue": Rule(float, 0),
    "opt_out": Rule(float, 0, 1),
    "discount": Rule(float, 0, 1),
    "validity": Rule(int, 0),
}
"""Keys of a ``[contacts.<kind>]`` table: the fields of ``ContactResponse``."""
FATIGUE_KEYS: dict[str, str] = {
    "half_life": "fatigue_half_life",
    "scale": "fatigue_scale",
    "opt_out_per_fatigue": "opt_out_per_fatigue",
    "annoyance": "fatigue_annoyance",
    "tolerance": "fatigue_tolerance",
}
"""Keys of ``[fatigue]`` and the ``ResponseConfig`` fields they set."""
FATIGUE_RULES: dict[str, Rule] = {
    "half_life": Rule(float, 0, open_low=True),
    "scale": Rule(float, 0, open_low=True),
    "opt_out_per_fatigue": Rule(float, 0, 1),
    "annoyance": Rule(float, 0),
    "tolerance": Rule(float, 0),
}
ECONOMICS_RULES: dict[str, Rule] = {"margin": Rule(float, 0, 1)}
"""Keys of ``[economics]``: the fields of ``RewardConfig``."""

SOURCES: dict[str, int] = {"cdnow": 23_570, "cdnow-sample": 2_357}
"""Built-in data a population can come from, with their numbers of users (every CDNOW customer first
bought in January-March 1997, so all of them are in the population at week 39)."""
DELAY_RULE = Rule(int, 0)
"""Values of ``[operations.delivery_delay]``."""
PACKAGED = "packaged"
"""``[model] artifact`` value naming the packaged decay model (``winback/assets/cdnow-lstm``)."""


@dataclass(frozen=True)
class PopulationConfig:
    """``[population]``: the users a scenario starts with, from built-in data (``source``) or from an
    event log (``log``, with ``mapping`` and ``until``), never both.

    Users of a built-in source are warm-started at the end of CDNOW's calibration (week 39). Users of
    a log are warm-started at ``until``: the log is paneled on the decay model's grid (its period,
    event types and origin), so the model must have been fitted on the same kind of log
    (:func:`winback.scenarios.population.check_population`, run when a scenario is loaded).
    """

    RULES: ClassVar[dict[str, Rule]] = {
        "source": Rule(str, choices=tuple(SOURCES)),
        "log": Rule(str),
        "mapping": Rule(str),
        "until": Rule(str),
        "size": Rule(int, 0),
        "new_user_share": Rule(float, 0, 1),
        "seed": Rule(int, 0),
    }
    LOG_KEYS: ClassVar[tuple[str, ...]] = ("log", "mapping", "until")
    """The keys of a population taken from a log (``source`` is empty then)."""

    source: str = "cdnow"
    """Built-in data the users come from: ``cdnow`` (23,570 users) or ``cdnow-sample`` (2,357); empty
    when ``log`` is given."""
    log: str = ""
    """An event-log file (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``), or its panel in user shards
    (a directory written by ``winback data panel``, on the decay model's grid: read a shard at a
    time), the users come from (in a scenario file, relative to the file's folder; empty: ``source``)."""
    mapping: str = ""
    """How the log's columns map onto the canonical schema: a preset name or a mapping TOML file (in a
    scenario file, relative to the file's folder; :func:`winback.data.mapping.load_mapping`); empty:
    the log has the canonical columns."""
    until: str = ""
    """ISO date the log's users are warm-started at: the first day of a period on the decay model's
    grid, at most the end of the log's last complete period (empty: that end, the start of the period
    holding the day after the log's last event)."""
    size: int = 0
    """Users in the population (0: every user of the source, or every user of the log born before
    ``until``; otherwise a sample drawn by a generator seeded with ``seed``, the same in every run)."""
    new_user_share: float = 0.0
    """Share of the population replaced by brand-new users, right after their birth period
    (:func:`winback.simulator.population.new_users`, seeded with ``seed``). Their births are
    resampled from the source's users (for a log: those born before ``until``), at the periods they
    were born in: for CDNOW, the calendar of early 1997 (the packaged model has no calendar inputs,
    so only their age matters)."""
    seed: int = 0
    """Seed of the sample, of which users are replaced and of the new users."""

    def __post_init__(self) -> None:
        if self.source and self.log:
            raise ConfigError(
                f"population.source = {self.source!r} and population.log = {self.log!r}: give one of them "
                "(source: built-in data; log: an event-log file)"
            )
        rules = {key: rule for key, rule in self.RULES.items() if not (key == "source" and self.log)}
        check_fields(self, rules, "population")
        if self.log:
            self._check_log()
            return
        if given := [key for key in self.LOG_KEYS if getattr(self, key)]:
            raise ConfigError(
                f"population.{given[0]} = {getattr(self, given[0])!r}: only with population.log "
                f"(this population's users come from population.source = {self.source!r})"
            )
        if self.size > SOURCES[self.source]:
            raise ConfigError(
                f"population.size = {self.size} (allowed: 0 for every user, or up to the "
                f"{SOURCES[self.source]} users of {self.source})"
            )

    def _check_log(self) -> None:
        """The log is a file of a known type or a panel in shards, the mapping loads and ``until`` is
        a date."""
        if is_sharded_panel(self.log):
            self._check_sharded()
        else:
            self._check_log_file()
        if self.until:
            try:
                dt.date.fromisoformat(self.until)
            except ValueError as err:
                raise ConfigError(
                    f"population.until = {self.until!r} (allowed: an ISO date, YYYY-MM-DD)"
                ) from err

    def _check_sharded(self) -> None:
        """A panel in shards was mapped when written, and is used whole: its users are read a shard
        at a time, and a sample or new users would draw from all of them at once."""
        for key in ("mapping", "size", "new_user_share"):
            if getattr(self, key):
                raise ConfigError(
                    f"population.{key} = {getattr(self, key)!r}: not with a panel in shards "
                    f"(population.log = {self.log!r}, a directory written by `winback data panel`), "
                    "whose columns were mapped when it was written and whose users are all used"
                )

    def _check_log_file(self) -> None:
        try:
            file_format(self.log)
        except DataError as err:
            raise ConfigError(f"population.log = {self.log!r}: {err}") from err
        if not _is_file(Path(self.log)):
            raise ConfigError(
                f"population.log = {self.log!r} (allowed: an existing event-log file, or a panel "
                "directory written by `winback data panel`)"
            )
        if self.mapping:
            try:
                load_mapping(self.mapping)
            except DataError as err:
                raise ConfigError(f"population.mapping = {self.mapping!r}: {err}") from err


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the decay model users live by."""

    RULES: ClassVar[dict[str, Rule]] = {"artifact": Rule(str)}

    artifact: str = PACKAGED
    """``packaged`` (the CDNOW LSTM shipped in ``winback/assets/cdnow-lstm``) or the directory of a
    decay-model artifact saved by ``winback decay fit`` (in a file, relative to the file's folder)."""

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "model")
        if self.artifact != PACKAGED and not _is_file(Path(self.artifact) / "model.json"):
            raise ConfigError(
                f"model.artifact = {self.artifact!r} (allowed: {PACKAGED!r} or a decay-model artifact "
                "directory, with a model.json)"
            )


@dataclass(frozen=True)
class DecayConfig:
    """``[decay]``: interest that decays faster than the decay model learned (a stress test).

    Every period since a user's last purchase beyond the first (up to 52) multiplies their odds of
    buying by ``lapse_odds_factor`` on top of the model's forecast; a purchase resets it. Policies
    still observe the model's interest, as a platform's model would not know the world changed.
    """

    RULES: ClassVar[dict[str, Rule]] = {"lapse_odds_factor": Rule(float, 0, 1, open_low=True)}

    lapse_odds_factor: float = 1.0
    """Factor on the odds of buying per period without a purchase (0.95: 5% lower odds for every week
    since the last purchase; 1: the learned decay alone)."""

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "decay")


@dataclass(frozen=True)
class Operations:
    """``[operations]``: limits of the team that delivers contacts (the what-if engine,
    :mod:`winback.scenarios.operations`). The defaults are no limits and no delays."""

    RULES: ClassVar[dict[str, Rule]] = {
        "coupon_budget_per_period": Rule(int, 0),
        "care_capacity": Rule(int, 0),
        "care_service_time": Rule(float, 0, open_low=True),
        "care_deadline": Rule(int, 0),
    }

    coupon_budget_per_period: int = 0
    """Coupons that may be sent per period (0: unlimited)."""
    care_capacity: int = 0
    """Care agents writing care messages (0: unlimited)."""
    care_service_time: float = 0.01
    """Periods of one agent's time per care message (0.01 of a week: about 24 minutes of a 40-hour week)."""
    care_deadline: int = 0
    """Periods a care message may wait for an agent after the period it is sent in before it is
    dropped (0: written in the period it is sent, or dropped)."""
    delivery_delay: dict[str, int] = field(default_factory=lambda: dict.fromkeys(default_contacts(), 0))
    """Periods between sending a contact of each kind and its delivery (0: the period it is sent; a
    kind left out: 0)."""

    @property
    def shared(self) -> bool:
        """Whether users share a coupon budget or a care team."""
        return bool(self.coupon_budget_per_period or self.care_capacity)

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "operations")
        for kind, delay in self.delivery_delay.items():
            DELAY_RULE.check(f"operations.delivery_delay.{kind}", delay)


@dataclass(frozen=True)
class DemandShock:
    """One ``[[shocks]]`` table: a demand shock (say a holiday peak) multiplying the odds of buying.

    The simulator adds ``log(multiplier)`` to every user's log-odds of buying in those periods
    (:attr:`Scenario.demand`), in environments and benchmarks alike. Overlapping shocks
    multiply. ``start < end <= horizon`` is checked by the scenario.
    """

    RULES: ClassVar[dict[str, Rule]] = {
        "start": Rule(int, 0),
        "end": Rule(int, 1),
        "multiplier": Rule(float, 0, open_low=True),
    }

    start: int
    """First period of the horizon the shock applies to (0: the scenario's first period)."""
    end: int
    """Period the shock ends before (exclusive)."""
    multiplier: float
    """Factor on the odds of buying in periods ``[start, end)`` (1.5: the odds rise by half)."""

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "shock")


@dataclass(frozen=True)
class Campaign:
    """One ``[[campaigns]]`` table: a scheduled campaign (say a holiday newsletter) requesting a
    contact of ``kind`` for every user who can receive it in ``period``.

    It goes through operations like a policy's requests (budget, care team, delays); a user the
    policy contacts in that period keeps the policy's contact. ``period < horizon`` and ``kind`` are
    checked by the scenario.
    """

    RULES: ClassVar[dict[str, Rule]] = {"period": Rule(int, 0), "kind": Rule(str)}

    period: int
    """Period of the horizon the campaign goes out in (0: the scenario's first period)."""
    kind: str
    """Contact kind sent."""

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "campaign")


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for paths the system refuses (too long, NUL bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
