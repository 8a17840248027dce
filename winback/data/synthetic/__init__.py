"""Synthetic data with known ground truth: event logs (:mod:`.logs`)."""

from winback.data.synthetic.logs import (
    ARM,
    EVENT_TYPES,
    WEEK_SECONDS,
    SyntheticConfig,
    SyntheticLog,
    generate_synthetic_log,
)

__all__ = [
    "ARM",
    "EVENT_TYPES",
    "WEEK_SECONDS",
    "SyntheticConfig",
    "SyntheticLog",
    "generate_synthetic_log",
]
