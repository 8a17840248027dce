"""Batch decisions for a table of users, one period at a time, logged so that the log supports
off-policy evaluation (``winback decide``).

The input table (Parquet or CSV) has one row per user: the user's stored state, as the previous run
wrote it (:func:`state_columns`), and what happened in the period that just ended
(:func:`activity_columns`): the events of each type, the spend, and the contact the user received
(``received``: an action name, ``none`` if none). A first run starts from the states
``winback decide`` is given by the platform in the same columns.

For each user the run feeds the period to ``state_update.onnx`` and to the contact records
(:mod:`~winback.export.runtime.records`), computes the policy's features (``interest`` as
``state_update.onnx`` forecasts it: the lift of earlier contacts that the simulator adds under its
response priors is not carried, as in ``winback serve``) and masks, scores the
actions with ``policy.onnx``, applies the exploration (:mod:`~winback.export.runtime.exploration`)
and draws the action at a uniform keyed by (seed, user, period): the same input gives the same
output. It writes, a block of rows at a time, ``decisions/part-NNNNN.parquet`` (user and key, period,
action, the probability of every action after masking and exploration, the propensity of the one
chosen, the features the policy saw, the policy's and the decay model's hashes) and
``states/part-NNNNN.parquet`` (the state to give the next run), each part renamed into place once
written, and ``decide.json`` (the run's
settings and the parts done). A run stopped midway resumes from its last part; a run of other
settings into the same directory is refused.

With limits on contact actions (a coupon budget, a care team's messages), the decisions are priced
to fit them before any part is decided, so that propensities stay exact (:func:`decide_table`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from winback.allocation import search_prices
from winback.checked_json import sha256_file
from winback.errors import ConfigError, DataError
from winback.export.runtime.artifact import ExportedArtifact
from winback.export.runtime.card import CARD_FILE
from winback.export.runtime.exploration import Exploration
from winback.export.runtime.records import ContactRecords, ContactRules
from winback.export.runtime.state import UserStates, derived_features
from winback.streams import RandomStreams, user_keys

USER = "user_id"
KEY = "user_key"
"""Decisions carry each user's stable 64-bit key (:func:`winback.streams.user_keys` of the id), which
keys the draws and finds a user named twice."""
RECEIVED = "received"
FEATURE_PREFIX = "x_"
"""Decisions carry the features the policy saw, as ``x_<feature>``: an off-policy evaluation of
another policy needs them."""
MANIFEST = "decide.json"
BATCH_ROWS = 100_000
"""Rows decided and written together (a part of the output)."""
SAMPLE_USERS = 100_000
"""Users of the table on whom the prices that fit the limits are searched (a random sample keyed by
the seed and the users' keys)."""
_DRAW_SLOT, _SAMPLE_SLOT, _CUT_SLOT = 1, 2, 3
"""Uniform slots of the action's draw, of the pricing sample's rank and of the backstop's order, apart
from the simulator's slot 0 of the same (user, period)."""


@dataclass(frozen=True)
class TableSpec:
    """The columns of the input and output tables for an export."""

    hidden_size: int
    event_types: tuple[str, ...]
    kinds: tuple[str, ...]
    """The actions' contact kinds (``none`` aside)."""
    coupons: tuple[str, ...]
    """Kinds with a validity (a coupon's ``valid_left`` is recorded)."""
    model_kinds: tuple[str, ...]
    """Contact kinds ``state_update.onnx`` reads."""

    @classmethod
    def of(cls, artifact: ExportedArtifact) -> TableSpec:
        card = artifact.card
        rules = ContactRules.from_card(card)
        return cls(
            hidden_size=int(card["state_update"]["hidden_size"]),
            event_types=tuple(card["state_update"]["event_types"]),
            kinds=rules.kinds,
            coupons=tuple(k for k, v in zip(rules.kinds, rules.validity, strict=True) if v > 0),
            model_kinds=tuple(card["state_update"]["contact_kinds"]),
        )

    def state_columns(self) -> dict[str, str]:
        """Each stored-state column and its type (``float``, ``int``, ``bool``), user id aside."""
        hidden = {f"hidden_{i}": "float" for i in range(self.hidden_size)}
        cell = {f"cell_{i}": "float" for i in range(self.hidden_size)}
        integers = dict.fromkeys(("period", "first_period", "last_purchase"), "int")
        records = {
            "fatigue": "float",
            "opted_out": "bool",
            **{f"valid_left_{kind}": "int" for kind in self.coupons},
            **{f"since_{kind}": "int" for kind in self.kinds},
        }
        return {**hidden, **cell, **integers, "frequency": "float", "spend_total": "float", **records}

    def activity_columns(self) -> dict[str, str]:
        """Each column of the period that just ended and its type (``received``: an action name)."""
        return {**{f"count_{e}": "int" for e in self.event_types}, "spend": "float", RECEIVED: "action"}


@dataclass
class Users:
    """A validated block of input rows as arrays."""

    ids: np.ndarray
    """(n,) object: the user ids, as strings."""
    states: UserStates
    records: ContactRecords
    counts: np.ndarray
    """(n, E) int64 events of each type in the period that ended."""
    spend: np.ndarray
    received: np.ndarray
    """(n,) int64 action index of the contact received (0: none)."""


def read_blocks(path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    """The table at ``path`` (``.parquet`` or ``.csv``) in blocks of ``rows`` rows."""
    try:
        if path.suffix == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=rows)
        elif path.suffix == ".csv":
            options = pacsv.ReadOptions(block_size=1 << 24)
            convert = pacsv.ConvertOptions(column_types={USER: pa.string(), RECEIVED: pa.string()})
            pending: list[pa.RecordBatch] = []
            for batch in pacsv.open_csv(path, read_options=options, convert_options=convert):
                pending.append(batch)
                table = pa.Table.from_batches(pending)
                while table.num_rows >= rows:
                    yield from table.slice(0, rows).combine_chunks().to_batches()
                    table = table.slice(rows)
                pending = table.to_batches()
            if pending and (rest := pa.Table.from_batches(pending)).num_rows:
                yield from rest.combine_chunks().to_batches()
        else:
            raise DataError("not a table winback decide reads", path=path, expected="a .parquet or .csv file")
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"cannot be read as a table ({err})", path=path) from err


