"""The compiled simulator step's cost per user-period, for comparing two checkouts on a noisy machine.

Times ``Simulator.step`` of the packaged CDNOW model with every action ``none``, one torch and one BLAS
thread: a single user (what a single-user environment pays per ``step()``) and 20,480 users in
blocks of 1,024 (the batched step). Each figure is the *minimum* over ``--repeats`` timed calls after
warm-up steps: on a shared virtual machine (CPU steal) the minimum is the stable statistic, medians
of separate runs drift by 30%. Run it from each checkout in turn, alternating, so both see the same
machine:

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=/path/to/other/checkout python benchmarks/step_cost.py
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/step_cost.py
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import winback
from winback.data.cdnow import load_cdnow_panel
from winback.envs.defaults import default_model
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.population import warm_start


def fastest(call: Callable[[], object], repeats: int, per_call: int) -> float:
    """Seconds of the fastest of ``repeats`` timings of ``per_call`` calls, divided by ``per_call``."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(per_call):
            call()
        best = min(best, (time.perf_counter() - started) / per_call)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    simulator = Simulator(default_model(), SimulatorConfig(threads=1), seed=0)
    population = warm_start(simulator, load_cdnow_panel("cdnow"), until=39)
    source = Path(winback.__file__).parent.parent
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    rows = []
    for n, per_call in ((1, 2000), (20_480, 1)):
        state = population.take(np.arange(n)).copy()
        actions = np.zeros(n, dtype=np.int64)
        for _ in range(5):
            simulator.step(state, actions)
        seconds = fastest(lambda: simulator.step(state, actions), args.repeats, per_call)  # noqa: B023
        rows.append(f"| {n:,} | {seconds * 1e6:.2f} us | {seconds / n * 1e9:.0f} ns |")
    print(f"winback from {source} (commit {commit.stdout.strip()})")
    print("| users | fastest step | per user-period |\n|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
