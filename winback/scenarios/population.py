"""The users a scenario starts with, built from its ``[population]`` and ``[model]`` and cached by them.

Users come from built-in CDNOW data, warm-started at the end of its calibration (week 39), or from an
event log, paneled on the decay model's grid (its period, its event types in its order, its origin)
and warm-started at ``[population] until``. Either way the population and the model must share one
panel layout (:func:`check_population`, run when a scenario is made): a model reads its inputs by
position and places periods on its own calendar, so any other layout would be read as garbage.

A log's panel in user shards (a directory written by ``winback data panel``) is a population too,
read a shard at a time: each shard's users are split into training, validation and evaluation users
and each part is warm-started apart (:func:`shard_parts`), and the whole population's splits are the
shards' parts in shard order, so a benchmark can run any range of shards and get those very users.

Users start under the default response parameters (a log's contacts set their fatigue, coupon
validity and periods since each kind with them, whatever a scenario's ``[contacts]`` and ``[fatigue]``
say; CDNOW logs no contacts), so every scenario with the same ``[population]`` and ``[model]`` shares
one population and one split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from winback.checked_json import sha256_file
from winback.data import cdnow
from winback.data.io import read_event_log
from winback.data.mapping import PRESETS
from winback.data.panel import PanelSpec, PeriodPanel, build_panel
from winback.data.shards import MANIFEST, ShardedPanel, is_sharded_panel, open_panel
from winback.decay_model.artifact import load_model, load_spec
from winback.decay_model.base import DecayModel
from winback.envs.defaults import DEFAULT_MODEL, default_model, default_population, default_simulator
from winback.errors import ConfigError, DataError
from winback.scenarios.schema import PACKAGED, ModelConfig, PopulationConfig
from winback.simulator.core import Simulator
from winback.simulator.population import held_out, new_users, split_users, warm_start
from winback.simulator.state import SimState
from winback.streams import user_keys

LAYOUT_FIELDS = ("event_types", "purchase_event", "interventions", "period", "origin")
"""The fields of a :class:`PanelSpec` a population and its decay model must agree on (not the length)."""


@cache
def load_decay_model(config: ModelConfig) -> DecayModel:
    """The decay model of ``config`` (loaded once)."""
    return default_model() if config.artifact == PACKAGED else load_model(config.artifact)


@cache
def model_layout(config: ModelConfig) -> PanelSpec:
    """The layout of the panel the decay model of ``config`` was fitted on (its ``model.json`` alone)."""
    return load_spec(model_directory(config))


def model_directory(config: ModelConfig) -> Path:
    """The artifact directory of the decay model of ``config``."""
    return DEFAULT_MODEL if config.artifact == PACKAGED else Path(config.artifact)


def check_population(config: PopulationConfig, model: ModelConfig) -> None:
    """Raise a :class:`ConfigError` naming both unless the population can live by the model: the same
    panel layout (:data:`LAYOUT_FIELDS`) and, for a log, a warm-start date on the model's grid and
    enough users. A log is read (once) to know."""
    if not config.log:
        _check_same_layout(cdnow.PANEL_SPEC, f"population.source = {config.source!r}", model)
        return
    if is_sharded_panel(config.log):
        _sharded_source(_where(config), model)
        return
    panel, until = _log_source(_where(config), model)
    if config.size > panel.n_users:
        raise ConfigError(
            f"population.size = {config.size} (allowed: 0 for every user, or up to the {panel.n_users} "
            f"users of population.log = {config.log!r} born before {model_layout(model).period_start(until)})"
        )


def warm_start_period(config: PopulationConfig, model: ModelConfig) -> int:
    """The period of the model's grid the population's real users are warm-started at."""
    if is_sharded_panel(config.log):
        return _sharded_source(_where(config), model)[1]
    if config.log:
        return _log_source(_where(config), model)[1]
    return cdnow.PANEL_SPEC.period_of(cdnow.CALIBRATION_END)


def describe_population(config: PopulationConfig, model: ModelConfig) -> dict[str, Any]:
    """Where the users come from, for the records of a run and a policy card: the built-in ``source``,
    or the ``log`` (its path as the scenario holds it, resolved) with the sha256 of its bytes (of its
    manifest, for a panel in shards, which holds the hash of its content), the ``mapping`` (with its
    file's sha256; ``None`` for a preset or none), and the ``until`` date the users are warm-started at."""
    until = str(model_layout(model).period_start(warm_start_period(config, model)))
    if not config.log:
        return {"source": config.source, "until": until}
    if is_sharded_panel(config.log):
        return {
            "log": config.log,
            "log_sha256": sha256_file(Path(config.log) / MANIFEST),
            "mapping": None,
            "mapping_sha256": None,
            "until": until,
        }
    mapping_file = Path(config.mapping) if config.mapping and config.mapping not in PRESETS else None
    return {
        "log": config.log,
        "log_sha256": sha256_file(Path(config.log)),
        "mapping": config.mapping or None,
        "mapping_sha256": None if mapping_file is None else sha256_file(mapping_file),
        "until": until,
    }


def build_population(config: PopulationConfig, model: ModelConfig) -> SimState:
    """The population ``config`` describes: a seeded sample of ``size`` warm-started users (all when
    0), of which a seeded ``new_user_share`` is replaced by new users (appended after the others);
    for a panel in shards, every user, its shards' training, validation and evaluation users."""
    check_population(config, model)
    if is_sharded_panel(config.log):
        return SimState.concatenate(list(_sharded_split(config, model, 0.0, 0.0)))
    everyone = _warm_started(_where(config), model)
    if config.size == 0 and config.new_user_share == 0:
        return everyone
    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(everyone.n_users, config.size, replace=False))
    users = everyone.take(sample) if config.size else everyone
    n_new = round(config.new_user_share * users.n_users)
    if n_new == 0:
        return users
    kept = users.take(np.sort(rng.permutation(users.n_users)[n_new:]))
    panel, until = _source(_where(config), model)
    born = new_users(_simulator(model), panel.select(panel.born_before(until)), n_new, seed=config.seed)
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
    if is_sharded_panel(config.log):
        return _sharded_split(config, model, eval_share, validation_share)
    rest, evaluation = split_users(cached_population(config, model), eval_share)
    train, validation = split_users(rest, validation_share, salt=1)
    return train, validation, evaluation


