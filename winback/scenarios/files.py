"""Scenario files: a parsed TOML document checked key by key into a scenario's fields, and written back.

Every error is a :class:`~winback.errors.ConfigError` naming the dotted key (``contacts.coupon.discount``,
``shocks[0].end``) and what it allows; the caller adds the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from winback.errors import ConfigError
from winback.scenarios.schema import (
    CONTACT_RULES,
    DELAY_RULE,
    ECONOMICS_RULES,
    FATIGUE_KEYS,
    FATIGUE_RULES,
    PACKAGED,
    SCENARIO_RULES,
    Campaign,
    DecayConfig,
    DemandShock,
    ModelConfig,
    Operations,
    PopulationConfig,
    Rule,
    shown,
)
from winback.simulator.core import SimulatorConfig
from winback.simulator.response import ResponseConfig, default_contacts
from winback.simulator.rewards import RewardConfig

if TYPE_CHECKING:
    from winback.scenarios.scenario import Scenario

T = TypeVar("T")

SECTIONS = (
    "population",
    "model",
    "economics",
    "contacts",
    "fatigue",
    "operations",
    "shocks",
    "campaigns",
    "decay",
)
"""Tables of a scenario file, after the top-level keys of :data:`SCENARIO_RULES`."""


def parse(document: Mapping[str, Any], *, folder: Path, name: str) -> dict[str, Any]:
    """The keyword arguments of a ``Scenario`` from a TOML document; a relative model artifact,
    population log or mapping file is resolved against ``folder``, and ``name`` is the name when the
    document gives none."""
    _check_known(document, "", [*SCENARIO_RULES, *SECTIONS])
    top = _read({key: value for key, value in document.items() if key in SCENARIO_RULES}, "", SCENARIO_RULES)
    model = _read(_section(document, "model"), "model", ModelConfig.RULES)
    if model.get("artifact", PACKAGED) != PACKAGED:
        model["artifact"] = _resolved(folder, model["artifact"])
    return {
        "name": name,
        "description": "",
        **top,
        "simulator": _simulator(document),
        "population_config": _population(_section(document, "population"), folder),
        "model_config": ModelConfig(**model),
        "operations": _operations(_section(document, "operations")),
        "decay": DecayConfig(**_read(_section(document, "decay"), "decay", DecayConfig.RULES)),
        "shocks": _array_of_tables(document, "shocks", DemandShock),
        "campaigns": _array_of_tables(document, "campaigns", Campaign),
    }


def to_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario as a TOML document with every key of the schema filled in (simulator settings outside
    the schema, such as ``ResponseConfig.effects``, are not part of a scenario file)."""
    response = scenario.simulator.response
    return {
        **{key: getattr(scenario, key) for key in SCENARIO_RULES},
        "population": _population_document(scenario.population_config),
        "model": dataclasses.asdict(scenario.model_config),
        "economics": {key: getattr(scenario.simulator.reward, key) for key in ECONOMICS_RULES},
        "contacts": {kind: dataclasses.asdict(contact) for kind, contact in response.contacts.items()},
        "fatigue": {key: getattr(response, field) for key, field in FATIGUE_KEYS.items()},
        "decay": dataclasses.asdict(scenario.decay),
        "operations": dataclasses.asdict(scenario.operations),
        "shocks": [dataclasses.asdict(shock) for shock in scenario.shocks],
        "campaigns": [dataclasses.asdict(campaign) for campaign in scenario.campaigns],
    }


def dumps(document: Mapping[str, Any]) -> str:
    """TOML text of a document of tables, arrays of tables and scalars (strings, numbers, booleans)."""
    return "\n".join(_table_lines((), document)).lstrip("\n") + "\n"


def _table_lines(path: tuple[str, ...], table: Mapping[str, Any]) -> list[str]:
    scalars = [f"{key} = {_toml_value(value)}" for key, value in table.items() if not _is_nested(value)]
    header = [f"\n[{'.'.join(path)}]"] if path and (scalars or not table) else []
    nested: list[str] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            nested += _table_lines((*path, key), value)
        elif _is_nested(value):
            for item in value:
                nested += [f"\n[[{'.'.join((*path, key))}]]"]
                nested += [f"{name} = {_toml_value(scalar)}" for name, scalar in item.items()]
    return header + scalars + nested


