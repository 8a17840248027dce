"""Several runs of one training config, side by side; the run best on validation users stands for them.

An RL agent's quality moves with its seed: on the default scenario, five MaskablePPO seeds trained
for 600k timesteps ended up to 2.4 $/user apart on evaluation users, one of them level with the
best tuned rule (expected reward; with the drawn reward two of five lost to it:
``benchmarks/RESULTS.md``). It moves with its start too: where contacts pay little, runs started
from the tuned rule (``imitate``) end above the rule and runs from random weights below it, and
where they pay much, the reverse can hold (``benchmarks/RESULTS.md``, "Your own users"). Training a
few seeds, from each start, and keeping the best on validation users is the remedy, and a machine
with a core per run trains them in the time of one. A directory of such runs holds:

- ``seed-N/`` for every seed started from random weights, ``seed-N-<rule>/`` for every seed started
  from a rule: a complete run of :func:`~winback.agents.training.train`;
- ``seeds.json``: the shared config, the seeds and starts, every run's best validation value and
  the ``selected`` run (``null`` until every run has finished);
- ``learning_curve.png``: every run's validation curve.

Whatever loads a run (``winback bench``, ``export``, ``whatif``) takes the directory and loads the
selected run (:func:`~winback.agents.sb3.selected_run`). Selection sees validation users only, never
the evaluation users a benchmark reports on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from winback.agents.sb3 import SEEDS_FILE, seeds_record
from winback.agents.training import TrainConfig, train
from winback.agents.training.curves import read_curve
from winback.errors import ConfigError
from winback.progress import progress_bar
from winback.simulator.threads import one_thread_per_process

KIND = "winback training seeds"
POLL_SECONDS = 2.0
"""How often the progress bar reads the runs' learning curves."""


@dataclass(frozen=True)
class SeedRun:
    """One run, as ``seeds.json`` records it."""

    seed: int
    start: str
    """The rule the run was cloned from (``TrainConfig.imitate``; ``""``: random weights)."""
    run: str
    """The run's directory inside the directory of the seeds."""
    best_validation_net_value: float
    best_timesteps: int
    timesteps: int
    wall_seconds: float
    """The run's training time (over every resumed part of it)."""


@dataclass(frozen=True)
class SeedsResult:
    out_dir: Path
    runs: tuple[SeedRun, ...]
    selected: SeedRun
    """The run with the highest best validation net value per user (the first run on a tie)."""
    wall_seconds: float
    """Wall time of this call, every run included."""


def start_label(start: str) -> str:
    return f"from {start}" if start else "from random weights"


def seed_run_name(seed: int, start: str) -> str:
    return f"seed-{seed}-{start}" if start else f"seed-{seed}"


