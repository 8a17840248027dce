"""What happened to each user in one simulated period."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winback.decay_model.base import BatchArrays, PeriodActivity
from winback.simulator.rewards import RewardComponents


@dataclass
class StepOutcome(BatchArrays):
    """What happened to each user in one period."""

    activity: PeriodActivity
    """Events per type and spend (intervention-caused purchases included)."""
    reward: RewardComponents
    """Reward parts; ``reward.total`` is the reward."""
    delivered: np.ndarray
    """(n,) int64 action actually delivered (0 when ``none`` was chosen or the contact was refused)."""
    refused: np.ndarray
    """(n,) bool: a contact was chosen but not delivered (opted out, or its coupon still valid)."""
    opted_out: np.ndarray
    """(n,) bool: the user opted out in this period."""