def population_shards(config: PopulationConfig) -> ShardedPanel | None:
    """The panel in shards the population comes from (``None``: a population held in memory)."""
    return open_panel(config.log) if is_sharded_panel(config.log) else None


Split = Literal["train", "validation", "evaluation"]
SPLITS: tuple[Split, ...] = ("train", "validation", "evaluation")
"""The parts of a population's split, in the order :func:`split_population` returns them."""


def shard_parts(
    config: PopulationConfig,
    model: ModelConfig,
    eval_share: float,
    validation_share: float,
    index: int,
    parts: Sequence[Split] = SPLITS,
) -> list[SimState]:
    """The users of shard ``index`` of a population in shards in each of ``parts`` of the split
    :func:`split_population` makes (by hashes of the users' keys), each part warm-started apart;
    the shard is read once."""
    panel, until = _sharded_source(_where(config), model)
    shard = panel.shard(index).truncate(until)
    keys = user_keys(shard.user_ids)
    evaluation = held_out(keys, eval_share)
    validation = held_out(keys, validation_share, salt=1) & ~evaluation
    masks = dict(zip(SPLITS, (~evaluation & ~validation, validation, evaluation), strict=True))
    return [warm_start(_simulator(model), shard.select(masks[part]), until=until) for part in parts]


def _sharded_split(
    config: PopulationConfig, model: ModelConfig, eval_share: float, validation_share: float
) -> tuple[SimState, SimState, SimState]:
    """Every shard's :func:`shard_parts`, each part concatenated in shard order."""
    n_shards = _sharded_source(_where(config), model)[0].n_shards
    shards = [shard_parts(config, model, eval_share, validation_share, i) for i in range(n_shards)]
    train, validation, evaluation = (SimState.concatenate([shard[p] for shard in shards]) for p in range(3))
    return train, validation, evaluation


@cache
def _sharded_source(where: PopulationConfig, model: ModelConfig) -> tuple[ShardedPanel, int]:
    """The panel in shards of ``population.log`` and the warm-start period, after the checks of
    :func:`check_population` (the manifest alone is read)."""
    key = f"population.log = {where.log!r}"
    try:
        panel = open_panel(where.log)
    except DataError as err:
        raise ConfigError(f"{key}: {err}") from err
    _check_same_layout(panel.spec, key, model)
    return panel, _until_period(where, model_layout(model), panel.complete_periods)


