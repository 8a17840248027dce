"""The BG/NBD model of Fader, Hardie & Lee (2005), "Counting your customers the easy way", as a decay model.

While alive a customer buys as a Poisson process of rate ``lambda ~ Gamma(r, alpha)`` and after
each purchase drops out for good with probability ``p ~ Beta(a, b)``. Its decay is the posterior
probability of being alive, which falls with the time since the last purchase. A user's history
is the repeat-purchase summary ``(x, t_x, T)`` in periods, measured from the first purchase (from
birth for users without one, as :meth:`~winback.data.panel.PeriodPanel.rfm` does). Parameters are
fitted by maximum likelihood, eq. (6) of the paper; forecasts condition on the history through
the posterior behind eq. (10) and P(alive), the factor ``1 / (1 + ...)`` of eq. (10) (derived in
Fader, Hardie & Lee 2008, "Computing P(alive) using the BG/NBD model"). The model ignores
contacts; spend per purchase comes from :class:`~winback.decay_model.marks.PurchaseMarks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from scipy.optimize import minimize
from scipy.special import betainc, betaln, digamma, gammaln, hyp2f1

from winback.data.panel import PanelSpec, PeriodPanel, RFMSummary
from winback.decay_model.base import (
    DecayModel,
    DecayState,
    Forecast,
    PeriodActivity,
    check_born,
    scale_expectations,
)
from winback.decay_model.lstm_period import bgnbd_p_alive
from winback.decay_model.marks import PurchaseMarks
from winback.errors import DataError

_CHUNK = 1 << 13
"""Users per block in :meth:`BGNBDModel.forecast`: keeps its (K, block) work arrays near the cache."""


@dataclass
class BGNBDState(DecayState):
    """Repeat-purchase summary in periods (see the module docstring)."""

    x: np.ndarray
    """(n,) repeat purchases (after the first)."""
    t_x: np.ndarray
    """(n,) time of the last purchase."""
    T: np.ndarray
    """(n,) time of the end of the observed history."""


def log_likelihood_and_gradient(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[float, np.ndarray]:
    """Total BG/NBD log-likelihood (FHL 2005 eq. 6) at ``log(r, alpha, a, b)`` and its gradient.

    ``L = B(a, b+x)/B(a, b) G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
    + [x > 0] B(a+1, b+x-1)/B(a, b) G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))``, summed in log
    space with gammaln/betaln; the gradient is with respect to the log-parameters.
    """
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    x1 = np.maximum(x, 1.0)  # keeps the second term finite where it is masked out
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    survive = betaln(a, b + x) - (r + x) * log_alpha_T
    drop = np.where(repeat, betaln(a + 1, b + x1 - 1) - (r + x) * log_alpha_tx, -np.inf)
    mixed = np.logaddexp(survive, drop)
    w_drop = np.exp(drop - mixed)
    w_survive = 1.0 - w_drop

    psi_ab, psi_abx = digamma(a + b), digamma(a + b + x)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w_survive * log_alpha_T - w_drop * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (w_survive / (alpha + T) + w_drop / (alpha + t_x))
    d_a = (
        psi_ab
        - digamma(a)
        + w_survive * (digamma(a) - psi_abx)
        + w_drop * np.where(repeat, digamma(a + 1) - psi_abx, 0.0)
    )
    d_b = (
        psi_ab
        - digamma(b)
        + w_survive * (digamma(b + x) - psi_abx)
        + w_drop * np.where(repeat, digamma(b + x1 - 1) - psi_abx, 0.0)
    )
    gradient = np.array([d_r.sum(), d_alpha.sum(), d_a.sum(), d_b.sum()]) * np.array([r, alpha, a, b])
    return float((common + mixed).sum()), gradient


def require_repeat_buyers(rfm: RFMSummary, spec: PanelSpec, until: int) -> None:
    """BG/NBD learns the drop-out after a purchase from repeat buyers: none is an error."""
    if not np.any(rfm.x > 0):
        raise DataError(
            f"no user repeats a purchase before period {until} ({spec.period_start(until)}): "
            "BG/NBD learns the drop-out after a purchase (a, b) from repeat buyers",
            expected="at least one user with two purchases in the calibration window",
        )


class BGNBDModel(DecayModel):
    """BG/NBD (Fader, Hardie & Lee 2005) behind the decay-model interface (see the module docstring).

    ``max_count`` is the largest purchase count the per-period pmf keeps; the mass of larger
    counts is folded into it.
    """

    name: ClassVar[str] = "bgnbd"
    uses_contacts: ClassVar[bool] = False
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    """Calibration log-likelihood at the fitted parameters (eq. 6, summed over users)."""
    marks: PurchaseMarks

    def __init__(self, max_count: int = 40) -> None:
        if max_count < 1:
            raise ValueError(f"max_count must be at least 1, got {max_count}")
        self.max_count = max_count

    def fit(self, panel: PeriodPanel, *, until: int, seed: int = 0, progress: bool = False) -> Self:
        """Maximum likelihood of ``(r, alpha, a, b)`` on ``rfm(until)`` of the users born before ``until``.

        The optimisation (BFGS on the log-parameters, analytic gradient) is deterministic and takes
        well under a second per 100k users, so ``seed`` and ``progress`` are not used. Raises
        :class:`DataError` when no user repeats a purchase (``a, b`` are then not identified) or the
        optimum is not reached (a handful of users).
        """
        panel = panel.select(panel.born_before(until))
        rfm = panel.rfm(until)
        require_repeat_buyers(rfm, panel.spec, until)
        return self.fit_summary(rfm, PurchaseMarks.fit(panel, until), panel.spec)

    def fit_summary(self, rfm: RFMSummary, marks: PurchaseMarks, spec: PanelSpec) -> Self:
        """:meth:`fit` from the users' summaries and fitted marks (what a panel in shards gives)."""
        repeat_buyers = int(np.count_nonzero(rfm.x > 0))
        n_users = len(rfm.x)
        scale = 1.0 / n_users

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = log_likelihood_and_gradient(log_params, rfm.x, rfm.t_x, rfm.T)
            return -value * scale, -gradient * scale

        result = minimize(objective, np.zeros(4), jac=True, method="BFGS", options={"gtol": 1e-9})
        if not np.isfinite(result.fun) or np.abs(result.jac).max() > 1e-5:
            raise DataError(
                f"the BG/NBD fit did not converge ({result.message}) on {n_users:,} "
                f"user{'s' if n_users > 1 else ''} with {repeat_buyers:,} repeat "
                f"buyer{'s' if repeat_buyers > 1 else ''}: too few to tell the purchase rate from the "
                "drop-out",
                expected="more users, or more repeat buyers, in the calibration window",
            )
        self.r, self.alpha, self.a, self.b = (float(v) for v in np.exp(result.x))
        self.log_likelihood = -float(result.fun) / scale
        self.marks = marks
        self.spec = spec
        return self

    def initial_state(self, panel: PeriodPanel, *, until: int | np.ndarray) -> BGNBDState:
        until_array = check_born(panel, until)
        rfm = panel.rfm(until_array)
        return BGNBDState(period=until_array, x=rfm.x, t_x=rfm.t_x, T=rfm.T)

    def p_alive(self, state: BGNBDState) -> np.ndarray:
        """(n,) P(alive at T | x, t_x, T): the factor ``1 / (1 + ...)`` of FHL 2005 eq. (10)."""
        self._require_fitted()
        return bgnbd_p_alive(state.x, state.t_x, state.T, self.r, self.alpha, self.a, self.b)

    def conditional_expected_purchases(self, state: BGNBDState, t: float) -> np.ndarray:
        """(n,) E[Y(t) | x, t_x, T]: expected purchases in the next ``t`` periods, FHL 2005 eq. (10).

        Closed form with the Gauss hypergeometric function; used to check the per-period forecast
        and to forecast a whole holdout in one step.
        """
        self._require_fitted()
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, T = state.x, state.T
        z = t / (alpha + T + t)
        tail = ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return (a + b + x - 1) / (a - 1) * (1 - tail) * self.p_alive(state)

    def forecast(self, state: BGNBDState, contacts: np.ndarray | None = None) -> Forecast:
        """Next period's purchase-count pmf given the history (contacts are ignored).

        Given alive, the posterior is ``lambda ~ Gamma(r+x, alpha+T)`` and ``p ~ Beta(a, b+x)``,
        independent. In a period of length 1 a live customer's purchases are the events of a
        Poisson(lambda) process ``N`` stopped by dropping out after each one with probability ``p``:
        ``P(0) = P(N=0)`` and ``P(k) = (1-p)^(k-1) p P(N>=k) + (1-p)^k P(N=k)`` for ``k >= 1``.
        Integrating, ``N`` is negative binomial and the ``(1-p)`` powers are beta moments; counts
        of ``max_count`` or more share the last bucket (exactly ``E[(1-p)^(K-1)] P(N>=K)``). The
        mixture with the dead state (``P(alive)``) is ``params["pmf"]``, (n, K+1).
        ``expected_purchases`` is the pmf's mean, so it matches eq. (10) at ``t = 1`` up to the
        folded tail.
        """
        self._require_fitted()
        n, K = len(state.x), self.max_count
        alive = self.p_alive(state)
        pmf = np.empty((n, K + 1))
        expected = np.empty(n)
        for start in range(0, n, _CHUNK):
            block = slice(start, start + _CHUNK)
            mixed = self._alive_pmf(state.x[block], state.T[block]) * alive[block]
            mixed[0] += 1.0 - alive[block]
            pmf[block] = mixed.T
            expected[block] = np.arange(K + 1, dtype=np.float64) @ mixed
        # P(active) = P(alive) (1 - q^(r+x)) with q = (alpha+T)/(alpha+T+1), without cancellation.
        p_active = -alive * np.expm1(-(self.r + state.x) * np.log1p(1.0 / (self.alpha + state.T)))
        return Forecast(
            p_active=p_active,
            expected_purchases=expected,
            expected_spend=expected * self.marks.mean_spend_per_purchase,
            params={"pmf": pmf},
        )

    def _alive_pmf(self, x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """(K+1, m) pmf of next period's purchases given alive (see :meth:`forecast`).

        With ``m_k = E[(1-p)^k]`` and ``w_k = m_(k-1) / (a+b+x+k-1)`` (so ``E[(1-p)^(k-1) p] = a w_k``
        and ``m_k = (b+x+k-1) w_k``), ``P(k) = w_k (a P(N>=k) + (b+x+k-1) P(N=k))`` for ``0 < k < K``.
        """
        K, a = self.max_count, self.a
        shape = self.r + x
        b_post = self.b + x
        one_minus_q = 1.0 / (self.alpha + T + 1.0)
        out = np.empty((K + 1, len(x)))
        weight = np.empty((K, len(x)))  # weight[k - 1] = w_k
        out[0] = np.exp(-shape * np.log1p(1.0 / (self.alpha + T)))  # P(N = 0)
        moment = np.ones(len(x))
        for k in range(1, K):
            out[k] = out[k - 1] * (shape + (k - 1)) * (one_minus_q / k)  # P(N = k)
            np.divide(moment, a + b_post + (k - 1), out=weight[k - 1])
            moment = weight[k - 1] * (b_post + (k - 1))
        survival = betainc(float(K), shape, one_minus_q)  # P(N >= K), no cancellation
        out[K] = moment * survival  # P(count >= K) = m_(K-1) P(N >= K)
        for k in range(K - 1, 0, -1):
            survival += out[k]  # P(N >= k), summed from the tail up
            out[k] = weight[k - 1] * (a * survival + (b_post + (k - 1)) * out[k])
        return out

    def _with_p_active(self, forecast: Forecast, p_active: np.ndarray) -> Forecast:
        """Positive counts scaled by the change of P(any purchase), so their conditional pmf is kept."""
        pmf = forecast.params["pmf"] * (p_active / np.maximum(forecast.p_active, 1e-300))[:, None]
        pmf[:, 0] = 1.0 - p_active
        return scale_expectations(forecast, p_active, pmf=pmf)

    def uniforms_per_user(self) -> int:
        return 2

    def sample(self, forecast: Forecast, uniforms: np.ndarray) -> PeriodActivity:
        """Counts by inverse CDF (first uniform), then spend from the fitted marks (second)."""
        spec = self._require_fitted()
        pmf = forecast.params["pmf"]
        below = np.cumsum(pmf, axis=1) < uniforms[:, :1]
        purchases = np.minimum(below.sum(axis=1), self.max_count)
        counts = np.zeros((len(pmf), len(spec.event_types)), dtype=np.int64)
        counts[:, -1] = purchases
        return PeriodActivity(counts=counts, spend=self.marks.sample_spend(purchases, uniforms[:, 1]))

    def log_prob(self, forecast: Forecast, purchases: np.ndarray) -> np.ndarray:
        """(n,) log pmf of the counts; counts of ``max_count`` or more use the last bucket."""
        pmf = forecast.params["pmf"]
        bucket = np.minimum(np.asarray(purchases, dtype=np.int64), self.max_count)
        with np.errstate(divide="ignore"):
            return np.log(pmf[np.arange(len(pmf)), bucket])

    def advance(
        self, state: BGNBDState, activity: PeriodActivity, contacts: np.ndarray | None = None
    ) -> BGNBDState:
        """Fold one period into ``(x, t_x, T)``.

        Periods are the model's time unit, so ``T`` grows by 1 and purchases add to ``x``. The day
        of a simulated purchase is unknown, so ``t_x`` moves to the middle of the period,
        ``T + 0.5``; this is the one approximation of rolling the model period by period instead
        of in continuous time (on CDNOW, 39 weekly steps forecast 0.1-0.2% fewer holdout purchases
        than eq. (10) at t = 39, because purchases fall later in a period on average, see
        ``tests/test_bgnbd.py``). A never-buyer's birth stands for its first purchase (as in
        ``rfm``), so its first purchase here counts as a repeat.
        """
        purchases = activity.purchases
        return BGNBDState(
            period=state.period + 1,
            x=state.x + purchases,
            t_x=np.where(purchases > 0, state.T + 0.5, state.t_x),
            T=state.T + 1.0,
        )

    def config(self) -> dict[str, Any]:
        return {
            "r": self.r,
            "alpha": self.alpha,
            "a": self.a,
            "b": self.b,
            "log_likelihood": self.log_likelihood,
            "max_count": self.max_count,
            "marks": self.marks.to_json(),
        }

    @classmethod
    def from_artifact(cls, config: dict[str, Any], tensors: dict[str, np.ndarray], spec: PanelSpec) -> Self:
        model = cls(max_count=int(config["max_count"]))
        model.r, model.alpha, model.a, model.b = (float(config[k]) for k in ("r", "alpha", "a", "b"))
        model.log_likelihood = float(config["log_likelihood"])
        model.marks = PurchaseMarks(**config["marks"])
        model.spec = spec
        return model
