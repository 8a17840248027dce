"""Decay-model artifacts: a directory with ``model.json`` and ``weights.safetensors``; no pickle.

``model.json`` holds the format version, the winback version that wrote it, the model name, its
config, the panel spec, the sha256 of the weights file and a content hash over all of these,
so a file edited by hand or truncated in transit is refused with a message saying which check
failed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

import winback
from winback.checked_json import read_checked, sha256_file, with_hash
from winback.data.panel import PanelSpec
from winback.decay_model.base import DecayModel
from winback.errors import ArtifactError

FORMAT = "winback.decay_model"
FORMAT_VERSION = 1
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def save_model(model: DecayModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if missing); returns the directory."""
    spec = model._require_fitted()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(value) for name, value in model.tensors().items()}
    weights_path = out / WEIGHTS_FILE
    save_file(tensors, str(weights_path))
    body: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "winback_version": winback.__version__,
        "model": model.name,
        "config": model.config(),
        "panel_spec": spec.to_json(),
        "weights_sha256": sha256_file(weights_path),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (out / CONFIG_FILE).write_text(json.dumps(with_hash(body), indent=2, sort_keys=True) + "\n")
    return out


def load_model(directory: str | Path) -> DecayModel:
    """Load a model saved by :func:`save_model`, refusing tampered or incompatible artifacts."""
    from winback.decay_model.registry import MODELS

    root = Path(directory)
    config_path = root / CONFIG_FILE
    body = _read_config(root)
    weights_path = root / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ArtifactError(f"{root}: {WEIGHTS_FILE} is missing")
    if sha256_file(weights_path) != body["weights_sha256"]:
        raise ArtifactError(f"{weights_path}: sha256 does not match {CONFIG_FILE}; the weights were modified")
    if body["model"] not in MODELS:
        raise ArtifactError(f"{config_path}: unknown model '{body['model']}' (known: {sorted(MODELS)})")
    spec = PanelSpec.from_json(body["panel_spec"])
    return MODELS[body["model"]].from_artifact(body["config"], load_file(str(weights_path)), spec)


def load_spec(directory: str | Path) -> PanelSpec:
    """The layout of the panel the model in ``directory`` was fitted on, from its checked ``model.json``
    alone (no weights read, nothing of torch imported)."""
    return PanelSpec.from_json(_read_config(Path(directory))["panel_spec"])


def _read_config(root: Path) -> dict[str, Any]:
    """The checked body of ``root``'s ``model.json``."""
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ArtifactError(f"{root}: no {CONFIG_FILE}; not a winback decay-model artifact")
    return read_checked(
        config_path,
        kind=("format", FORMAT),
        version=("format_version", FORMAT_VERSION),
        what="a winback decay-model artifact",
        remedy="refit the model",
    )