def _where(config: PopulationConfig) -> PopulationConfig:
    """The part of ``config`` that says where the users come from (sample and new users left out),
    so populations differing only in those share their warm start."""
    return dataclasses.replace(config, size=0, new_user_share=0.0, seed=0)


@cache
def _warm_started(where: PopulationConfig, model: ModelConfig) -> SimState:
    """Every user of the source where they stood at the warm-start period."""
    if where.source == "cdnow" and model.artifact == PACKAGED:
        return default_population()
    panel, until = _source(where, model)
    return warm_start(_simulator(model), panel, until=until)


def _source(where: PopulationConfig, model: ModelConfig) -> tuple[PeriodPanel, int]:
    """The panel the users come from and the period they are warm-started at."""
    if where.log:
        return _log_source(where, model)
    return _panel(where.source), warm_start_period(where, model)


@cache
def _panel(source: str) -> PeriodPanel:
    return cdnow.load_cdnow_panel(source)


@cache
def _log_source(where: PopulationConfig, model: ModelConfig) -> tuple[PeriodPanel, int]:
    """The log's panel on the model's grid, cut at the warm-start period, and that period; every
    check of :func:`check_population` on the way."""
    spec = model_layout(model)
    key = f"population.log = {where.log!r}"
    try:
        log = read_event_log(where.log, mapping=where.mapping or None, purchase_event=spec.purchase_event)
    except DataError as err:
        raise ConfigError(f"{key}: {err}") from err
    # The event types first, before a large log is paneled; the panel's whole layout below.
    types = dataclasses.replace(spec, event_types=log.event_types, purchase_event=log.purchase_event)
    _check_same_layout(types, key, model)
    timestamps = log.events["timestamp"]
    first, last = timestamps.min().date(), timestamps.max().date()
    if first < spec.origin_date:
        raise ConfigError(
            f"{key} starts on {first}, before the origin {spec.origin} of the decay model's grid "
            f"(model.artifact = {str(model_directory(model))!r}): its periods would be out of the model's "
            "calendar (filter the log to dates from the origin on, or fit the model on this log)"
        )
    panel = build_panel(log, period=spec.period, origin=spec.origin)
    _check_same_layout(panel.spec, key, model)
    complete = ((last - spec.origin_date).days + 1) // spec.period_days
    until = _until_period(where, spec, complete)
    panel = panel.truncate(until)
    if panel.n_users == 0:
        raise ConfigError(f"{key}: no user is born before population.until = {spec.period_start(until)}")
    return panel, until


def _until_period(where: PopulationConfig, spec: PanelSpec, complete: int) -> int:
    """``[population] until`` as a period of the model's grid (``complete`` when not given)."""
    if not where.until:
        until = complete
    else:
        try:
            until = spec.period_of(where.until)
        except DataError as err:
            raise ConfigError(
                f"population.until = {where.until!r}: not the first day of a {spec.period} of the decay "
                f"model's grid ({spec.period_days}-day periods from {spec.origin})"
            ) from err
    if not 0 < until <= complete:
        raise ConfigError(
            f"population.until = {where.until or str(spec.period_start(until))!r} (allowed: a period start "
            f"after the model's origin {spec.origin}, at most the end of population.log's last complete "
            f"{spec.period}, {spec.period_start(complete)})"
        )
    return until


def _check_same_layout(population: PanelSpec, key: str, model: ModelConfig) -> None:
    """A :class:`ConfigError` naming both unless ``population`` has the model's layout."""
    spec = model_layout(model)
    if any(getattr(population, name) != getattr(spec, name) for name in LAYOUT_FIELDS):
        raise ConfigError(
            f"the population and the decay model come from different panel layouts: {key} has "
            f"{_described(population)}; model.artifact = {str(model_directory(model))!r} has "
            f"{_described(spec)} (fit the model on the population's data, or take the population from "
            "the data the model was fitted on)"
        )


def _described(spec: PanelSpec) -> str:
    return (
        f"event types {', '.join(spec.event_types)} (purchase: {spec.purchase_event}), contact kinds "
        f"{', '.join(spec.interventions)}, {spec.period}s from {spec.origin}"
    )


@cache
def _simulator(model: ModelConfig) -> Simulator:
    """A simulator with the default response parameters, to start users with."""
    return default_simulator() if model.artifact == PACKAGED else Simulator(load_decay_model(model))
