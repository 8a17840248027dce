"""Training the LSTM with Ray Train: data-parallel CPU workers (gloo) reading a panel's shards through
Ray Data, for :meth:`winback.decay_model.lstm.LSTMDecayModel.fit_shards` with a ``RayBackend``.

The shards are read once into Ray's object store (``materialize``: it spills to disk beyond its
memory), and each epoch streams them to the workers, split between them.

Every worker builds the same network from the seed and holds an identical copy of it all along:
after each worker's backward pass, one all-reduce sums the gradients and the number of workers that
had a batch, every worker steps Adam with the mean, and a worker whose users ran out contributes
zeros until none has a batch left (so uneven splits never hang a step). Users are held out exactly as
in a local fit (:func:`~winback.decay_model.lstm_fit.held_out`); the held-out loss is summed over
workers, so every worker takes the same early-stopping decision. The other ingredients are the local
fit's: the loss, gradient clipping, the exponential moving average that is validated and kept, the
patience. Rank 0 returns the kept weights as a Ray Train checkpoint (safetensors + JSON).

What differs from a local fit: a step averages the gradients of the workers' shares of the batch
(``batch_size // workers`` users each, so the step sees as many users as a local one), and a worker's
batches never mix users of two Ray Data blocks.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from winback.data.shards import ShardedPanel, panel_of_rows
from winback.decay_model.lstm_fit import (
    Batch,
    EarlyStopping,
    Training,
    _loss,
    _update_average,
    in_blocks,
    shuffled_batches,
    side_of,
)
from winback.errors import WinbackError
from winback.progress import progress_bar

if TYPE_CHECKING:
    from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel, RayBackend, TrainCandidate, _Network

BLOCK_USERS = 4096
"""Users per Ray Data batch a worker turns into sequences."""
_WEIGHTS, _HISTORY = "network.safetensors", "history.json"


def ray_training(
    model: LSTMDecayModel, panel: ShardedPanel, until: int, seed: int, backend: RayBackend, progress: bool
) -> TrainCandidate:
    """A trainer of candidate networks on Ray (see the module docstring)."""

    def train(network: _Network, checkpoint_dir: str | Path | None, label: str) -> Training:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        if not ray.is_initialized():
            local = {"num_cpus": backend.workers + 1} if backend.address is None else {}
            ray.init(address=backend.address, include_dashboard=False, log_to_driver=False, **local)
        files = [str(panel.path / name) for name in panel.shard_files]
        with (
            tempfile.TemporaryDirectory(prefix="winback-ray-") as storage,
            progress_bar(enabled=progress) as bar,
        ):
            bar.add_task(f"{label} on {backend.workers} Ray workers", total=None)
            trainer = TorchTrainer(
                _train_worker,
                train_loop_config={"model": model, "until": until, "seed": seed},
                scaling_config=ScalingConfig(num_workers=backend.workers, use_gpu=False),
                datasets={"train": ray.data.read_parquet(files).materialize()},
                run_config=RunConfig(name="winback-lstm", storage_path=storage),
            )
            try:
                result = trainer.fit()
            except Exception as err:  # Ray wraps a worker's failure; say what failed, keep the cause
                raise WinbackError(f"the LSTM fit on Ray failed: {err}") from err
            if result.checkpoint is None:
                raise WinbackError("the LSTM fit on Ray ended without a checkpoint of its weights")
            with result.checkpoint.as_directory() as directory:
                network.load_state_dict(load_file(str(Path(directory) / _WEIGHTS)))
                history = json.loads((Path(directory) / _HISTORY).read_text())
        network.eval()
        best = min((row["val_loss"] for row in history), default=math.inf)
        return Training([*model.history, *history], best)

    return train


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the local fit's loop, in step with the other workers."""
    import ray.train
    import torch.distributed as dist

    torch.set_num_threads(1)
    model: LSTMDecayModel = config["model"]
    until, seed = int(config["until"]), int(config["seed"])
    cfg = model.cfg
    network = model._build_network(model.spec, torch.Generator().manual_seed(seed))
    averaged = copy.deepcopy(network)
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.learning_rate)
    context = ray.train.get_context()
    data = ray.train.get_dataset_shard("train")
    rng = np.random.default_rng([seed, context.get_world_rank()])
    # The config's batch is the global one: each worker's share of it, so a step sees as many users as
    # a local step and an epoch takes as many steps.
    batch_size = max(1, cfg.batch_size // context.get_world_size())
    history: list[dict[str, float]] = []
    stopping = EarlyStopping(cfg.patience)

    def sides(validation: bool) -> Iterator[Batch]:
        """Each Ray Data batch of users as the tensors of its held-out or trained-on users."""
        for rows in data.iter_batches(batch_size=BLOCK_USERS, batch_format="pyarrow"):
            tensors = side_of(
                panel_of_rows(rows, model.spec),
                until,
                lambda panel: model._fit_sequences(panel, until),
                seed,
                cfg.validation_share,
                validation,
            )
            if tensors is not None:
                yield tensors

    def train_batches() -> Iterator[Batch]:
        for tensors in sides(validation=False):
            yield from shuffled_batches(tensors, rng, batch_size)

    for epoch in range(cfg.max_epochs):
        if stopping.done:
            break
        network.train()
        train_loss, train_targets = _train_epoch(network, averaged, optimizer, train_batches(), cfg)
        averaged.eval()
        val_loss, val_targets = 0.0, 0.0
        with torch.no_grad():
            for tensors in sides(validation=True):
                for batch in in_blocks(tensors, cfg.block_size):
                    loss, count = _loss(averaged, batch, cfg.spend_weight)
                    val_loss, val_targets = val_loss + float(loss), val_targets + count
        totals = torch.tensor([train_loss, train_targets, val_loss, val_targets], dtype=torch.float64)
        dist.all_reduce(totals)
        row = {
            "epoch": epoch + 1,
            "train_loss": float(totals[0] / max(float(totals[1]), 1.0)),
            "val_loss": float(totals[2] / max(float(totals[3]), 1.0)),
        }
        history.append(row)
        stopping.observe(row["val_loss"], averaged)
        ray.train.report(row)
    final = {"epochs": len(history), "best_val_loss": stopping.best_loss}
    if context.get_world_rank() != 0 or stopping.best_weights is None:
        ray.train.report(final)
        return
    with tempfile.TemporaryDirectory() as directory:
        save_file(
            {k: v.contiguous() for k, v in stopping.best_weights.items()}, str(Path(directory) / _WEIGHTS)
        )
        (Path(directory) / _HISTORY).write_text(json.dumps(history))
        ray.train.report(final, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _train_epoch(
    network: _Network,
    averaged: _Network,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Batch],
    cfg: LSTMConfig,
) -> tuple[float, float]:
    """One epoch of steps in step with the other workers; this worker's summed loss and targets."""
    import torch.distributed as dist

    parameters = list(network.parameters())
    sizes = [p.numel() for p in parameters]
    total_loss, total_targets = 0.0, 0.0
    while True:
        batch = next(batches, None)
        optimizer.zero_grad()
        if batch is not None:
            loss, n_targets = _loss(network, batch, cfg.spend_weight)
            (loss / n_targets).backward()
            total_loss, total_targets = total_loss + loss.item(), total_targets + n_targets
        gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([*(g.reshape(-1) for g in gradients), torch.tensor([float(batch is not None)])])
        dist.all_reduce(flat)
        contributors = float(flat[-1])
        if contributors == 0:
            return total_loss, total_targets
        for parameter, gradient in zip(parameters, torch.split(flat[:-1] / contributors, sizes), strict=True):
            parameter.grad = gradient.view_as(parameter).clone()
        nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        _update_average(averaged, network, cfg.weight_average_decay)
