"""Slow checks of the LSTM's learning (``make test-slow``); the full-size figures are in benchmarks/."""

from __future__ import annotations

import pytest
import torch

from winback.data.panel import build_panel
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.evaluate import estimate_contact_effects
from winback.decay_model.lstm import LSTMDecayModel


@pytest.mark.slow
def test_lstm_recovers_randomized_contact_effects() -> None:
    """Fitted on one randomized log, its effect on the treated matches a fresh log's truth within 25%."""
    torch.set_num_threads(1)
    train = generate_synthetic_log(SyntheticConfig(n_users=6000, seed=10))
    test = generate_synthetic_log(SyntheticConfig(n_users=6000, seed=11))
    panel = build_panel(train.log)
    model = LSTMDecayModel().fit(panel, until=panel.spec.n_periods, seed=0)
    estimates = estimate_contact_effects(model, build_panel(test.log))
    for kind, truth in test.true_effects.items():
        assert estimates[kind]["effect"] == pytest.approx(truth, rel=0.25), kind
