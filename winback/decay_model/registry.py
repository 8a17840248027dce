"""Name -> class of every decay model, used by the CLI and the artifact loader."""

from __future__ import annotations

from winback.decay_model.base import DecayModel

MODELS: dict[str, type[DecayModel]] = {}
