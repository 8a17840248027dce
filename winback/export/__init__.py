"""Exported policies: ONNX graphs and a JSON policy card, no pickle (``winback export``).

:func:`winback.export.exporter.export_policy` writes an export directory from a training run (it runs
the benchmark for the card, so it lives in its own module, imported where needed);
:class:`ExportedPolicy` loads one (checking its hashes and schema) and runs it as a
:class:`~winback.agents.base.Policy`; :func:`load_policy_dir` loads an export directory or a
training run, whichever ``path`` holds.
"""

from winback.export.policy import ExportedPolicy, load_policy_dir

__all__ = ["ExportedPolicy", "load_policy_dir"]
