"""Rewards as pure functions of what happened in a period: margin on spend minus discounts and costs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from winback.decay_model.base import BatchArrays
from winback.errors import ConfigError

DEFAULT_MARGIN = 0.30
"""Gross margin as a share of spend: an assumed retail margin (set your own)."""


@dataclass(frozen=True)
class RewardConfig:
    margin: float = DEFAULT_MARGIN
    """Share of spend that is profit before discounts and contact costs."""

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 1 or math.isnan(self.margin):
            raise ConfigError(f"RewardConfig.margin = {self.margin} (allowed: [0, 1])")


@dataclass
class RewardComponents(BatchArrays):
    """Per-user parts of one period's reward; ``total`` is their signed sum."""

    margin: np.ndarray
    """(n,) margin times spend."""
    discount: np.ndarray
    """(n,) discounts paid on purchases made while a coupon was valid."""
    contact_cost: np.ndarray
    """(n,) cost of the contacts delivered."""

    @property
    def total(self) -> np.ndarray:
        return self.margin - self.discount - self.contact_cost


def reward_components(
    spend: np.ndarray, discount_rate: np.ndarray, contact_cost: np.ndarray, config: RewardConfig
) -> RewardComponents:
    """Margin x spend - discounts paid - contact costs, for spend (n,), the discount rate in force (n,)
    and the cost of the contacts delivered (n,)."""
    return RewardComponents(
        margin=config.margin * spend, discount=discount_rate * spend, contact_cost=contact_cost
    )
