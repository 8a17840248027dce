"""A ground-truth world's log of any size, written a block of users at a time.

The world's users never interact, so the log of ``n`` users is the logs of independent worlds of
``block_users`` users each, written one after the other into one file (a Parquet row group or a
run of CSV rows per block): memory holds one block, whatever ``n`` is. Block ``b`` is the world
``replace(config, n_users=..., seed=s_b)`` under the logging seed ``t_b``, with ``s_b, t_b`` drawn
from ``np.random.SeedSequence([seed, b])``; its user ``i`` is the log's user ``b * block_users + i``.
A log of at most ``block_users`` users is one block with ``seed`` itself: exactly the log of
``GroundTruthWorld(config).write_log(world.start(), n_weeks, contact_rates, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from winback.data.io import EventLogWriter
from winback.data.synthetic.world import GroundTruthWorld, WorldConfig, WorldLog
from winback.errors import ConfigError
from winback.progress import progress_bar


@dataclass(frozen=True)
class WrittenLog:
    """What :func:`write_world_log` wrote."""

    path: Path
    n_users: int
    """Users with at least one row (a world's user born after the log's weeks has none)."""
    n_events: int
    origin: str
    end: str
    """ISO date after the log's last day."""
    blocks: int


def write_world_log(
    path: str | Path,
    config: WorldConfig,
    n_weeks: int,
    contact_rates: dict[str, float] | float,
    seed: int,
    *,
    block_users: int = 50_000,
    progress: bool = False,
) -> WrittenLog:
    """Write ``n_weeks`` weeks of ``config``'s world under a randomized logging policy (see
    :meth:`GroundTruthWorld.write_log`) to ``path`` (CSV, ``.csv.gz`` or Parquet), block by block."""
    if block_users < 1:
        raise ConfigError(f"block_users = {block_users} (allowed: >= 1)")
    n = config.n_users
    starts = range(0, n, block_users)
    width = len(str(n - 1))
    users_in_log = 0
    with EventLogWriter(path) as writer, progress_bar(enabled=progress) as bar:
        task = bar.add_task(f"writing {n:,} users' log", total=n)
        for block, first in enumerate(starts):
            size = min(block_users, n - first)
            log = _block_log(config, n_weeks, contact_rates, seed, block if len(starts) > 1 else None, size)
            if len(starts) > 1:
                log.log.events["user_id"] = _global_ids(log, first, width)
            writer.write(log.log.events)
            users_in_log += log.log.n_users
            bar.update(task, advance=size)
    return WrittenLog(Path(path), users_in_log, writer.rows, log.origin, log.end, len(starts))


def _block_log(
    config: WorldConfig,
    n_weeks: int,
    contact_rates: dict[str, float] | float,
    seed: int,
    block: int | None,
    n_users: int,
) -> WorldLog:
    """Block ``block``'s log (``None``: the log is one block, the world's own seeds)."""
    if block is None:
        world_seed, log_seed = config.seed, seed
    else:
        world_seed, log_seed = (int(s) for s in np.random.SeedSequence([seed, block]).generate_state(2))
    world = GroundTruthWorld(replace(config, n_users=n_users, seed=world_seed))
    return world.write_log(world.start(), n_weeks, contact_rates, seed=log_seed)


def _global_ids(log: WorldLog, first: int, width: int) -> pd.Series:
    """The block's user ids renamed to the log's (``u`` and the user's index in the whole log)."""
    events = log.log.events
    local = pd.Categorical(events["user_id"], categories=np.unique(events["user_id"].to_numpy()))
    codes = np.asarray([int(u[1:]) for u in local.categories]) + first
    names = np.asarray([f"u{i:0{width}d}" for i in codes], dtype=object)
    return pd.Series(names[local.codes], index=events.index, dtype="str")
