"""The simulator and population an environment uses when given none: CDNOW and the packaged decay model.

The packaged model (``winback/assets/cdnow-lstm``) is the default :class:`LSTMDecayModel` fitted on
the CDNOW calibration weeks (seed 0), made with
``winback decay fit --data cdnow --out winback/assets/cdnow-lstm --seed 0 --threads 1``. The default
population is every CDNOW customer warm-started at the end of calibration (week 39).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from winback.data.cdnow import CALIBRATION_END, load_cdnow_panel
from winback.decay_model.artifact import load_model
from winback.decay_model.base import DecayModel
from winback.simulator.core import Simulator
from winback.simulator.population import warm_start
from winback.simulator.state import SimState

DEFAULT_MODEL = Path(str(files("winback") / "assets" / "cdnow-lstm"))


@cache
def default_model() -> DecayModel:
    return load_model(DEFAULT_MODEL)


@cache
def default_simulator() -> Simulator:
    return Simulator(default_model())


@cache
def default_population() -> SimState:
    """CDNOW's 23,570 customers at week 39 under :func:`default_simulator` (shared: copy before stepping)."""
    panel = load_cdnow_panel("cdnow")
    return warm_start(default_simulator(), panel, until=panel.spec.period_of(CALIBRATION_END))
