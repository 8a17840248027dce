"""Writing the policy card (``policy_card.json``): what an exported policy expects, does and was measured at.

The card is plain JSON. It records the schema version, the winback version, the ordered observation
features (name, range, unit and how each is computed from events), the actions and the mask rules,
the inputs and outputs of both ONNX files (with the decay model's grid: period, origin, event types),
the decay model's and the scenario's content hashes, where the users the policy was trained and
measured on come from (``population``: the built-in source, or the event log's path and sha256, its
mapping and the warm-start date; :func:`winback.scenarios.population.describe_population`), the
training config, the benchmark figures with their confidence intervals, the sha256 of each ONNX file
and the creation time. ``content_sha256`` is the sha256 of the card's other keys as canonical JSON
(sorted keys), so an edited card is refused like an edited ONNX file
(:func:`winback.export.runtime.card.read_card`, which reads it without the simulator).

Content hashes:

- decay model: the ``content_sha256`` of its artifact's ``model.json``
  (:mod:`winback.decay_model.artifact`), which covers its config, panel spec and the sha256 of its
  weights; :func:`winback.decay_model.artifact.load_model` verifies it when the model is loaded;
- scenario: the sha256 of ``json.dumps(dataclasses.asdict(scenario), sort_keys=True,
  separators=(",", ":"))``, the resolved scenario (defaults filled in), whichever file it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import winback
from winback.checked_json import sha256_file, with_hash
from winback.decay_model.artifact import CONFIG_FILE as DECAY_CONFIG_FILE
from winback.envs.defaults import DEFAULT_MODEL
from winback.errors import ArtifactError
from winback.export.runtime.card import CARD_FILE, POLICY_FILE, SCHEMA, SCHEMA_VERSION, STATE_FILE
from winback.scenarios.scenario import Scenario
from winback.scenarios.schema import PACKAGED
from winback.simulator.core import Simulator
from winback.simulator.features import feature_bounds, feature_names
from winback.simulator.state import SINCE_CAP


def describe_features(simulator: Simulator, period: str) -> list[dict[str, Any]]:
    """The observation features in order, with range (from :func:`feature_bounds`), unit and computation.

    ``period`` is the decay model's period (``week``). Raises if a feature has no description.
    """
    response = simulator.config.response
    tables = simulator.tables
    fatigue_per_kind = ", ".join(f"{k} {f:g}" for k, f in zip(simulator.kinds, tables.fatigue, strict=True))
    docs: dict[str, tuple[str, str]] = {
        "interest": (
            "probability",
            "P(at least one purchase in the coming period) with no new contact: the decay model's forecast "
            "(state_update.onnx 'interest'), with the log-odds lift of earlier contacts still in force "
            "added when the simulator's response priors apply",
        ),
        "log_recency": (
            f"log1p({period}s)",
            f"log1p of the {period}s since the last purchase, or birth if none, as of the coming {period} "
            "(1: bought last period): period - last_purchase of the decay state",
        ),
        "log_frequency": ("log1p(purchases)", "log1p of the purchases since birth"),
        "log_monetary": ("log1p(currency)", "log1p of the spend since birth / max(purchases since birth, 1)"),
        "log_tenure": (f"log1p({period}s)", f"log1p of the {period}s since birth: period - first_period"),
        "new_user": (
            "flag",
            f"1 while the tenure ({period}s since birth) is below {response.new_user_periods}, else 0",
        ),
        "fatigue": (
            "fatigue",
            f"each delivered contact adds its kind's fatigue ({fatigue_per_kind}); multiplied by "
            f"{tables.fatigue_decay:.6g} every {period}",
        ),
        "opted_out": ("flag", "1 once the user accepts no more contacts (never reset)"),
    }
    for kind, validity in zip(simulator.kinds, tables.validity, strict=True):
        docs[f"{kind}_valid"] = (
            "flag",
            f"1 while a delivered {kind} is still valid ({int(validity)} {period}s from delivery)",
        )
        docs[f"since_{kind}"] = (
            f"{period}s / {SINCE_CAP}",
            f"min({period}s since the last delivered {kind}, {SINCE_CAP}) / {SINCE_CAP}: 1/{SINCE_CAP} "
            f"the {period} after a contact, 1 for {SINCE_CAP} or more, or never",
        )
    names = feature_names(simulator)
    if missing := [name for name in names if name not in docs]:
        raise ArtifactError(f"observation features without a description for the policy card: {missing}")
    low, high = feature_bounds(simulator)
    return [
        {
            "index": i,
            "name": name,
            "low": float(low[i]),
            "high": float(high[i]),
            "unit": docs[name][0],
            "computed": docs[name][1],
        }
        for i, name in enumerate(names)
    ]


def scenario_hash(scenario: Scenario) -> str:
    """sha256 of the resolved scenario as canonical JSON (module docstring)."""
    text = json.dumps(dataclasses.asdict(scenario), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def decay_model_hash(scenario: Scenario) -> str:
    """The ``content_sha256`` of the scenario's decay-model artifact (module docstring)."""
    artifact = scenario.model_config.artifact
    directory = DEFAULT_MODEL if artifact == PACKAGED else Path(artifact)
    return str(json.loads((directory / DECAY_CONFIG_FILE).read_text())["content_sha256"])


def write_card(body: dict[str, Any], directory: Path) -> Path:
    """The card with the sha256 of each ONNX file in ``directory`` and its own content hash."""
    card = {
        **body,
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "winback_version": winback.__version__,
        "files": {name: {"sha256": sha256_file(directory / name)} for name in (POLICY_FILE, STATE_FILE)},
    }
    path = directory / CARD_FILE
    path.write_text(json.dumps(with_hash(card), indent=2, sort_keys=True) + "\n")
    return path
