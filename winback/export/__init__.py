"""Exported policies: ONNX graphs and a JSON policy card, no pickle (``winback export``, ``winback serve``).

Two sides, so that deploying an export needs neither torch nor the training stack:

- writing (torch, SB3, the simulator): :func:`winback.export.exporter.export_policy` writes an export
  directory from a training run, with the graphs of :mod:`~winback.export.graphs` and the card of
  :mod:`~winback.export.card`; :class:`winback.export.policy.ExportedPolicy` runs an export as a
  :class:`~winback.agents.base.Policy` in the benchmark and the what-if engine, and
  :func:`winback.export.policy.load_policy_dir` loads an export directory or a training run;
- running (numpy, onnxruntime): :mod:`winback.export.runtime`, all that ``winback serve`` imports.

This module imports neither side: importing the runtime loads nothing of the writing side.
"""
