"""How much an active user buys: the purchase-count and spend parts shared by the baseline models.

The baselines model *whether* a user is active in a period; given that, purchases follow
``1 + Geometric`` (``P(k | active) = (1 - q) q^(k-1)``) and spend per purchase is log-normal,
both fitted by maximum likelihood on the calibration periods of every user. When sampling, the
purchases of one period share one price (one uniform per user-period keeps draws addressable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NoReturn

import numpy as np
from scipy.special import ndtri

from winback.data.panel import PanelSpec, PeriodPanel
from winback.errors import DataError


@dataclass
class MarkMoments:
    """Sums behind :meth:`PurchaseMarks.fit`, added a part of a panel at a time."""

    active: int = 0
    """User-periods with a purchase."""
    purchases: float = 0.0
    positive: int = 0
    """Of ``active``, those with a positive spend."""
    log_sum: float = 0.0
    """Sum of log spend per purchase over ``positive``, and of its square."""
    log_square_sum: float = 0.0

    def add(self, panel: PeriodPanel, until: int) -> None:
        purchases = panel.purchases[:, :until].astype(np.float64)
        active = purchases > 0
        per_purchase = panel.spend[:, :until].astype(np.float64)[active] / purchases[active]
        logs = np.log(per_purchase[per_purchase > 0])
        self.active += int(active.sum())
        self.purchases += float(purchases[active].sum())
        self.positive += len(logs)
        self.log_sum += float(logs.sum())
        self.log_square_sum += float((logs**2).sum())


def _no_purchases(spec: PanelSpec, until: int) -> NoReturn:
    raise DataError(
        f"no '{spec.purchase_event}' event before period {until} ({spec.period_start(until)}): "
        "purchase sizes cannot be fitted",
        column="event_type",
        expected="at least one purchase in the calibration window",
    )


@dataclass(frozen=True)
class PurchaseMarks:
    extra_purchase_q: float
    """Geometric continuation probability of another purchase in an active period."""
    log_spend_mean: float
    log_spend_sd: float

    @classmethod
    def fit(cls, panel: PeriodPanel, until: int) -> PurchaseMarks:
        purchases = panel.purchases[:, :until].astype(np.float64)
        spend = panel.spend[:, :until].astype(np.float64)
        active = purchases > 0
        if not active.any():
            _no_purchases(panel.spec, until)
        mean_count = purchases[active].mean()
        per_purchase = spend[active] / purchases[active]
        positive = per_purchase > 0
        logs = np.log(per_purchase[positive]) if positive.any() else np.zeros(1)
        return cls(
            extra_purchase_q=float(1.0 - 1.0 / mean_count),
            log_spend_mean=float(logs.mean()),
            log_spend_sd=float(max(logs.std(), 1e-6)),
        )

    @classmethod
    def from_moments(cls, moments: MarkMoments, spec: PanelSpec, until: int) -> PurchaseMarks:
        """:meth:`fit` from moments summed over parts of a panel (equal up to rounding)."""
        if not moments.active:
            _no_purchases(spec, until)
        n, mean = max(moments.positive, 1), moments.log_sum / max(moments.positive, 1)
        variance = max(moments.log_square_sum / n - mean**2, 0.0) if moments.positive else 0.0
        return cls(
            extra_purchase_q=float(1.0 - moments.active / moments.purchases),
            log_spend_mean=float(mean),
            log_spend_sd=float(max(np.sqrt(variance), 1e-6)),
        )

    @property
    def mean_count_if_active(self) -> float:
        return 1.0 / (1.0 - self.extra_purchase_q)

    @property
    def mean_spend_per_purchase(self) -> float:
        return float(np.exp(self.log_spend_mean + self.log_spend_sd**2 / 2))

    def count_log_prob(self, p_active: np.ndarray, purchases: np.ndarray) -> np.ndarray:
        """log P(purchases) when the user is active with probability ``p_active``."""
        p = np.clip(p_active, 1e-12, 1 - 1e-12)
        k = np.asarray(purchases, dtype=np.float64)
        q = self.extra_purchase_q
        positive = np.log(p) + np.log1p(-q) + np.where(k > 1, (k - 1) * np.log(max(q, 1e-300)), 0.0)
        return np.where(k > 0, positive, np.log1p(-p))

    def sample_counts(self, p_active: np.ndarray, u_active: np.ndarray, u_count: np.ndarray) -> np.ndarray:
        """Purchases by inverse transform: active if ``u_active < p_active``, then ``1 + Geometric``."""
        q = self.extra_purchase_q
        extra = np.floor(np.log(u_count) / np.log(q)) if q > 0 else np.zeros_like(u_count)
        return np.where(u_active < p_active, 1 + extra, 0).astype(np.int64)

    def sample_spend(self, purchases: np.ndarray, u_spend: np.ndarray) -> np.ndarray:
        """Spend per user: ``purchases`` times one log-normal price per user-period."""
        price = np.exp(self.log_spend_mean + self.log_spend_sd * ndtri(u_spend))
        return purchases * price

    def to_json(self) -> dict[str, float]:
        return asdict(self)
