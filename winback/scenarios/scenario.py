"""A scenario names everything a policy is trained and judged under: the population and its split,
the horizon, the frequency cap and the simulator's response and reward parameters.

Users are split three ways by hashes of their stream keys
(:func:`winback.simulator.population.split_users`), the same split in every run: evaluation users
(``eval_share``) that only benchmarks see; of the rest, validation users (``validation_share``) for
model selection during training; and training users, on which agents train and baselines are tuned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

from winback.decay_model.base import DecayModel
from winback.envs.defaults import default_model, default_population
from winback.envs.episodes import DEFAULT_HORIZON, EpisodeConfig
from winback.errors import ConfigError
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.population import split_users
from winback.simulator.state import SimState

DEFAULT_EVAL_SHARE = 0.2
"""Share of the population held out for evaluation."""
DEFAULT_VALIDATION_SHARE = 0.1
"""Share of the remaining users held out for validation during training."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    horizon: int = DEFAULT_HORIZON
    """Periods each user is followed (an episode; a benchmark run)."""
    min_contact_gap: int = 0
    """Frequency cap: periods that must pass after any contact before the next (0: none)."""
    eval_share: float = DEFAULT_EVAL_SHARE
    """Share of users held out from training and used only to evaluate."""
    validation_share: float = DEFAULT_VALIDATION_SHARE
    """Share of the other users held out from training to select checkpoints on."""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    """Response priors, fatigue, costs and margin."""

    def __post_init__(self) -> None:
        EpisodeConfig(self.horizon, self.min_contact_gap)  # validates both
        for name in ("eval_share", "validation_share"):
            share = getattr(self, name)
            if not 0 < share < 1 or math.isnan(share):
                raise ConfigError(f"Scenario.{name} = {share} (allowed: (0, 1))")

    @property
    def episode(self) -> EpisodeConfig:
        return EpisodeConfig(self.horizon, self.min_contact_gap)

    def model(self) -> DecayModel:
        """The decay model users live by (the packaged CDNOW LSTM)."""
        return default_model()

    def simulator_for(self, seed: int) -> Simulator:
        """The scenario's simulator whose random streams are keyed by ``seed``."""
        return Simulator(self.model(), self.simulator, seed=seed)

    def population(self) -> SimState:
        """Every user, where they stand when the scenario starts (shared: copy before stepping)."""
        return default_population()

    def train_users(self) -> SimState:
        """The users agents train on and baselines are tuned on (shared: copy before stepping)."""
        return _split_default_population(self.eval_share, self.validation_share)[0]

    def validation_users(self) -> SimState:
        """The users training evaluates checkpoints on (shared: copy before stepping)."""
        return _split_default_population(self.eval_share, self.validation_share)[1]

    def eval_users(self) -> SimState:
        """The held-out users benchmarks run on (shared: copy before stepping)."""
        return _split_default_population(self.eval_share, self.validation_share)[2]


@cache
def _split_default_population(eval_share: float, validation_share: float) -> tuple[SimState, ...]:
    rest, evaluation = split_users(default_population(), eval_share)
    train, validation = split_users(rest, validation_share, salt=1)
    return train, validation, evaluation


BUILT_IN: dict[str, Scenario] = {
    "default": Scenario(
        name="default",
        description="CDNOW's customers warm-started at week 39, 52 weeks, the documented response priors.",
    ),
}


def load_scenario(name: str) -> Scenario:
    """A built-in scenario by name."""
    if name not in BUILT_IN:
        raise ConfigError(f"unknown scenario '{name}' (built-in: {', '.join(sorted(BUILT_IN))})")
    return BUILT_IN[name]