def train_seeds(
    config: TrainConfig,
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    workers: int,
    starts: Sequence[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> SeedsResult:
    """Train ``config`` once per seed and start (``config.seed`` and ``config.imitate`` are replaced;
    ``starts`` defaults to ``config.imitate`` alone), ``workers`` runs at a time in their own
    processes, then select the run that is best on validation users.

    ``resume`` continues every run from its latest checkpoint (the seeds and starts must be the
    directory's). Each run is exactly the run ``train`` gives for its seed and start alone.
    """
    started = time.perf_counter()
    out, seeds = Path(out_dir), list(seeds)
    starts = [config.imitate] if starts is None else list(starts)
    if not seeds or len(set(seeds)) != len(seeds) or not starts or len(set(starts)) != len(starts):
        raise ConfigError(f"seeds {seeds}, starts {starts}: give different seeds and different starts")
    if len(seeds) * len(starts) < 2:
        raise ConfigError(f"seeds {seeds}, starts {starts}: give two or more runs (one trains a plain run)")
    if workers < 1:
        raise ConfigError(f"workers = {workers} (allowed: >= 1)")
    configs = [replace(config, seed=seed, imitate=start) for seed in seeds for start in starts]
    _begin(config, seeds, starts, out, resume)
    dirs = [out / seed_run_name(c.seed, c.imitate) for c in configs]
    if workers == 1:
        runs = [_train_one(c, d, resume, progress) for c, d in zip(configs, dirs, strict=True)]
    else:
        runs = _train_in_processes(configs, dirs, resume, min(workers, len(configs)), progress)
    selected = max(runs, key=lambda run: run.best_validation_net_value)
    wall_seconds = time.perf_counter() - started
    _write_record(out, config, seeds, starts, runs, selected, wall_seconds)
    _plot_curves(out, config, runs, selected)
    return SeedsResult(out, tuple(runs), selected, wall_seconds)


def stored_seeds(out_dir: str | Path) -> tuple[TrainConfig, list[int], list[str]] | None:
    """The config, seeds and starts of the directory of runs in ``out_dir`` (``None`` if it holds none)."""
    body, path = seeds_record(out_dir), Path(out_dir) / SEEDS_FILE
    if body is None:
        return None
    if not isinstance(body, dict) or body.get("kind") != KIND:
        raise ConfigError(f"{path}: not a record of winback training seeds (kind != '{KIND}')")
    config = body.get("config")
    seeds = body.get("seeds")
    # Records written before runs had starts trained every seed from the config's one start.
    starts = body.get("starts", [config.get("imitate", "")] if isinstance(config, dict) else None)
    if not (
        isinstance(config, dict)
        and isinstance(seeds, list)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        and isinstance(starts, list)
        and all(isinstance(s, str) for s in starts)
    ):
        raise ConfigError(
            f"{path}: expected 'config' (an object), 'seeds' (a list of integers) and 'starts' (a list of "
            "strings)"
        )
    return TrainConfig.from_dict(config, source=str(path)), seeds, starts


def _begin(config: TrainConfig, seeds: list[int], starts: list[str], out: Path, resume: bool) -> None:
    """Check ``out`` against the request; a new directory gets its ``seeds.json`` with nothing selected."""
    path = out / SEEDS_FILE
    if resume:
        stored = stored_seeds(out)
        if stored is None:
            raise ConfigError(f"{out} holds no seeds' runs to resume (no {SEEDS_FILE})")
        if stored[1:] != (seeds, starts):
            raise ConfigError(
                f"cannot resume {out} with seeds {seeds} and starts {starts}: its runs are of seeds "
                f"{stored[1]} and starts {stored[2]}"
            )
        return
    if path.exists() or (out / "config.json").exists():
        raise ConfigError(f"{out} already holds a training run: resume it or choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    _write_record(out, config, seeds, starts, [], None, None)


def _train_one(config: TrainConfig, out: Path, resume: bool, progress: bool) -> SeedRun:
    result = train(config, out, resume=resume, progress=progress)
    return SeedRun(
        seed=config.seed,
        start=config.imitate,
        run=out.name,
        best_validation_net_value=result.best_value,
        best_timesteps=result.best_timesteps,
        timesteps=result.timesteps,
        wall_seconds=round(result.wall_seconds, 1),
    )


def _train_in_processes(
    configs: list[TrainConfig], dirs: list[Path], resume: bool, workers: int, progress: bool
) -> list[SeedRun]:
    """The runs in ``workers`` spawned processes; the bar follows the timesteps of their curves.

    Runs from a rule start first: tuning and cloning the rule come before their training, so they
    take longest, and started last one of them would be left running alone on one core."""
    total = sum(config.total_timesteps for config in configs)
    context = get_context("spawn")
    longest_first = sorted(range(len(configs)), key=lambda i: not configs[i].imitate)
    with (
        ProcessPoolExecutor(workers, mp_context=context, initializer=one_thread_per_process) as pool,
        progress_bar(enabled=progress) as bar,
    ):
        task = bar.add_task(f"training {len(configs)} runs, {workers} at a time", total=total)
        futures = {i: pool.submit(_train_one, configs[i], dirs[i], resume, False) for i in longest_first}
        pending = set(futures.values())
        while pending:
            _, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            bar.update(task, completed=sum(_timesteps_done(d) for d in dirs))
        return [futures[i].result() for i in range(len(configs))]


def _timesteps_done(run: Path) -> int:
    """Timesteps of the run's last validation (0 before its first)."""
    if not (run / "learning_curve.csv").is_file():
        return 0
    rows = read_curve(run)
    return rows[-1][0] if rows else 0


def _write_record(
    out: Path,
    config: TrainConfig,
    seeds: list[int],
    starts: list[str],
    runs: list[SeedRun],
    selected: SeedRun | None,
    wall_seconds: float | None,
) -> None:
    shared = {key: value for key, value in config.to_dict().items() if key not in ("seed", "imitate")}
    body: dict[str, Any] = {
        "kind": KIND,
        "config": shared,
        "seeds": seeds,
        "starts": starts,
        "selection": "the highest best validation net value per user",
        "selected": selected.run if selected else None,
        "runs": [asdict(run) for run in runs],
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
    }
    (out / SEEDS_FILE).write_text(json.dumps(body, indent=2) + "\n")


def _plot_curves(out: Path, config: TrainConfig, runs: list[SeedRun], selected: SeedRun) -> None:
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    for run in runs:
        rows = read_curve(out / run.run)
        chosen = run is selected
        label = f"seed {run.seed}, {start_label(run.start)}: best {run.best_validation_net_value:.2f}"
        axes.plot(
            [r[0] for r in rows],
            [r[2] for r in rows],
            marker="o",
            markersize=3,
            linewidth=2.2 if chosen else 1.0,
            label=label + (" (selected)" if chosen else ""),
        )
    axes.set_xlabel("timesteps (user-periods)")
    axes.set_ylabel("validation net value per user ($)")
    axes.set_title(f"{config.algo} on {Path(config.scenario).name}, {len(runs)} runs")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(out / "learning_curve.png", dpi=120)
