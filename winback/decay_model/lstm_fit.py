"""Fitting the LSTM decay model: the loss, the training loop with early stopping and weight averaging,
and its checkpoints (weights and optimiser as safetensors, the rest as JSON).

:meth:`winback.decay_model.lstm.LSTMDecayModel.fit` prepares the sequences (the inputs of
:mod:`winback.decay_model.lstm_period`) and the network; :func:`train_network` trains it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from winback.data.panel import PeriodPanel
from winback.errors import DataError
from winback.progress import progress_bar

if TYPE_CHECKING:
    from winback.data.shards import ShardedPanel
    from winback.decay_model.lstm import LSTMConfig, _Network


class FitSequences(NamedTuple):
    """Every user's periods from birth, left-aligned: what the network reads and predicts."""

    inputs: np.ndarray
    """(n, L, inputs) float32 inputs of each period (zero past the user's length)."""
    head_inputs: np.ndarray
    """(n, L, known ahead) float32 head inputs of the period each step predicts."""
    counts: np.ndarray
    """(n, L, E) float32 counts of the predicted period, -1 where there is none."""
    spend_per_purchase: np.ndarray
    """(n, L) float32 spend per purchase of the predicted period, 0 without a purchase."""
    lengths: np.ndarray
    """(n,) int64 periods of each user."""


