"""A scenario names everything a policy is trained and judged under: the population and its split,
the decay model, the horizon, the frequency cap, the simulator's response and reward parameters,
demand shocks, scheduled campaigns, and the operational limits of the what-if engine.

Scenarios are TOML files (the schema: :mod:`winback.scenarios.schema`), read with ``tomllib`` and
checked key by key; the built-in ones are ``winback/scenarios/builtin/*.toml``, and a user's file works
wherever a built-in name does (:func:`load_scenario`).

Users are split three ways by hashes of their stream keys
(:func:`winback.simulator.population.split_users`), the same split in every run: evaluation users
(``eval_share``) that only benchmarks see; of the rest, validation users (``validation_share``) for
model selection during training; and training users, on which agents train and baselines are tuned.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from pathlib import Path

from winback.data.shards import ShardedPanel
from winback.decay_model.base import DecayModel
from winback.envs.episodes import DEFAULT_HORIZON, Demand
from winback.errors import ConfigError
from winback.scenarios.files import parse
from winback.scenarios.population import (
    Split,
    cached_population,
    check_population,
    load_decay_model,
    population_shards,
    shard_parts,
    split_population,
)
from winback.scenarios.schema import (
    SCENARIO_RULES,
    Campaign,
    DecayConfig,
    DemandShock,
    ModelConfig,
    Operations,
    PopulationConfig,
    check_fields,
)
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.response import CARE
from winback.simulator.state import SimState

DEFAULT_EVAL_SHARE = 0.2
"""Share of the population held out for evaluation."""
DEFAULT_VALIDATION_SHARE = 0.1
"""Share of the remaining users held out for validation during training."""
BUILTIN_DIR = Path(str(files("winback.scenarios") / "builtin"))
"""Folder of the built-in scenario files."""


@dataclass(frozen=True)
class Scenario:
    """One scenario; the top-level keys of a scenario file are its scalar fields, the tables the rest."""

    name: str
    """Short name (in a file: the file's name without ``.toml`` unless set)."""
    description: str
    """What the scenario is about, in a sentence."""
    horizon: int = DEFAULT_HORIZON
    """Periods of the decay model (weeks for CDNOW's) each user is followed (an episode; a benchmark run)."""
    min_contact_gap: int = 0
    """Frequency cap: periods that must pass after any contact before the next (0: none)."""
    eval_share: float = DEFAULT_EVAL_SHARE
    """Share of users held out from training and used only to evaluate."""
    validation_share: float = DEFAULT_VALIDATION_SHARE
    """Share of the other users held out from training to select checkpoints on."""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    """Response priors, fatigue, costs and margin (``[contacts.<kind>]``, ``[fatigue]``, ``[economics]``)."""
    population_config: PopulationConfig = field(default_factory=PopulationConfig)
    """The users the scenario starts with (``[population]``)."""
    model_config: ModelConfig = field(default_factory=ModelConfig)
    """The decay model (``[model]``)."""
    operations: Operations = field(default_factory=Operations)
    """Coupon budget, care team and delivery delays (``[operations]``), applied wherever a policy runs
    on the scenario (:mod:`winback.scenarios.operations`); training environments price the limited
    resources instead (:class:`~winback.envs.episodes.Pricing`) and leave the delays out. Limits hold
    for the scenario's evaluation users; tuning and validation on other users scale them
    (:meth:`with_limits_for`)."""
    decay: DecayConfig = field(default_factory=DecayConfig)
    """Interest decaying faster than the decay model learned (``[decay]``), in every run."""
    shocks: tuple[DemandShock, ...] = ()
    """Demand shocks over the horizon (``[[shocks]]``), applied by the simulator in every run."""
    campaigns: tuple[Campaign, ...] = ()
    """Scheduled campaigns (``[[campaigns]]``), sent through operations wherever a policy runs on
    the scenario; training environments leave them out."""

    def __post_init__(self) -> None:
        check_fields(self, SCENARIO_RULES, "")
        for i, shock in enumerate(self.shocks):
            if shock.start >= self.horizon:
                raise ConfigError(
                    f"shocks[{i}].start = {shock.start} (allowed: before the horizon = {self.horizon})"
                )
            if not shock.start < shock.end <= self.horizon:
                raise ConfigError(
                    f"shocks[{i}].end = {shock.end} (allowed: after start = {shock.start}, "
                    f"at most the horizon = {self.horizon})"
                )
        kinds = self.simulator.response.kinds
        if self.operations.care_capacity and CARE not in kinds:
            raise ConfigError(
                f"operations.care_capacity = {self.operations.care_capacity}: the care team writes "
                f"'{CARE}' contacts, which this scenario has not (kinds: {', '.join(kinds)})"
            )
        for i, campaign in enumerate(self.campaigns):
            if campaign.period >= self.horizon:
                allowed = f"before the horizon = {self.horizon}"
                raise ConfigError(f"campaigns[{i}].period = {campaign.period} (allowed: {allowed})")
            if campaign.kind not in kinds:
                raise ConfigError(f"campaigns[{i}].kind = {campaign.kind!r} (allowed: {', '.join(kinds)})")
        for kind in self.operations.delivery_delay:
            if kind not in kinds:
                raise ConfigError(
                    f"operations.delivery_delay.{kind}: not a contact kind (kinds: {', '.join(kinds)})"
                )
        check_population(self.population_config, self.model_config)

    @cached_property
    def demand(self) -> Demand:
        """The shifts of demand the decay model does not know about: the shocks' ``log(multiplier)``
        by period of the horizon (summed where they overlap), and ``[decay]``'s lapse factor."""
        by_period = tuple(
            sum(math.log(s.multiplier) for s in self.shocks if s.start <= t < s.end)
            for t in range(self.horizon if self.shocks else 0)
        )
        return Demand(by_period, math.log(self.decay.lapse_odds_factor))

    def with_limits_for(self, users: int, stated_for: int) -> Scenario:
        """The scenario run on ``users`` users with its limits per user as they are for the
        ``stated_for`` users it states them for (its evaluation users): the coupon budget and the
        care messages the team writes a period scaled by ``users / stated_for`` (the budget rounded,
        at least 1; each message's writing time divided), so that tuning rules or selecting an
        agent on other users meets the limits its evaluation will. Unchanged without limits."""
        operations = self.operations
        if not operations.shared or users == stated_for:
            return self
        if users < 1 or stated_for < 1:
            raise ConfigError(f"limits for {users} users stated for {stated_for} (allowed: both >= 1)")
        share = users / stated_for
        budget = operations.coupon_budget_per_period
        scaled = dataclasses.replace(
            operations,
            coupon_budget_per_period=max(round(budget * share), 1) if budget else 0,
            care_service_time=operations.care_service_time / share,
        )
        return dataclasses.replace(self, operations=scaled)

    def model(self) -> DecayModel:
        """The decay model users live by (``[model]``; packaged: the CDNOW LSTM)."""
        return load_decay_model(self.model_config)

    def simulator_for(self, seed: int) -> Simulator:
        """The scenario's simulator whose random streams are keyed by ``seed``."""
        return Simulator(self.model(), self.simulator, seed=seed)

    def population(self) -> SimState:
        """Every user, where they stand when the scenario starts (shared: copy before stepping)."""
        return cached_population(self.population_config, self.model_config)

    def train_users(self, *, at_least: int = 0) -> SimState:
        """The users agents train on and baselines are tuned on (shared: copy before stepping).

        With ``at_least``, a population in shards gives only those of its first shards, as many
        shards as hold that many training users (shards are hash buckets of users: a random sample).
        """
        panel = self.population_shards()
        if panel is None or not at_least:
            return self._split()[0]
        parts, users = [], 0
        for index in range(panel.n_shards):
            parts.append(self._shard_part(index, "train"))
            users += parts[-1].n_users
            if users >= at_least:
                break
        return SimState.concatenate(parts)

    def validation_users(self) -> SimState:
        """The users training evaluates checkpoints on (shared: copy before stepping)."""
        return self._split()[1]

    def eval_users(self) -> SimState:
        """The held-out users benchmarks run on (shared: copy before stepping)."""
        return self._split()[2]

    def population_shards(self) -> ShardedPanel | None:
        """The panel in user shards the population is read from (``None``: one held in memory)."""
        return population_shards(self.population_config)

    def eval_users_in_shards(self, start: int, stop: int) -> SimState:
        """The held-out users of a population in shards that live in its shards ``[start, stop)``; over
        every shard, :meth:`eval_users`."""
        return SimState.concatenate([self._shard_part(index, "evaluation") for index in range(start, stop)])

    def _shard_part(self, index: int, part: Split) -> SimState:
        config, model = self.population_config, self.model_config
        return shard_parts(config, model, self.eval_share, self.validation_share, index, (part,))[0]

    def _split(self) -> tuple[SimState, SimState, SimState]:
        config, model = self.population_config, self.model_config
        return split_population(config, model, self.eval_share, self.validation_share)


def loads(text: str, *, source: str = "<string>", folder: str | Path = ".") -> Scenario:
    """The scenario in TOML ``text``; errors name ``source``, relative paths are resolved against ``folder``,
    and the name defaults to the stem of ``source``."""
    try:
        document = tomllib.loads(text)
    except ValueError as err:  # a TOMLDecodeError, or an integer of more than 4300 digits
        raise ConfigError(f"{source}: not valid TOML ({err})") from err
    except RecursionError as err:
        raise ConfigError(f"{source}: not valid TOML (nested too deeply)") from err
    try:
        return Scenario(**parse(document, folder=Path(folder), name=Path(source).stem))
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def read_scenario(path: str | Path) -> Scenario:
    """The scenario in a TOML file."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the scenario ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return loads(text, source=str(path), folder=Path(path).parent)


BUILT_IN: dict[str, Scenario] = {
    path.stem: read_scenario(path)
    for path in sorted(BUILTIN_DIR.glob("*.toml"), key=lambda path: (path.stem != "default", path.stem))
}
"""The built-in scenarios by name, ``default`` first."""


def load_scenario(name: str | Path) -> Scenario:
    """A built-in scenario by name, or the scenario in a ``.toml`` file."""
    if str(name) in BUILT_IN:
        return BUILT_IN[str(name)]
    if Path(name).suffix == ".toml":
        return read_scenario(name)
    raise ConfigError(
        f"unknown scenario '{name}' (built-in: {', '.join(BUILT_IN)}; or the path of a .toml file)"
    )
