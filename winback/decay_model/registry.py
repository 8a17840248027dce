"""Name -> class of every decay model, used by the CLI and the artifact loader."""

from __future__ import annotations

from winback.decay_model.base import DecayModel
from winback.decay_model.bgnbd import BGNBDModel
from winback.decay_model.heuristic import ExponentialDecayModel, RecurrenceDecayModel
from winback.decay_model.lstm import LSTMDecayModel

MODELS: dict[str, type[DecayModel]] = {
    model.name: model for model in (LSTMDecayModel, BGNBDModel, ExponentialDecayModel, RecurrenceDecayModel)
}