def _nb_log_pmf(k: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    theta = log_theta.exp()
    log_mu_theta = torch.logaddexp(log_mu, log_theta)
    return (
        torch.lgamma(k + theta)
        - torch.lgamma(theta)
        - torch.lgamma(k + 1)
        + theta * (log_theta - log_mu_theta)
        + k * (log_mu - log_mu_theta)
    )


def hurdle_log_prob(
    counts: torch.Tensor, logit_active: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor
) -> torch.Tensor:
    active = counts > 0
    positive = nn.functional.logsigmoid(logit_active) + _nb_log_pmf(
        (counts - 1).clamp(min=0), log_mu, log_theta
    )
    return torch.where(active, positive, nn.functional.logsigmoid(-logit_active))


class Training(NamedTuple):
    """What :func:`train_network` reports besides the trained network."""

    history: list[dict[str, float]]
    """The history passed in followed by a row per epoch (``epoch``, ``train_loss``, ``val_loss``)."""
    best_val_loss: float
    """Held-out loss per target of the weights kept."""


Batch = tuple[torch.Tensor, ...]
"""The tensors of :class:`FitSequences` for some users."""


class SequenceSource(Protocol):
    """Where :func:`train_network` reads its users' sequences from: held-out users fixed by the seed."""

    def n_train_targets(self) -> float:
        """Training users with at least one next-period target (the epoch loss's denominator)."""
        ...

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        """One epoch of training users in batches, their order drawn from ``rng``."""
        ...

    def validation_batches(self, block_size: int) -> Iterator[Batch]:
        """The held-out users, in blocks."""
        ...


class InMemorySequences:
    """Every user's sequences in memory; ``validation_share`` of them held out by a draw of
    ``np.random.default_rng(seed)``, which then orders the epochs."""

    def __init__(self, sequences: FitSequences, validation_share: float, rng: np.random.Generator) -> None:
        is_validation = rng.random(len(sequences.lengths)) < validation_share
        has_target = (sequences.counts[..., 0] >= 0).any(axis=1)
        _check_validation_split(has_target, is_validation, validation_share)
        self.train_users, self.val_users = np.flatnonzero(~is_validation), np.flatnonzero(is_validation)
        self.tensors = tuple(torch.from_numpy(array) for array in sequences)

    def n_train_targets(self) -> float:
        return float(self.tensors[2][self.train_users].gt(-1).any(-1).sum())

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        order = rng.permutation(self.train_users)
        for start in range(0, len(order), batch_size):
            yield self.take(order[start : start + batch_size])

    def validation_batches(self, block_size: int) -> Iterator[Batch]:
        for start in range(0, len(self.val_users), block_size):
            yield self.take(self.val_users[start : start + block_size])

    def take(self, users: np.ndarray) -> Batch:
        return tuple(tensor[users] for tensor in self.tensors)


def held_out(user_ids: np.ndarray, seed: int, share: float) -> np.ndarray:
    """Whether each user is held out for early stopping: a seeded hash of the id below ``share``, so a
    user's role depends on the seed alone, never on the shards or workers that read it."""
    key = f"winback{seed % 10**9:09d}"
    hashes = pd.util.hash_array(np.asarray(user_ids, dtype=object), hash_key=key, categorize=False)
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share


class ShardSequences:
    """The users of a panel stored as user shards, one shard's sequences in memory at a time.

    Users are held out by :func:`held_out`; an epoch visits the shards in an order drawn from the
    training generator, and each shard's users in another.
    """

    def __init__(
        self,
        panel: ShardedPanel,
        until: int,
        sequences_of: Callable[[PeriodPanel], FitSequences],
        seed: int,
        validation_share: float,
    ) -> None:
        self.panel, self.until, self.sequences_of = panel, until, sequences_of
        self.seed, self.validation_share = seed, validation_share
        has_target, is_validation = [], []
        for index in range(panel.n_shards):
            first = panel.shard_column(index, "first_period")
            born = first < until
            has_target.append(first[born] < until - 1)
            is_validation.append(held_out(panel.shard_column(index, "user_id")[born], seed, validation_share))
        targets, validation = np.concatenate(has_target), np.concatenate(is_validation)
        _check_validation_split(targets, validation, validation_share)
        self._n_train_targets = float(np.count_nonzero(targets & ~validation))

    def n_train_targets(self) -> float:
        return self._n_train_targets

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        for index in rng.permutation(self.panel.n_shards):
            tensors = self._side(int(index), validation=False)
            if tensors is not None:
                yield from shuffled_batches(tensors, rng, batch_size)

    def validation_batches(self, block_size: int) -> Iterator[Batch]:
        for index in range(self.panel.n_shards):
            tensors = self._side(index, validation=True)
            if tensors is not None:
                yield from in_blocks(tensors, block_size)

    def _side(self, index: int, *, validation: bool) -> Batch | None:
        return side_of(
            self.panel.shard(index),
            self.until,
            self.sequences_of,
            self.seed,
            self.validation_share,
            validation,
        )


def side_of(
    panel: PeriodPanel,
    until: int,
    sequences_of: Callable[[PeriodPanel], FitSequences],
    seed: int,
    validation_share: float,
    validation: bool,
) -> Batch | None:
    """The sequences of the panel's users born before ``until`` that are held out (``validation``) or
    trained on (:func:`held_out`); ``None`` when there are none. Only that side's sequences are built."""
    panel = panel.select(panel.born_before(until))
    chosen = held_out(panel.user_ids, seed, validation_share) == validation
    if not chosen.any():
        return None
    return tuple(torch.from_numpy(array) for array in sequences_of(panel.select(chosen)))


def shuffled_batches(tensors: Batch, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
    """The users of ``tensors`` in an order drawn from ``rng``, ``batch_size`` at a time."""
    order = rng.permutation(len(tensors[0]))
    for start in range(0, len(order), batch_size):
        yield tuple(tensor[order[start : start + batch_size]] for tensor in tensors)


def in_blocks(tensors: Batch, block_size: int) -> Iterator[Batch]:
    """The users of ``tensors`` in order, ``block_size`` at a time."""
    for start in range(0, len(tensors[0]), block_size):
        yield tuple(tensor[start : start + block_size] for tensor in tensors)


def train_network(
    network: _Network,
    sequences: FitSequences | SequenceSource,
    config: LSTMConfig,
    *,
    seed: int,
    progress: bool,
    checkpoint_dir: str | Path | None,
    history: list[dict[str, float]],
    label: str = "fit lstm",
) -> Training:
    """Trains ``network`` in place (Adam, a seeded share of users held out for early stopping, the
    validated weights an exponential moving average) and leaves it in eval mode with the best
    validated weights (resumed from the checkpoint in ``checkpoint_dir`` when there is one).

    In-memory ``sequences`` hold out users by a draw that depends only on ``seed`` and the number of
    users (:class:`InMemorySequences`), so fits of the same users with different inputs are validated
    on the same users; a :class:`SequenceSource` holds out its own. Raises :class:`DataError` when the
    draw leaves no user with a next-period target on either side. ``label`` names the fit in the
    progress bar.
    """
    rng = np.random.default_rng(seed)
    if isinstance(sequences, FitSequences):
        sequences = InMemorySequences(sequences, config.validation_share, rng)
    averaged = copy.deepcopy(network)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    n_train_targets = sequences.n_train_targets()
    checkpoint = _Checkpoint(Path(checkpoint_dir)) if checkpoint_dir is not None else None
    start_epoch, stopping = 0, EarlyStopping(config.patience)
    if checkpoint is not None and checkpoint.exists():
        start_epoch, best_loss, stale, rng, best_weights = checkpoint.restore(network, averaged, optimizer)
        stopping = EarlyStopping(config.patience, best_loss, best_weights, stale)
        history = checkpoint.history()

    with progress_bar(enabled=progress) as bar:
        task = bar.add_task(label, total=config.max_epochs, completed=start_epoch)
        for epoch in range(start_epoch, config.max_epochs):
            if stopping.done:
                break
            network.train()
            train_loss = 0.0
            for batch in sequences.train_batches(rng, config.batch_size):
                loss, n_targets = _loss(network, batch, config.spend_weight)
                optimizer.zero_grad()
                (loss / n_targets).backward()
                nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                optimizer.step()
                _update_average(averaged, network, config.weight_average_decay)
                train_loss += loss.item()
            val_loss = _evaluate_loss(averaged, sequences, config)
            history.append(
                {"epoch": epoch + 1, "train_loss": train_loss / n_train_targets, "val_loss": val_loss}
            )
            stopping.observe(val_loss, averaged)
            if checkpoint is not None:
                checkpoint.save(
                    network,
                    averaged,
                    optimizer,
                    epoch + 1,
                    stopping.best_loss,
                    stopping.stale,
                    rng,
                    stopping.best_weights,
                    history,
                )
            bar.update(task, advance=1, description=f"{label}  val loss {val_loss:.4f}")
    if stopping.best_weights is not None:
        network.load_state_dict(stopping.best_weights)
    network.eval()
    return Training(history, stopping.best_loss)


@dataclass
class EarlyStopping:
    """The best validated weights of the averaged network so far, and the epochs since they were
    found: a fit stops after ``patience`` epochs without a gain (local and Ray fits alike)."""

    patience: int
    best_loss: float = math.inf
    best_weights: dict[str, torch.Tensor] | None = None
    stale: int = 0

    @property
    def done(self) -> bool:
        return self.stale >= self.patience

    def observe(self, val_loss: float, averaged: nn.Module) -> None:
        """An epoch's held-out loss of ``averaged``: its weights kept when the loss is a new best."""
        if val_loss < self.best_loss - 1e-5:
            self.best_loss, self.stale = val_loss, 0
            self.best_weights = {k: v.detach().clone() for k, v in averaged.state_dict().items()}
        else:
            self.stale += 1


def _check_validation_split(has_target: np.ndarray, is_validation: np.ndarray, share: float) -> None:
    """Both sides of the held-out draw need a user with a next-period target (users born in the last
    calibration period have none): one to learn from, one to stop early on."""
    n_train = int(np.count_nonzero(has_target & ~is_validation))
    n_val = int(np.count_nonzero(has_target & is_validation))
    if n_train and n_val:
        return
    raise DataError(
        f"the LSTM holds out a seeded {share:.0%} of users (LSTMConfig.validation_share) to stop "
        f"early on: of the {int(has_target.sum()):,} users with a period after their first one in "
        f"calibration, the draw leaves {n_train:,} to train on and {n_val:,} to validate on",
        expected="users seen in at least two calibration periods on both sides: a log with more users "
        f"({math.ceil(3 / share)} users hold out 3 on average), or a larger validation_share",
    )


def _loss(network: _Network, batch: Batch, spend_weight: float) -> tuple[torch.Tensor, float]:
    inputs, head_inputs, counts, spend_per_purchase, lengths = batch
    max_len = int(lengths.max())
    hidden, _ = network.lstm(inputs[:, :max_len])
    out = network.heads(hidden, head_inputs[:, :max_len])
    counts, spend_per_purchase = counts[:, :max_len], spend_per_purchase[:, :max_len]
    has_target = counts[..., 0] >= 0
    log_lik = hurdle_log_prob(counts.clamp(min=0), out["logit_active"], out["log_mu"], out["log_theta"])
    total = (log_lik.sum(-1) * has_target).sum()
    has_spend = spend_per_purchase > 0
    z = (spend_per_purchase.clamp(min=1e-6).log() - out["spend_mean"]) / out["spend_log_sd"].exp()
    spend_log_lik = -0.5 * z**2 - out["spend_log_sd"]
    total = total + spend_weight * (spend_log_lik * has_spend).sum()
    return -total, float(has_target.sum().clamp(min=1))


@torch.no_grad()
def _evaluate_loss(network: _Network, sequences: SequenceSource, config: LSTMConfig) -> float:
    network.eval()
    total, n = 0.0, 0.0
    for batch in sequences.validation_batches(config.block_size):
        loss, count = _loss(network, batch, config.spend_weight)
        total += float(loss)
        n += count
    return total / max(n, 1.0)


@torch.no_grad()
def _update_average(averaged: nn.Module, network: nn.Module, decay: float) -> None:
    for kept, current in zip(averaged.parameters(), network.parameters(), strict=True):
        kept.lerp_(current, 1.0 - decay)


def next_period_targets(panel: PeriodPanel, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets aligned with the sequences: step ``j`` predicts period ``first + j + 1``.

    Returns counts (n, L, E) float32 with -1 where there is no target, and spend per purchase
    (n, L) float32 with 0 where there was no purchase.
    """
    max_len = int(lengths.max())
    offsets = np.arange(max_len)
    target_period = np.minimum(panel.first_period[:, None] + offsets[None, :] + 1, panel.spec.n_periods - 1)
    has_target = offsets[None, :] + 1 < lengths[:, None]
    rows = np.arange(panel.n_users)[:, None]
    counts = panel.counts[rows, target_period].astype(np.float32)
    counts = np.where(has_target[..., None], counts, -1.0).astype(np.float32)
    purchases = panel.purchases[rows, target_period].astype(np.float32)
    spend = panel.spend[rows, target_period]
    per_purchase = np.where(has_target & (purchases > 0), spend / np.maximum(purchases, 1), 0.0)
    return counts, per_purchase.astype(np.float32)


class _Checkpoint:
    """Training state after an epoch: weights and optimiser as safetensors, the rest as JSON."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_file = directory / "checkpoint.json"
        self.tensor_file = directory / "checkpoint.safetensors"

    def exists(self) -> bool:
        return self.state_file.is_file() and self.tensor_file.is_file()

    def save(
        self,
        network: _Network,
        averaged: _Network,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        best_loss: float,
        stale: int,
        rng: np.random.Generator,
        best_weights: dict[str, torch.Tensor] | None,
        history: list[dict[str, float]],
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.contiguous() for k, v in network.state_dict().items()}
        tensors.update({f"averaged.{k}": v.contiguous() for k, v in averaged.state_dict().items()})
        if best_weights is not None:
            tensors.update({f"best.{k}": v.contiguous() for k, v in best_weights.items()})
        optim_state = optimizer.state_dict()
        for index, slots in optim_state["state"].items():
            for slot, value in slots.items():
                tensors[f"optim.{index}.{slot}"] = (
                    value.reshape(-1).contiguous() if value.dim() == 0 else value
                )
        save_file(tensors, str(self.tensor_file))
        state = {
            "epoch": epoch,
            "best_loss": best_loss,
            "stale": stale,
            "rng": rng.bit_generator.state,
            "param_groups": optim_state["param_groups"],
            "history": history,
        }
        self.state_file.write_text(json.dumps(state, default=int))

    def restore(self, network: _Network, averaged: _Network, optimizer: torch.optim.Optimizer):
        state = json.loads(self.state_file.read_text())
        tensors = load_file(str(self.tensor_file))
        network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        averaged.load_state_dict({k[9:]: v for k, v in tensors.items() if k.startswith("averaged.")})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, slot = key.split(".")
                slots.setdefault(int(index), {})[slot] = value.reshape(()) if slot == "step" else value
        optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        return state["epoch"], state["best_loss"], state["stale"], rng, best

    def history(self) -> list[dict[str, float]]:
        return list(json.loads(self.state_file.read_text())["history"])
