"""The grid of a sweep: ``--grid`` axes over a scenario's TOML document, the sweep's config, and
each cell's document and name."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from winback.benchmarks.suite import BenchConfig
from winback.errors import ConfigError

Document = dict[str, Any]


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` option: a dotted key of the scenario document and the values it takes."""

    key: str
    """Full dotted key (``contacts.coupon.discount``; ``coupon.discount`` is accepted for it)."""
    values: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str, document: Document) -> GridAxis:
        """``key=v1,v2,...`` checked against ``document``'s keys; values are TOML scalars."""
        key, sep, values = text.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,... (e.g. coupon.discount=0.1,0.2)")
        if key.split(".")[0] in document.get("contacts", {}):
            key = f"contacts.{key}"
        parent = _parent(document, key)
        leaf = key.rsplit(".", 1)[-1]
        if parent is None or leaf not in parent or isinstance(parent[leaf], dict | list):
            raise ConfigError(
                f"--grid {text!r}: {key} is not a value of the scenario ({_keys_hint(document)})"
            )
        parsed = []
        for value in values.split(","):
            try:
                parsed.append(tomllib.loads(f"v = {value.strip()}")["v"])
            except tomllib.TOMLDecodeError as err:
                raise ConfigError(f"--grid {text!r}: {value.strip()!r} is not a TOML value ({err})") from err
        if len(set(map(repr, parsed))) < len(parsed):
            raise ConfigError(f"--grid {text!r}: repeated values")
        return cls(key, tuple(parsed))


@dataclass(frozen=True)
class SweepConfig:
    bench: BenchConfig
    """The scenario, policies, agents, seeds and sizes of every cell's benchmark (``random`` aside)."""
    axes: tuple[GridAxis, ...]

    def __post_init__(self) -> None:
        if not self.axes:
            raise ConfigError("a sweep needs at least one --grid")
        keys = [axis.key for axis in self.axes]
        if len(set(keys)) < len(keys):
            raise ConfigError(f"--grid keys repeat: {keys}")
        if "random" in self.bench.policies:
            raise ConfigError("'random' copies another run's contact rates: it is not swept (leave it out)")

    @property
    def cells(self) -> list[tuple[Any, ...]]:
        """Every combination of the axes' values, the first axis slowest."""
        combos: list[tuple[Any, ...]] = [()]
        for axis in self.axes:
            combos = [(*combo, value) for combo in combos for value in axis.values]
        return combos


def cell_document(base: Document, axes: Sequence[GridAxis], values: Sequence[Any]) -> Document:
    """``base`` with each axis' key set to its value (a deep copy)."""
    document = copy.deepcopy(base)
    for axis, value in zip(axes, values, strict=True):
        parent = _parent(document, axis.key)
        assert parent is not None  # checked by GridAxis.parse
        parent[axis.key.rsplit(".", 1)[-1]] = value
    return document


def cell_name(scenario: str, axes: Sequence[GridAxis], values: Sequence[Any]) -> str:
    """``scenario[key=value, ...]``: a cell's name in reports and errors."""
    return f"{scenario}[" + ", ".join(f"{a.key}={v}" for a, v in zip(axes, values, strict=True)) + "]"


def _parent(document: Document, key: str) -> dict[str, Any] | None:
    """The table holding the last part of dotted ``key`` (None when a part is missing)."""
    node: Any = document
    for part in key.split(".")[:-1]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _keys_hint(document: Document) -> str:
    tables = [key for key, value in document.items() if isinstance(value, dict)]
    return "keys: a top-level key or TABLE.KEY of " + ", ".join(tables)
