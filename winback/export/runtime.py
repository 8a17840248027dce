"""onnxruntime sessions as every exported graph runs them: one thread, all graph optimisations."""

from __future__ import annotations

import onnxruntime as ort


def inference_session(model: bytes) -> ort.InferenceSession:
    """A CPU session of the serialised ONNX ``model`` that uses one thread (a server scales by processes)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
