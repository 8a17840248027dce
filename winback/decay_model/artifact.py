"""Decay-model artifacts: a directory with ``model.json`` and ``weights.safetensors``; no pickle.

``model.json`` holds the format version, the winback version that wrote it, the model name, its
config, the panel spec, the sha256 of the weights file and a content hash over all of these,
so a file edited by hand or truncated in transit is refused with a message saying which check
failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

import winback
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
        "weights_sha256": _sha256_file(weights_path),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    body["content_sha256"] = _content_hash(body)
    (out / CONFIG_FILE).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return out


def load_model(directory: str | Path) -> DecayModel:
    """Load a model saved by :func:`save_model`, refusing tampered or incompatible artifacts."""
    from winback.decay_model.registry import MODELS

    root = Path(directory)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ArtifactError(f"{root}: no {CONFIG_FILE}; not a winback decay-model artifact")
    try:
        body = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{config_path}: not valid JSON ({err})") from err
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ArtifactError(f"{config_path}: not a winback decay-model artifact (format != '{FORMAT}')")
    if body.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{config_path}: artifact format version {body.get('format_version')!r} is not supported "
            f"by winback {winback.__version__} (expected {FORMAT_VERSION}); refit the model or use the "
            f"winback version that wrote it ({body.get('winback_version')})"
        )
    claimed = body.pop("content_sha256", None)
    if claimed != _content_hash(body):
        raise ArtifactError(
            f"{config_path}: content hash mismatch; the file was modified after it was written"
        )
    weights_path = root / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ArtifactError(f"{root}: {WEIGHTS_FILE} is missing")
    if _sha256_file(weights_path) != body["weights_sha256"]:
        raise ArtifactError(f"{weights_path}: sha256 does not match {CONFIG_FILE}; the weights were modified")
    if body["model"] not in MODELS:
        raise ArtifactError(f"{config_path}: unknown model '{body['model']}' (known: {sorted(MODELS)})")
    spec = PanelSpec.from_json(body["panel_spec"])
    return MODELS[body["model"]].from_artifact(body["config"], load_file(str(weights_path)), spec)


def _content_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
