"""Running an exported policy with numpy and onnxruntime only: no torch, SB3, numba or simulator.

All that deciding from an export directory (``winback export --out``) needs; ``winback serve``
imports nothing else of :mod:`winback.export` (tests/test_serve.py checks that no training module
is loaded):

- :mod:`~winback.export.runtime.card`: the directory's files and the card's schema, checked on load;
- :mod:`~winback.export.runtime.session`: onnxruntime sessions, the graphs' input and output names;
- :mod:`~winback.export.runtime.masks`: the card's mask rules on observation features;
- :mod:`~winback.export.runtime.state`: each user's stored state, advanced by ``state_update.onnx``;
- :mod:`~winback.export.runtime.records`: each user's contact records (fatigue, coupon validity,
  periods since each contact), kept from the contacts received;
- :mod:`~winback.export.runtime.exploration`: exploring decisions with exact propensities;
- :mod:`~winback.export.runtime.artifact`: :class:`ExportedArtifact`, all of it loaded from a directory.
"""

from winback.export.runtime.artifact import Decision, ExportedArtifact
from winback.export.runtime.exploration import Exploration
from winback.export.runtime.records import ContactRecords, ContactRules

__all__ = ["ContactRecords", "ContactRules", "Decision", "Exploration", "ExportedArtifact"]
