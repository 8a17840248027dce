"""The two exported computations as torch modules, and their export to ONNX.

:class:`PolicyGraph` is a trained SB3 policy network with the observation normalisation folded in
as constants: ``observations`` (n, F) float32 raw features and ``masks`` (n, A) bool in, ``scores``
(n, A) float32 (``-inf`` where masked), ``action`` (n,) int64 and ``probabilities`` (n, A) float32
out (:meth:`PolicyGraph.describe_outputs`).

:class:`StateUpdateGraph` is one period of the LSTM decay model (:meth:`LSTMDecayModel.advance`
followed by :meth:`LSTMDecayModel.forecast` with no contact): a user's stored state and the raw
activity of the period that has just ended in, the next state and the interest of the coming period
out. Contacts of kinds the scenario's simulator does not drive through the decay model (whose
effect is a prior lift) are zeroed, as the simulator feeds them. The input features (``log1p``
counts, tenure, recency, the BG/NBD posterior summaries, the calendar) are computed in the graph
by the formulas every other path runs (:mod:`winback.decay_model.lstm_period`), so production
needs only counts.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnx
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from winback.agents.sb3 import ObservationNormalization
from winback.decay_model.lstm import LSTMDecayModel
from winback.decay_model.lstm_period import ColumnSink, torch_formulas
from winback.errors import ArtifactError
from winback.export.runtime.session import BATCH


class PolicyGraph(nn.Module):
    """``clip((obs - mean) / sqrt(var + eps))`` in float64 as SB3 computes it, the network, then masks.

    Actor-critic policies score actions by their log-probabilities (log-softmax of the logits over
    every action, as ``Categorical`` normalises them, the masks not applied); DQN by its Q-values.
    Masked scores are ``-inf``. ``probabilities`` are the policy's distribution over the allowed
    actions: the softmax of the masked scores (MaskablePPO's masked distribution), or for DQN one-hot
    on ``action``, the greedy policy's.
    """

    def __init__(self, model: BaseAlgorithm, normalization: ObservationNormalization) -> None:
        super().__init__()
        policy = model.policy
        if isinstance(model, RecurrentPPO):
            raise ArtifactError(
                "recurrent_ppo policies are not exported: their LSTM state per user would have to be "
                "stored and passed with every decision; export a ppo, a2c, dqn or maskable_ppo run"
            )
        if isinstance(model, DQN):
            self.layers = nn.Sequential(policy.q_net.features_extractor, policy.q_net.q_net)
            self.log_softmax = False
        else:
            self.layers = nn.Sequential(
                policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net
            )
            self.log_softmax = True
        self.n_actions = int(model.action_space.n)
        self.normalize = normalization.enabled
        self.clip = float(normalization.clip)
        self.register_buffer("mean", torch.from_numpy(np.asarray(normalization.mean, dtype=np.float64)))
        scale = np.sqrt(np.asarray(normalization.var, dtype=np.float64) + normalization.epsilon)
        self.register_buffer("scale", torch.from_numpy(scale))

    def forward(
        self, observations: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = observations
        if self.normalize:
            x = ((x.double() - self.mean) / self.scale).clamp(-self.clip, self.clip).float()
        scores = self.layers(x)
        if self.log_softmax:
            scores = torch.log_softmax(scores, dim=-1)
        scores = torch.where(masks, scores, torch.full_like(scores, -math.inf))
        action = scores.argmax(dim=-1)
        if self.log_softmax:
            probabilities = torch.softmax(scores, dim=-1)
        else:
            probabilities = nn.functional.one_hot(action, self.n_actions).float()
        return scores, action, probabilities

    def describe_outputs(self) -> dict[str, str]:
        """The card's statement of each output (``policy.outputs``), for this policy's kind."""
        shape = f"(batch, {self.n_actions}) float32"
        if self.log_softmax:
            scores = (
                "log-probabilities of the policy's softmax over all actions, computed without the masks "
                "(log-softmax of the logits), then -inf where masked: exp(scores) sums to less than 1 "
                "over the allowed actions when any action is masked"
            )
            probabilities = (
                "the policy's distribution over the allowed actions: the softmax of the logits over the "
                "allowed actions only, i.e. exp(scores) / (sum of exp(scores) over the allowed actions); "
                "0 where masked, each row sums to 1"
            )
        else:
            scores = "Q-values (the network's estimate of each action's discounted return); -inf where masked"
            probabilities = "one-hot on action: a Q-network's greedy policy puts probability 1 on it"
        return {
            "scores": f"{shape}: {scores}",
            "action": "(batch,) int64: index into actions of the highest score (the first on ties), the "
            "deterministic decision",
            "probabilities": f"{shape}: {probabilities}. action is the mode of probabilities, not a "
            "draw from them: probabilities[action] is the propensity a deployment drawing from this "
            "policy would log; the deterministic decision itself has propensity 1",
        }


class StateUpdateGraph(nn.Module):
    """One period of an :class:`LSTMDecayModel` for a batch of users (module docstring).

    The inputs are computed by the model's own formulas (:mod:`winback.decay_model.lstm_period`,
    traced with torch standing in for numpy) and the cell and head use its kernel's packed weights.
    """

    def __init__(self, model: LSTMDecayModel, learned_contacts: Collection[str]) -> None:
        super().__init__()
        if not isinstance(model, LSTMDecayModel):
            raise ArtifactError(
                f"state_update.onnx exports the LSTM decay model only; the scenario's model is '{model.name}'"
            )
        spec = model._require_fitted()
        kernel = model._require_kernel()
        self.layout = model.input_layout()
        self.formulas = torch_formulas()
        self.hidden_size = kernel.hidden_size
        self.n_event_types = kernel.n_event_types
        # Contacts of kinds whose effect the simulator takes from its priors never reach the decay model.
        learned = [kind in learned_contacts for kind in spec.interventions]
        self.register_buffer("contact_mask", torch.tensor(learned, dtype=torch.int64))
        for name in (
            "lstm_weight",
            "lstm_bias",
            "head_weight_1",
            "head_bias_1",
            "head_weight_2",
            "head_bias_2",
        ):
            self.register_buffer(name, torch.from_numpy(getattr(kernel, name).copy()))

    def forward(
        self,
        hidden: torch.Tensor,
        cell: torch.Tensor,
        period: torch.Tensor,
        first_period: torch.Tensor,
        last_purchase: torch.Tensor,
        frequency: torch.Tensor,
        counts: torch.Tensor,
        spend: torch.Tensor,
        contacts: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        purchases = counts[:, -1]
        contacts = contacts * self.contact_mask
        last_purchase = torch.where(purchases > 0, period, last_purchase)
        frequency = frequency + purchases.double()
        inputs = ColumnSink()
        self.formulas.write_step_inputs(
            inputs, self.layout, period, first_period, counts.T, spend, contacts.T, last_purchase, frequency
        )
        gates = torch.cat([inputs.stack(), hidden], dim=1) @ self.lstm_weight + self.lstm_bias
        h = self.hidden_size
        next_cell = torch.sigmoid(gates[:, h : 2 * h]) * cell + torch.sigmoid(gates[:, :h]) * torch.tanh(
            gates[:, 2 * h : 3 * h]
        )
        next_hidden = torch.sigmoid(gates[:, 3 * h :]) * torch.tanh(next_cell)
        next_period = period + 1
        known = ColumnSink()
        self.formulas.write_known_ahead(
            known, 0, self.layout, next_period, first_period, torch.zeros_like(contacts).T
        )
        layer = torch.relu(
            torch.cat([next_hidden, known.stack()], dim=1) @ self.head_weight_1 + self.head_bias_1
        )
        out = layer @ self.head_weight_2 + self.head_bias_2
        interest = torch.sigmoid(out[:, self.n_event_types - 1])
        return next_hidden, next_cell, next_period, last_purchase, frequency, interest


def export_onnx(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    path: Path,
) -> None:
    """``module`` to an ONNX file with the dynamo exporter; the first axis of every input and output is
    the dynamic ``batch`` axis. Weights are embedded (no external data file)."""
    module = module.eval()
    dynamic = tuple({0: torch.export.Dim.DYNAMIC} for _ in example)
    exporter_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # torch.export's own use of a deprecated pytree API (torch 2.13).
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            program = torch.onnx.export(
                module,
                example,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    batch_symbols = {value.type.tensor_type.shape.dim[0].dim_param for value in proto.graph.input} - {""}
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in batch_symbols:
                dim.dim_param = BATCH
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path))
