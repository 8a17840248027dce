"""The users a scenario starts with, built from its ``[population]`` and ``[model]`` and cached by them.

CDNOW logs no contacts, so the response parameters do not shape where users start: every scenario
with the same ``[population]`` and ``[model]`` shares one population and one split.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from winback.data.cdnow import CALIBRATION_END, load_cdnow_panel
from winback.data.panel import PeriodPanel
from winback.decay_model.artifact import load_model
from winback.decay_model.base import DecayModel
from winback.envs.defaults import default_model, default_population, default_simulator
from winback.scenarios.schema import PACKAGED, ModelConfig, PopulationConfig
from winback.simulator.core import Simulator
from winback.simulator.population import new_users, split_users, warm_start
from winback.simulator.state import SimState


@cache
def load_decay_model(config: ModelConfig) -> DecayModel:
    """The decay model of ``config`` (loaded once)."""
    return default_model() if config.artifact == PACKAGED else load_model(config.artifact)


def build_population(config: PopulationConfig, model: ModelConfig) -> SimState:
    """The population ``config`` describes: a seeded sample of ``size`` warm-started users (all when
    0), of which a seeded ``new_user_share`` is replaced by new users (appended after the others)."""
    everyone = _warm_started(config.source, model)
    if config.size == 0 and config.new_user_share == 0:
        return everyone
    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(everyone.n_users, config.size, replace=False))
    users = everyone.take(sample) if config.size else everyone
    n_new = round(config.new_user_share * users.n_users)
    if n_new == 0:
        return users
    kept = users.take(np.sort(rng.permutation(users.n_users)[n_new:]))
    born = new_users(_simulator(model), _panel(config.source), n_new, seed=config.seed)
    return SimState.concatenate([kept, born])


@cache
def cached_population(config: PopulationConfig, model: ModelConfig) -> SimState:
    """:func:`build_population`, built once (shared: copy before stepping)."""
    return build_population(config, model)


@cache
def split_population(
    config: PopulationConfig, model: ModelConfig, eval_share: float, validation_share: float
) -> tuple[SimState, SimState, SimState]:
    """(train, validation, evaluation) users: hash-based splits of the population
    (:func:`winback.simulator.population.split_users`), the same in every run."""
    rest, evaluation = split_users(cached_population(config, model), eval_share)
    train, validation = split_users(rest, validation_share, salt=1)
    return train, validation, evaluation


@cache
def _warm_started(source: str, model: ModelConfig) -> SimState:
    """Every user of ``source`` where they stood at the end of calibration (week 39)."""
    if source == "cdnow" and model.artifact == PACKAGED:
        return default_population()
    panel = _panel(source)
    return warm_start(_simulator(model), panel, until=panel.spec.period_of(CALIBRATION_END))


@cache
def _panel(source: str) -> PeriodPanel:
    return load_cdnow_panel(source)


@cache
def _simulator(model: ModelConfig) -> Simulator:
    """A simulator with the default response parameters, to start users with."""
    return default_simulator() if model.artifact == PACKAGED else Simulator(load_decay_model(model))
