"""Synthetic data with known ground truth: event logs (:mod:`.logs`) and a world to step policies in
(:mod:`.world`)."""

from winback.data.synthetic.logs import (
    ARM,
    EVENT_TYPES,
    WEEK_SECONDS,
    SyntheticConfig,
    SyntheticLog,
    generate_synthetic_log,
)
from winback.data.synthetic.world import (
    EventRecorder,
    GroundTruthWorld,
    WorldConfig,
    WorldLog,
    WorldState,
    WorldStep,
)

__all__ = [
    "ARM",
    "EVENT_TYPES",
    "WEEK_SECONDS",
    "EventRecorder",
    "GroundTruthWorld",
    "SyntheticConfig",
    "SyntheticLog",
    "WorldConfig",
    "WorldLog",
    "WorldState",
    "WorldStep",
    "generate_synthetic_log",
]