def _is_nested(value: Any) -> bool:
    """A table, or a non-empty array of tables."""
    return isinstance(value, Mapping) or (
        isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return repr(value)


def _simulator(document: Mapping[str, Any]) -> SimulatorConfig:
    """``[economics]``, ``[contacts.<kind>]`` and ``[fatigue]`` over the documented defaults."""
    contacts = _section(document, "contacts")
    defaults = default_contacts()
    _check_known(contacts, "contacts", defaults, what="contact kind")
    fatigue = _read(_section(document, "fatigue"), "fatigue", FATIGUE_RULES)
    return SimulatorConfig(
        response=ResponseConfig(
            contacts={
                kind: dataclasses.replace(
                    default, **_read(_section(contacts, kind, "contacts"), f"contacts.{kind}", CONTACT_RULES)
                )
                for kind, default in defaults.items()
            },
            **{FATIGUE_KEYS[key]: value for key, value in fatigue.items()},
        ),
        reward=RewardConfig(**_read(_section(document, "economics"), "economics", ECONOMICS_RULES)),
    )


def _population(table: Mapping[str, Any], folder: Path) -> PopulationConfig:
    """``[population]``; a log and a mapping file are resolved against ``folder``, and ``until`` may be
    a TOML date."""
    until = table.get("until")
    if isinstance(until, dt.date) and not isinstance(until, dt.datetime):
        table = {**table, "until": until.isoformat()}
    values = _read(table, "population", PopulationConfig.RULES)
    if values.get("log"):
        values["log"] = _resolved(folder, values["log"])
        values.setdefault("source", "")  # given as well: PopulationConfig names both keys
    if Path(values.get("mapping", "")).suffix.lower() == ".toml":  # a file, not a preset's name
        values["mapping"] = _resolved(folder, values["mapping"])
    return PopulationConfig(**values)


def _population_document(config: PopulationConfig) -> dict[str, Any]:
    """``[population]`` with the keys that apply: ``source``, or those of a log."""
    left_out = PopulationConfig.LOG_KEYS if not config.log else ("source",)
    return {key: value for key, value in dataclasses.asdict(config).items() if key not in left_out}


def _resolved(folder: Path, path: str) -> str:
    """``path`` as an absolute, normalised path, relative ones taken from ``folder``."""
    return os.path.normpath(Path(folder, path).absolute())


def _operations(table: Mapping[str, Any]) -> Operations:
    _check_known(table, "operations", [*Operations.RULES, "delivery_delay"])
    values = _read({k: v for k, v in table.items() if k != "delivery_delay"}, "operations", Operations.RULES)
    delays = _section(table, "delivery_delay", "operations")
    kinds = default_contacts()
    _check_known(delays, "operations.delivery_delay", kinds, what="contact kind")
    return Operations(
        **values,
        delivery_delay={
            kind: DELAY_RULE.check(f"operations.delivery_delay.{kind}", delays.get(kind, 0)) for kind in kinds
        },
    )


def _array_of_tables(document: Mapping[str, Any], name: str, kind: type[T]) -> tuple[T, ...]:
    """``[[name]]`` tables read into ``kind`` (a dataclass with ``RULES``, every key required)."""
    tables = document.get(name, [])
    keys = ", ".join(kind.RULES)  # type: ignore[attr-defined]
    if not isinstance(tables, list):
        raise ConfigError(f"{name} = {shown(tables)} (allowed: an array of tables, [[{name}]])")
    parsed = []
    for i, table in enumerate(tables):
        key = f"{name}[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{key} = {shown(table)} (allowed: a table with {keys})")
        values = _read(table, key, kind.RULES)  # type: ignore[attr-defined]
        if missing := [field for field in kind.RULES if field not in values]:  # type: ignore[attr-defined]
            raise ConfigError(f"{key}: missing {', '.join(missing)} (a table of [[{name}]] has {keys})")
        parsed.append(kind(**values))
    return tuple(parsed)


def _section(table: Mapping[str, Any], name: str, parent: str = "") -> dict[str, Any]:
    """The table ``name`` of ``table`` (empty when absent)."""
    value = table.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{_join(parent, name)} = {shown(value)} (allowed: a table)")
    return value


def _read(table: Mapping[str, Any], key: str, rules: Mapping[str, Rule]) -> dict[str, Any]:
    """The values of ``table`` checked against ``rules``; any other key is an error."""
    _check_known(table, key, rules)
    return {name: rules[name].check(_join(key, name), value) for name, value in table.items()}


def _check_known(table: Mapping[str, Any], key: str, known: Iterable[str], *, what: str = "key") -> None:
    known = list(known)
    for name in table:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown {what} {_join(key, name)}{hint} (known: {', '.join(known)})")


def _join(prefix: str, name: str) -> str:
    """``prefix.name``, the name quoted unless it is a bare TOML key."""
    name = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)
    return f"{prefix}.{name}" if prefix else name