def validate(
    batch: pa.RecordBatch, spec: TableSpec, actions: tuple[str, ...], path: Path, first: int
) -> Users:
    """The block's users, or a :class:`DataError` naming the file, the rows (1-based, counted from the
    table's first row; ``first``: this block's first) and the column of the first problem found."""
    columns = {USER: "id", **spec.state_columns(), **spec.activity_columns()}
    if missing := [name for name in columns if name not in batch.schema.names]:
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            path=path,
            expected="user_id, the stored state's columns (as winback decide writes them in states/), "
            f"{', '.join(spec.activity_columns())}",
        )
    values: dict[str, np.ndarray] = {}
    for name, kind in columns.items():
        values[name] = _column(batch.column(name), name, kind, actions, path, first)
    period, first_period, last_purchase = values["period"], values["first_period"], values["last_purchase"]
    _check(~((first_period <= last_purchase) & (last_purchase <= period)), "last_purchase", path, first,
           "first_period <= last_purchase <= period")  # fmt: skip
    ids = values[USER]
    hidden = np.column_stack([values[f"hidden_{i}"] for i in range(spec.hidden_size)]).astype(np.float32)
    cell = np.column_stack([values[f"cell_{i}"] for i in range(spec.hidden_size)]).astype(np.float32)
    n = len(ids)
    valid_left = np.zeros((n, len(spec.kinds)), dtype=np.int64)
    for k, kind in enumerate(spec.kinds):
        if kind in spec.coupons:
            valid_left[:, k] = values[f"valid_left_{kind}"]
    return Users(
        ids=ids,
        states=UserStates(
            hidden, cell, period, first_period, last_purchase, values["frequency"], values["spend_total"]
        ),
        records=ContactRecords(
            values["fatigue"],
            values["opted_out"],
            valid_left,
            np.column_stack([values[f"since_{kind}"] for kind in spec.kinds]).astype(np.int64),
        ),
        counts=np.column_stack([values[f"count_{e}"] for e in spec.event_types]).astype(np.int64),
        spend=values["spend"],
        received=values[RECEIVED],
    )


