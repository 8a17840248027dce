"""onnxruntime sessions as every exported graph runs them (one thread, all graph optimisations), and
the names of the graphs' inputs and outputs: :mod:`winback.export.graphs` exports under these names,
the runtime feeds and reads by them."""

from __future__ import annotations

import onnxruntime as ort

BATCH = "batch"
"""Name of the dynamic first axis of every input and output."""
POLICY_INPUTS = ("observations", "masks")
POLICY_OUTPUTS = ("scores", "action", "probabilities")
STATE_INPUTS = (
    "hidden",
    "cell",
    "period",
    "first_period",
    "last_purchase",
    "frequency",
    "counts",
    "spend",
    "contacts",
)
STATE_OUTPUTS = (
    "next_hidden",
    "next_cell",
    "next_period",
    "next_last_purchase",
    "next_frequency",
    "interest",
)


def inference_session(model: bytes) -> ort.InferenceSession:
    """A CPU session of the serialised ONNX ``model`` that uses one thread (a server scales by processes)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
