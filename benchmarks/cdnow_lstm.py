"""Shared by the simulator benchmarks (not a script): the LSTM fitted on CDNOW master, the machine, tables.

``simulator_fidelity.py``, ``simulator_ab_test.py`` and ``simulator_speed.py`` import this module from
their own directory (``python benchmarks/<script>.py`` puts ``benchmarks/`` on the path).
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import PeriodPanel
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel

CALIBRATION_WEEKS = 39
"""CDNOW's standard calibration period (Fader, Hardie & Lee 2005): weeks 0-38; the holdout is 39-77."""


@dataclass(frozen=True)
class FittedLSTM:
    panel: PeriodPanel
    """CDNOW master, all 78 weeks (every customer is born in weeks 0-12)."""
    model: LSTMDecayModel
    fit_seconds: float
    config: LSTMConfig


def fit_cdnow_lstm(config: LSTMConfig | None = None, *, seed: int, progress: bool = True) -> FittedLSTM:
    """The LSTM fitted on CDNOW master's calibration weeks with ``seed``, timed (wall seconds)."""
    config = config or LSTMConfig()
    panel = load_cdnow_panel("cdnow")
    started = time.perf_counter()
    model = LSTMDecayModel(config).fit(panel, until=CALIBRATION_WEEKS, seed=seed, progress=progress)
    return FittedLSTM(panel, model, time.perf_counter() - started, config)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str | int]:
    """What the figures were measured on, and how busy the machine was when asked."""
    return {
        "cpu": cpu_model(),
        "nproc": os.cpu_count() or 0,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "load_average": "/".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def machine_line(info: dict[str, str | int]) -> str:
    return (
        f"{info['cpu']}, {info['nproc']} cores (nproc), Python {info['python']}, torch {info['torch']}, "
        f"numpy {info['numpy']}; load average (1/5/15 min) {info['load_average']}"
    )


@dataclass(frozen=True)
class CPUClock:
    """CPU seconds at one moment: of the whole machine (``/proc/stat``) and of this process tree."""

    wall: float
    busy: float
    """CPU seconds every process has used since boot (user, nice, system, irq, softirq)."""
    steal: float
    """CPU seconds the hypervisor gave to other machines."""
    own: float
    """CPU seconds of this process and of the children it waited for."""

    @classmethod
    def now(cls) -> CPUClock:
        with open("/proc/stat") as stat:
            user, nice, system, _, _, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
        tick = os.sysconf("SC_CLK_TCK")
        own = sum(
            usage.ru_utime + usage.ru_stime
            for usage in (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
        )
        return cls(time.perf_counter(), (user + nice + system + irq + softirq) / tick, steal / tick, own)

    def others_since(self, start: CPUClock) -> dict[str, float]:
        """CPU used by *other* processes (and stolen) since ``start``: is the machine quiet?"""
        wall = self.wall - start.wall
        others = max((self.busy - start.busy) - (self.own - start.own), 0.0)
        return {
            "wall_seconds": round(wall, 1),
            "own_cpu_seconds": round(self.own - start.own, 1),
            "other_cpu_seconds": round(others, 1),
            "other_cores_busy": round(others / wall, 3) if wall > 0 else 0.0,
            "steal_seconds": round(self.steal - start.steal, 1),
        }


def quiet_line(check: dict[str, float]) -> str:
    return (
        f"other processes used {check['other_cpu_seconds']} CPU-s during the {check['wall_seconds']} s "
        f"({check['other_cores_busy']:.2f} cores on average), steal {check['steal_seconds']} s"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