def _column(
    column: pa.Array, name: str, kind: str, actions: tuple[str, ...], path: Path, first: int
) -> np.ndarray:
    """One column as numpy, checked: no nulls, the type, finite and non-negative numbers."""
    _check(np.asarray(column.is_null()), name, path, first, "a value in every row")
    if kind == "id":
        return np.asarray(column.cast(pa.string()), dtype=object)
    if kind == "action":
        names = np.asarray(column.cast(pa.string()), dtype=object)
        index = {action: i for i, action in enumerate(actions)}
        codes = np.array([index.get(value, -1) for value in names], dtype=np.int64)
        _check(codes < 0, name, path, first, f"one of {', '.join(actions)}")
        return codes
    if kind == "bool":
        if pa.types.is_boolean(column.type):
            return np.asarray(column, dtype=bool)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            truth = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0}
            numbers = np.array([truth.get(str(v).strip().lower(), np.nan) for v in column.to_pylist()])
        else:
            numbers = _numbers(column, name, path, first)
        _check(~np.isin(numbers, (0, 1)), name, path, first, "true/false or 0/1")
        return numbers.astype(bool)
    numbers = _numbers(column, name, path, first)
    _check(~np.isfinite(numbers), name, path, first, "a finite number")
    if kind == "int":
        _check(numbers != np.round(numbers), name, path, first, "a whole number")
        numbers = numbers.astype(np.int64)
    if not name.startswith(("hidden_", "cell_")):
        _check(numbers < 0, name, path, first, "a number >= 0")
    return numbers


def _numbers(column: pa.Array, name: str, path: Path, first: int) -> np.ndarray:
    """The column as float64; a column of text (a CSV's with a word in it) names the rows that are not
    numbers."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.asarray(column, dtype=np.float64)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataError(f"holds {column.type}", path=path, column=name, expected="numbers")
    numbers = pd.to_numeric(pd.Series(column.to_pylist()), errors="coerce").to_numpy(dtype=np.float64)
    _check(np.isnan(numbers), name, path, first, "a number")
    return numbers


def _check(bad: np.ndarray, column: str, path: Path, first: int, expected: str) -> None:
    if bad.any():
        rows = (np.flatnonzero(bad) + first + 1).tolist()
        raise DataError("invalid value", path=path, rows=rows, column=column, expected=expected)


@dataclass(frozen=True)
class DecideSettings:
    """What a run's output depends on besides its input (``decide.json`` records them)."""

    export_sha256: str
    """The policy card's sha256 (the card holds both graphs' hashes)."""
    table_sha256: str
    exploration: Exploration
    seed: int
    batch_rows: int
    limits: dict[str, int] = dataclasses.field(default_factory=dict)
    """Per contact action, how many users of the table it may go to this period."""
    sample_users: int = SAMPLE_USERS


def decide_table(
    export: str | Path,
    table: str | Path,
    out: str | Path,
    *,
    exploration: Exploration,
    seed: int,
    batch_rows: int = BATCH_ROWS,
    limits: Mapping[str, int] | None = None,
    sample_users: int = SAMPLE_USERS,
    on_part: Callable[[int, int], None] | None = None,
    on_priced: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Decide for every user of ``table`` with the export in ``export``; write the parts and
    ``decide.json`` into ``out``; return the manifest. ``on_part(part, rows)`` after each part,
    ``on_priced(rows)`` after each block of the pricing pass.

    With ``limits`` (per contact action, how many of the table's users it may go to), a first pass
    finds the prices at which the decisions' expected use fits them on ``sample_users`` users
    (:func:`price_limits`), and every part is decided at those prices: each user's probabilities are
    then the policy's at a price known before the user was decided, so propensities stay exact. As a
    backstop, where a part's draws still exceed its share of a limit (counted from the table's first
    row), the excess is sent nothing, drawn at random among the part's takers: the part's probabilities
    record it (a share ``c`` of the action's takers cut moves ``c`` of its probability to ``none``)."""
    artifact = ExportedArtifact.load(export)
    table_path, out_dir = Path(table), Path(out)
    if batch_rows < 1 or sample_users < 1:
        raise ConfigError(f"batch rows = {batch_rows}, sample users = {sample_users} (allowed: >= 1 each)")
    limits = _checked_limits(artifact, limits or {})
    settings = DecideSettings(
        export_sha256=sha256_file(Path(export) / CARD_FILE),
        table_sha256=sha256_file(table_path) if table_path.is_file() else "",
        exploration=exploration,
        seed=seed,
        batch_rows=batch_rows,
        limits=limits,
        sample_users=sample_users,
    )
    if not settings.table_sha256:
        raise DataError("no such file", path=table_path, expected="a users table (.parquet or .csv)")
    manifest = _start(out_dir, settings, table_path)
    spec, rules = TableSpec.of(artifact), ContactRules.from_card(artifact.card)
    streams = RandomStreams(seed)
    if limits and "pricing" not in manifest:
        manifest["pricing"] = price_limits(
            artifact, spec, rules, table_path, limits, exploration, streams, batch_rows, sample_users,
            on_block=on_priced,
        )  # fmt: skip
        _save(out_dir, manifest)
    prices = np.array([manifest["pricing"]["prices"][a] for a in limits]) if limits else np.zeros(0)
    done = len(manifest["parts"])
    first = 0
    for part, batch in enumerate(read_blocks(table_path, batch_rows)):
        rows = batch.num_rows
        if part >= done:
            users = validate(batch, spec, artifact.actions, table_path, first)
            quota = None
            if limits:
                used = {a: sum(p["used"][a] for p in manifest["parts"]) for a in limits}
                share = (first + rows) / manifest["pricing"]["users"]
                quota = {a: int(np.floor(n * share + 1e-9)) - used[a] for a, n in limits.items()}
            decisions, states, use = decide_users(
                artifact, spec, rules, users, exploration, streams, prices=prices, quota=quota
            )
            _write(out_dir / "decisions", part, decisions)
            _write(out_dir / "states", part, states)
            manifest["parts"].append({"part": part, "first_row": first + 1, "rows": rows, **use})
            _save(out_dir, manifest)
            if on_part is not None:
                on_part(part, rows)
        first += rows
    _check_unique(out_dir, manifest, table_path)
    manifest["complete"] = True
    manifest["users"] = first
    _save(out_dir, manifest)
    return manifest


def _checked_limits(artifact: ExportedArtifact, limits: Mapping[str, int]) -> dict[str, int]:
    contacts = artifact.actions[1:]
    if unknown := [a for a in limits if a not in contacts]:
        raise ConfigError(
            f"limits on {unknown}: not contact actions of the policy (allowed: {list(contacts)})"
        )
    for action, count in limits.items():
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise ConfigError(f"limit on {action} = {count!r} (allowed: a whole number of users >= 0)")
    return {a: int(limits[a]) for a in contacts if a in limits}


@dataclass(frozen=True)
class Observed:
    """A block of users after the period that ended: their new states and what the policy sees."""

    keys: np.ndarray
    """(n,) uint64 stable keys of the users' ids."""
    states: UserStates
    records: ContactRecords
    observations: np.ndarray
    """(n, F) float32 features, clipped to the card's bounds."""
    allowed: np.ndarray
    """(n, A) bool masks of the card's rules."""


def observe_users(artifact: ExportedArtifact, spec: TableSpec, rules: ContactRules, users: Users) -> Observed:
    """The users' state update (``state_update.onnx``), contact records, features and masks."""
    received = users.received
    kind_of = {kind: k for k, kind in enumerate(spec.kinds)}
    model_contacts = np.zeros((len(received), len(spec.model_kinds)), dtype=np.int64)
    for j, kind in enumerate(spec.model_kinds):
        if kind in kind_of:
            model_contacts[:, j] = received == kind_of[kind] + 1
    states, interest = artifact.state_update.step(users.states, users.counts, users.spend, model_contacts)
    records = users.records.after(received, rules)
    new_user_periods = int(artifact.card["state_update"]["new_user_periods"])
    features = {**derived_features(states, interest, new_user_periods), **records.features(rules)}
    bounds = artifact.card["observation"]["features"]
    observations = np.column_stack(
        [
            np.clip(features[name], f["low"], f["high"])
            for name, f in zip(artifact.feature_names, bounds, strict=True)
        ]
    ).astype(np.float32)
    return Observed(user_keys(users.ids), states, records, observations, artifact.masks(observations).allowed)


def price_limits(
    artifact: ExportedArtifact,
    spec: TableSpec,
    rules: ContactRules,
    table: Path,
    limits: Mapping[str, int],
    exploration: Exploration,
    streams: RandomStreams,
    batch_rows: int,
    sample_users: int,
    on_block: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The prices, per limited action, at which the decisions' expected use (their probabilities
    under ``exploration`` summed) fits ``limits`` scaled to a random sample of the table's users:
    the ``sample_users`` users of the lowest uniforms keyed by (seed, user, period), read in one pass
    (:func:`~winback.allocation.search_prices` on the sample). Also the table's users, the sample's
    size, each action's expected use over the table at the prices and the search's evaluations."""
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    users, first = 0, 0
    for batch in read_blocks(table, batch_rows):
        observed = observe_users(artifact, spec, rules, validate(batch, spec, artifact.actions, table, first))
        ranks = streams.uniforms(observed.keys, observed.states.period, _SAMPLE_SLOT + 1)[:, _SAMPLE_SLOT]
        kept.append((ranks, observed.observations, observed.allowed))
        ranks, observations, allowed = (np.concatenate(parts) for parts in zip(*kept, strict=True))
        lowest = np.argsort(ranks, kind="stable")[:sample_users]
        kept = [(ranks[lowest], observations[lowest], allowed[lowest])]
        users, first = users + batch.num_rows, first + batch.num_rows
        if on_block is not None:
            on_block(batch.num_rows)
    _, observations, allowed = kept[0]
    priced = artifact.priced(observations, allowed, list(limits))
    scale = len(observations) / users

    def expected_use(prices: np.ndarray) -> np.ndarray:
        decision = priced.decide_at(prices)
        return priced.use @ exploration.probabilities(decision.scores, allowed, decision.actions).sum(axis=0)

    wanted = np.array(list(limits.values()), dtype=np.float64) * scale
    prices, evaluations = search_prices(expected_use, wanted, priced.ceilings)
    expected = expected_use(prices) / scale
    return {
        "users": users,
        "sample_users": len(observations),
        "prices": {a: float(p) for a, p in zip(limits, prices, strict=True)},
        "expected_use": {a: float(u) for a, u in zip(limits, expected, strict=True)},
        "evaluations": evaluations,
    }


@dataclass(frozen=True)
class Drawn:
    """The actions drawn for a block of users and the distribution each was drawn from."""

    actions: np.ndarray
    """(n,) int64 the actions sent."""
    probabilities: np.ndarray
    """(n, A) float64 each action's probability after masking, exploration and the backstop."""
    use: dict[str, dict[str, int]]
    """Per limited action, the users it went to (``used``) and those the backstop cut (``cut``)."""


def draw_actions(
    artifact: ExportedArtifact,
    observed: Observed,
    exploration: Exploration,
    streams: RandomStreams,
    *,
    prices: np.ndarray | None = None,
    quota: Mapping[str, int] | None = None,
) -> Drawn:
    """The policy's actions for observed users, drawn under ``exploration`` at uniforms keyed by
    (seed, user, period): at ``prices`` (per action of ``quota``, in its order), capped at ``quota``
    (per limited action, the users the block may send it to; see :func:`decide_table`)."""
    allowed, limited = observed.allowed, list(quota or {})
    if limited:
        decision = artifact.priced(observed.observations, allowed, limited).decide_at(np.asarray(prices))
    else:
        decision = artifact.decide_at_prices(observed.observations, allowed, {})
    probabilities = exploration.probabilities(decision.scores, allowed, decision.actions)
    uniforms = streams.uniforms(observed.keys, observed.states.period, _CUT_SLOT + 1)
    chosen = exploration.draw(probabilities, uniforms[:, _DRAW_SLOT])
    use: dict[str, dict[str, int]] = {}
    if quota:
        indices = [artifact.actions.index(a) for a in limited]
        cut = _cap(chosen, probabilities, indices, list(quota.values()), uniforms[:, _CUT_SLOT])
        use = {
            "used": {a: int((chosen == i).sum()) for a, i in zip(limited, indices, strict=True)},
            "cut": dict(zip(limited, cut, strict=True)),
        }
    return Drawn(chosen, probabilities, use)


def decide_users(
    artifact: ExportedArtifact,
    spec: TableSpec,
    rules: ContactRules,
    users: Users,
    exploration: Exploration,
    streams: RandomStreams,
    *,
    prices: np.ndarray | None = None,
    quota: Mapping[str, int] | None = None,
) -> tuple[pa.Table, pa.Table, dict[str, dict[str, int]]]:
    """The decisions and new states of a block of users (:func:`observe_users`, :func:`draw_actions`),
    and what each limited action took."""
    observed = observe_users(artifact, spec, rules, users)
    drawn = draw_actions(artifact, observed, exploration, streams, prices=prices, quota=quota)
    new_states = {USER: users.ids, **state_values(spec, observed.states, observed.records)}
    return pa.table(decision_columns(artifact, users.ids, observed, drawn)), pa.table(new_states), drawn.use


def decision_columns(
    artifact: ExportedArtifact, ids: np.ndarray, observed: Observed, drawn: Drawn
) -> dict[str, np.ndarray]:
    """The decisions log's columns (module docstring) of observed users and the actions drawn."""
    chosen, probabilities, n = drawn.actions, drawn.probabilities, len(drawn.actions)
    actions = np.asarray(artifact.actions, dtype=object)
    return {
        USER: ids,
        KEY: observed.keys,
        "period": observed.states.period,
        "action": actions[chosen],
        "action_index": chosen,
        "propensity": probabilities[np.arange(n), chosen],
        **{f"p_{action}": probabilities[:, a] for a, action in enumerate(artifact.actions)},
        **{
            f"{FEATURE_PREFIX}{name}": observed.observations[:, j]
            for j, name in enumerate(artifact.feature_names)
        },
        "policy_sha256": np.full(n, artifact.card["files"]["policy.onnx"]["sha256"], dtype=object),
        "model_sha256": np.full(n, artifact.card["decay_model"]["content_sha256"], dtype=object),
    }


def _cap(
    chosen: np.ndarray, probabilities: np.ndarray, indices: list[int], quota: list[int], order: np.ndarray
) -> list[int]:
    """The backstop, in place: of each limited action's takers beyond its ``quota``, those of the
    lowest ``order`` are sent nothing, and the action's probability, for every user, moves the share
    cut to ``none`` (all of it at a quota of 0); returns the users cut per action."""
    cut = []
    for index, allowed_users in zip(indices, quota, strict=True):
        takers = np.flatnonzero(chosen == index)
        excess = len(takers) - allowed_users
        cut.append(max(excess, 0))
        if excess <= 0 and allowed_users > 0:
            continue
        chosen[takers[np.argsort(order[takers], kind="stable")[: max(excess, 0)]]] = 0
        share = excess / len(takers) if allowed_users > 0 else 1.0  # none left: nobody could take it
        probabilities[:, 0] += share * probabilities[:, index]
        probabilities[:, index] *= 1.0 - share
    return cut


def users_table(spec: TableSpec, users: Users, actions: tuple[str, ...]) -> pa.Table:
    """The input table of ``users`` (the inverse of :func:`validate`): what a platform writes for a run."""
    columns = {USER: users.ids, **state_values(spec, users.states, users.records)}
    columns |= {f"count_{e}": users.counts[:, j] for j, e in enumerate(spec.event_types)}
    columns |= {"spend": users.spend, RECEIVED: np.asarray(actions, dtype=object)[users.received]}
    return pa.table(columns)


def state_values(spec: TableSpec, states: UserStates, records: ContactRecords) -> dict[str, np.ndarray]:
    """The stored-state columns of users (:meth:`TableSpec.state_columns`), by name."""
    values: dict[str, np.ndarray] = {}
    for i in range(spec.hidden_size):
        values[f"hidden_{i}"] = states.hidden[:, i]
    for i in range(spec.hidden_size):
        values[f"cell_{i}"] = states.cell[:, i]
    values |= {
        "period": states.period,
        "first_period": states.first_period,
        "last_purchase": states.last_purchase,
        "frequency": states.frequency,
        "spend_total": states.spend_total,
        "fatigue": records.fatigue,
        "opted_out": records.opted_out,
    }
    for k, kind in enumerate(spec.kinds):
        if kind in spec.coupons:
            values[f"valid_left_{kind}"] = records.valid_left[:, k]
    for k, kind in enumerate(spec.kinds):
        values[f"since_{kind}"] = records.since_contact[:, k]
    return values


def _start(out: Path, settings: DecideSettings, table: Path) -> dict[str, Any]:
    """The manifest to continue: a new one, or the one in ``out`` when its settings are these."""
    wanted = {**dataclasses.asdict(settings), "exploration": dataclasses.asdict(settings.exploration)}
    path = out / MANIFEST
    if path.is_file():
        manifest = json.loads(path.read_text())
        if manifest.get("settings") != wanted:
            differing = sorted(k for k in wanted if manifest.get("settings", {}).get(k) != wanted[k])
            raise ConfigError(
                f"{out} holds a winback decide run of other settings ({', '.join(differing)} differ): "
                "choose another --out, or run it again with its settings to resume it"
            )
        return manifest
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no winback decide run: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "kind": "winback decide",
        "table": str(table),
        "settings": wanted,
        "parts": [],
        "complete": False,
    }
    _save(out, manifest)
    return manifest


def _write(directory: Path, part: int, table: pa.Table) -> None:
    """The part's file, written beside and renamed into place (a stopped run leaves no half file)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"part-{part:05d}.parquet"
    partial = final.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    os.replace(partial, final)


def _save(out: Path, manifest: dict[str, Any]) -> None:
    partial = out / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, out / MANIFEST)


def _check_unique(out: Path, manifest: dict[str, Any], table: Path) -> None:
    """Refuse a table that names a user twice (a second decision for one user in one period)."""
    parts = [out / "decisions" / f"part-{p['part']:05d}.parquet" for p in manifest["parts"]]
    keys = pa.concat_tables(pq.read_table(path, columns=[KEY]) for path in parts).column(KEY).to_numpy()
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if repeated.size:
        rows = np.sort(order[np.concatenate([repeated, repeated + 1])]) + 1
        raise DataError("a user appears more than once", path=table, rows=rows.tolist(), column=USER,
                        expected="one row per user")  # fmt: skip
