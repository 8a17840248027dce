"""The simulator step for LSTM decay models, compiled (numba).

:meth:`winback.simulator.core.Simulator._step_block` composes the decay model's ``forecast``,
``lift``, ``sample`` and ``advance`` with the response and reward functions: a few hundred numpy
calls per period, which is what a single-user environment pays for every ``step()`` (~0.7 ms).
For the learned model, this module does the same period in one compiled call per block of users:
a loop over users for the scalar work, matrix products (BLAS) for the LSTM gates and the output
head, and the LSTM's activations as a rational tanh (within 4e-7 of libm's) in a loop LLVM
vectorises. It keeps the same state in place and reproduces the composed step draw for draw, up
to float rounding (``tests/test_simulator.py`` compares them). The call releases the GIL, so
``Simulator`` can step blocks on several threads.

Covered: LSTM models without calendar inputs, every contact kind driven by the response priors
(``Simulator`` composes otherwise). Written by hand, with numba (added for it), because the
composed step is the reference and no library in the stack compiles such a loop; on this machine it
is faster than torch's fused LSTM cell at every block size (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from winback.decay_model.base import PeriodActivity
from winback.decay_model.lstm import LSTMDecayModel
from winback.simulator.outcome import StepOutcome
from winback.simulator.response import ResponseTables
from winback.simulator.rewards import RewardComponents, RewardConfig
from winback.simulator.state import SINCE_CAP, SimState
from winback.streams import _mix as streams_mix

_UNIT = 1.0 / float(1 << 53)
_P_FLOOR = np.float32(1e-9)
_NB_STEPS = 64

# Columns of the per-kind table.
_LIFT_NEW, _LIFT_ESTABLISHED, _FADE, _COST, _FATIGUE, _OPT_OUT, _DISCOUNT, _VALIDITY = range(8)
# Entries of the scalar parameter vector.
(
    _FATIGUE_DECAY,
    _FATIGUE_SCALE,
    _OPT_OUT_PER_FATIGUE,
    _NEW_USER_PERIODS,
    _MARGIN,
    _PRIOR_R,
    _PRIOR_ALPHA,
    _PRIOR_A,
    _PRIOR_B,
    _TENURE,
    _RECENCY_FREQUENCY,
    _BGNBD,
) = range(12)


_mix = nb.njit(cache=True, inline="always")(streams_mix)
"""``winback.streams``' SplitMix64 finaliser, compiled for one word."""


@nb.njit(cache=True, inline="always")
def _sigmoid32(x: np.float32) -> np.float32:
    return np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-x)))


@nb.njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def _tanh32(x: np.float32) -> np.float32:
    """float32 tanh as a clamped rational function (Eigen's ``ptanh_float``; within 4e-7 of tanh).

    Pure arithmetic: ~3 ns against ~22 ns for a libm call from compiled code on this machine.
    """
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return p * x / q


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _lstm_cell(gates, bias, hidden, cell):  # fmt: skip
    """The LSTM cell update from its gate pre-activations (i, f, g, o), in place.
    ``sigmoid(x) = (1 + tanh(x / 2)) / 2``. NumPy's error model (no division-by-zero check: the
    rational tanh's denominator is positive) lets LLVM vectorise the loop, 5x faster here."""
    half = np.float32(0.5)
    size = hidden.shape[1]
    for i in range(hidden.shape[0]):
        for h in range(size):
            gate_in = half + half * _tanh32(half * (gates[i, h] + bias[h]))
            forget = half + half * _tanh32(half * (gates[i, size + h] + bias[size + h]))
            candidate = _tanh32(gates[i, 2 * size + h] + bias[2 * size + h])
            out = half + half * _tanh32(half * (gates[i, 3 * size + h] + bias[3 * size + h]))
            cell[i, h] = forget * cell[i, h] + gate_in * candidate
            hidden[i, h] = out * _tanh32(cell[i, h])


@nb.njit(cache=True)
def _ndtri(p: float) -> float:
    """Inverse of the standard normal CDF (Wichura 1988, algorithm AS 241, PPND16; ~1e-16 relative)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (
            (
                (
                    (
                        ((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                        + 45921.953931549871457
                    )
                    * r
                    + 13731.693765509461125
                )
                * r
                + 1971.5909503065514427
            )
            * r
            + 133.14166789178437745
        ) * r + 3.387132872796366608
        den = (
            (
                (
                    (
                        ((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                        + 21213.794301586595867
                    )
                    * r
                    + 5394.1960214247511077
                )
                * r
                + 687.1870074920579083
            )
            * r
            + 42.313330701600911252
        ) * r + 1.0
        return q * num / den
    r = p if q < 0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (
            (
                (
                    (
                        (
                            (7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r
                            + 0.24178072517745061177
                        )
                        * r
                        + 1.27045825245236838258
                    )
                    * r
                    + 3.64784832476320460504
                )
                * r
                + 5.7694972214606914055
            )
            * r
            + 4.6303378461565452959
        ) * r + 1.42343711074968357734
        den = (
            (
                (
                    (
                        (
                            (1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r
                            + 0.0151986665636164571966
                        )
                        * r
                        + 0.14810397642748007459
                    )
                    * r
                    + 0.68976733498510000455
                )
                * r
                + 1.6763848301838038494
            )
            * r
            + 2.05319162663775882187
        ) * r + 1.0
    else:
        r -= 5.0
        num = (
            (
                (
                    (
                        (
                            (2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                            + 0.0012426609473880784386
                        )
                        * r
                        + 0.026532189526576123093
                    )
                    * r
                    + 0.29656057182850489123
                )
                * r
                + 1.7848265399172913358
            )
            * r
            + 5.4637849111641143699
        ) * r + 6.6579046435011037772
        den = (
            (
                (
                    (
                        (
                            (2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r
                            + 1.8463183175100546818e-5
                        )
                        * r
                        + 7.868691311456132591e-4
                    )
                    * r
                    + 0.0148753612908506148525
                )
                * r
                + 0.13692988092273580531
            )
            * r
            + 0.59983220655588793769
        ) * r + 1.0
    value = num / den
    return -value if q < 0 else value


@nb.njit(cache=True)
def _nb_quantile(u: float, mu: float, theta: float) -> int:
    """Smallest k with P(K <= k) >= u for K ~ NegBin(mean mu, shape theta); -1 past the walk's end."""
    ratio = mu / (mu + theta)
    pmf = math.exp(theta * math.log1p(-ratio))
    cdf = pmf
    k = 0
    while cdf < u:
        if k == _NB_STEPS:
            return -1
        pmf *= (k + theta) / (k + 1) * ratio
        cdf += pmf
        k += 1
    return k


@nb.njit(cache=True)
def _period(
    actions, min_gap, demand_shift, seed_word, keys, period, hidden, cell, first, last_purchase,
    model_frequency,
    logit_active, log_mu, log_theta, spend_mean, spend_log_sd, p_active, expected_purchases,
    expected_spend, birth, recency, frequency, spend_total, fatigue, opted_out, lift, valid_left,
    since_contact, kinds, uses_prior, params, n_model_contacts, counts, spend, margin, discount,
    contact_cost, delivered, refused, left, z, tail,
):  # fmt: skip
    """Steps 1-6 of a period for every user: everything but the LSTM cell and the head.

    Writes the period's outcomes, the LSTM inputs ``z`` (n, inputs + hidden: the hidden state is
    copied after the inputs) and the head's known-ahead inputs ``tail`` of the next period; ``cell``
    and the forecast's expectations are left to ``_cell`` and ``_head``.
    """
    n, n_types = logit_active.shape
    n_kinds = lift.shape[1]
    size = hidden.shape[1]
    n_slots = 2 * n_types + 2
    tenure_on, recency_on, bgnbd_on = params[_TENURE] > 0, params[_RECENCY_FREQUENCY] > 0, params[_BGNBD] > 0
    n_inputs = z.shape[1] - size
    u = np.empty(n_slots)
    for i in range(n):
        # 1. delivery and lifts
        action = actions[i]
        allowed = action > 0 and not opted_out[i]
        if allowed:
            kind = action - 1
            if kinds[kind, _VALIDITY] > 0 and valid_left[i, kind] > 0:
                allowed = False
            if min_gap > 0:
                for k in range(n_kinds):
                    if since_contact[i, k] < min_gap:
                        allowed = False
        delivered[i] = action if allowed else 0
        refused[i] = action > 0 and not allowed
        kind = action - 1
        if allowed:
            is_new = period[i] - birth[i] < params[_NEW_USER_PERIODS]
            base = kinds[kind, _LIFT_NEW] if is_new else kinds[kind, _LIFT_ESTABLISHED]
            if uses_prior[kind]:
                lift[i, kind] = max(lift[i, kind], base * math.exp(-fatigue[i] / params[_FATIGUE_SCALE]))
            valid_left[i, kind] = max(valid_left[i, kind], int(kinds[kind, _VALIDITY]))
        # 2. the period's draws: lifted purchase odds, counts, spend
        user_word = _mix(seed_word ^ keys[i])
        step_word = _mix(user_word ^ _mix(np.uint64(period[i])))
        for slot in range(n_slots):
            bits = _mix(step_word ^ np.uint64(slot)) >> np.uint64(11)
            u[slot] = (float(bits) + 0.5) * _UNIT
        shift = demand_shift[i]
        for k in range(n_kinds):
            shift += lift[i, k]
        purchases = 0
        for e in range(n_types):
            logit = logit_active[i, e]
            if e == n_types - 1 and shift != 0.0:
                p = min(max(p_active[i], _P_FLOOR), np.float32(1.0) - _P_FLOOR)
                lifted = 1.0 / (1.0 + math.exp(-(np.float32(math.log(p / (np.float32(1.0) - p))) + shift)))
                logit = np.float32(math.log(lifted / (1.0 - lifted)))
            count = 0
            if u[e] < _sigmoid32(logit):
                mu = np.float32(math.exp(log_mu[i, e]))
                theta = np.float32(math.exp(log_theta[i, e]))
                count = _nb_quantile(u[n_types + e], float(mu), float(theta))
                if count < 0:  # deeper in the tail than the walk: exact but slow, and rare
                    with nb.objmode(count="int64"):
                        count = _scipy_nb_quantile(u[n_types + e], float(mu), float(theta))
                count += 1
            counts[i, e] = count
            purchases = count
        amount = 0.0
        if purchases > 0:
            scale = np.float32(math.exp(spend_log_sd[i]))
            amount = purchases * math.exp(spend_mean[i] + scale * _ndtri(u[2 * n_types]))
        spend[i] = amount
        # 3. rewards
        rate = 0.0
        for k in range(n_kinds):
            if valid_left[i, k] > 0:
                rate += kinds[k, _DISCOUNT]
        margin[i] = params[_MARGIN] * amount
        discount[i] = rate * amount
        contact_cost[i] = kinds[kind, _COST] if allowed else 0.0
        # 4. fatigue, opt-out, history
        left[i] = False
        if allowed:
            fatigue[i] += kinds[kind, _FATIGUE]
            p_leave = min(kinds[kind, _OPT_OUT] + params[_OPT_OUT_PER_FATIGUE] * fatigue[i], 1.0)
            if u[n_slots - 1] < p_leave:
                left[i] = True
                opted_out[i] = True
        recency[i] = 1 if purchases > 0 else recency[i] + 1
        frequency[i] += purchases
        spend_total[i] += amount
        for k in range(n_kinds):
            since_contact[i, k] = min(since_contact[i, k] + 1, SINCE_CAP)
        if allowed:
            since_contact[i, kind] = 1
        # 5. the LSTM's inputs for the period that happened (LSTMDecayModel._step_features)
        if purchases > 0:
            last_purchase[i] = period[i]
        model_frequency[i] += purchases
        column = 0
        for e in range(n_types):
            z[i, column] = np.float32(math.log1p(np.float32(counts[i, e])))
            column += 1
        z[i, column] = np.float32(math.log1p(np.float32(amount)))
        column += 1 + n_model_contacts  # no contact reaches the model: log1p(0) = 0
        if tenure_on:
            z[i, column] = np.float32(math.log1p(np.float32(max(period[i] - first[i], 0))))
            column += 1
        z[i, column] = 1.0 if period[i] == first[i] else 0.0
        column += 1
        if recency_on:
            z[i, column] = np.float32(math.log1p(np.float32(max(period[i] - last_purchase[i], 0))))
            z[i, column + 1] = np.float32(math.log1p(model_frequency[i]))
            column += 2
        if bgnbd_on:
            r, alpha = params[_PRIOR_R], params[_PRIOR_ALPHA]
            x = max(model_frequency[i] - 1.0, 0.0)
            t_x = float(last_purchase[i] - first[i])
            big_t = period[i] + 0.5 - first[i]
            alive = 1.0
            if x > 0:
                log_odds = (
                    math.log(params[_PRIOR_A])
                    - math.log(params[_PRIOR_B] + max(x, 1.0) - 1)
                    + (r + x) * (math.log(alpha + big_t) - math.log(alpha + t_x))
                )
                alive = 1.0 / (1.0 + math.exp(log_odds))
            z[i, column] = np.float32(alive)
            z[i, column + 1] = np.float32(math.log(r + x) - math.log(alpha + big_t))
        for h in range(size):
            z[i, n_inputs + h] = hidden[i, h]
        # 6. fades and expiries
        for k in range(n_kinds):
            if valid_left[i, k] <= 1:
                lift[i, k] *= kinds[k, _FADE]
            valid_left[i, k] = max(valid_left[i, k] - 1, 0)
        fatigue[i] *= params[_FATIGUE_DECAY]
        # 7. the next period's known-ahead head inputs: no contact (zeros), tenure
        period[i] += 1
        if tenure_on:
            tail[i, n_model_contacts] = np.float32(math.log1p(np.float32(max(period[i] - first[i], 0))))


@nb.njit(cache=True)
def _cell(z, lstm_weight, lstm_bias, hidden, cell):  # fmt: skip
    """The LSTM cell on ``z`` = [inputs, hidden]: gates by one matrix product, then the activations."""
    _lstm_cell(z @ lstm_weight, lstm_bias, hidden, cell)


@nb.njit(cache=True)
def _head(
    hidden, tail, head_weight_1, head_bias_1, head_weight_2, head_bias_2, logit_active, log_mu,
    log_theta, spend_mean, spend_log_sd, p_active, expected_purchases, expected_spend,
):  # fmt: skip
    """The output head on the new hidden state: the next period's forecast, in place."""
    layer = np.concatenate((hidden, tail), axis=1) @ head_weight_1
    for i in range(layer.shape[0]):
        for j in range(layer.shape[1]):
            layer[i, j] = max(layer[i, j] + head_bias_1[j], np.float32(0.0))
    raw = layer @ head_weight_2
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            raw[i, j] += head_bias_2[j]
    _forecast(
        raw, logit_active, log_mu, log_theta, spend_mean, spend_log_sd, p_active, expected_purchases,
        expected_spend,
    )  # fmt: skip


@nb.njit(cache=True)
def _forecast(
    raw, logit_active, log_mu, log_theta, spend_mean, spend_log_sd, p_active, expected_purchases,
    expected_spend,
):  # fmt: skip
    """The forecast's parameters and expectations from the head's output ``raw`` (as ``_split_head``)."""
    n, n_types = logit_active.shape
    for i in range(n):
        for e in range(n_types):
            logit_active[i, e] = raw[i, e]
            log_mu[i, e] = min(max(raw[i, n_types + e], -8.0), 6.0)
            log_theta[i, e] = min(max(raw[i, 2 * n_types + e], -4.0), 6.0)
        spend_mean[i] = raw[i, 3 * n_types] + np.float32(3.0)
        spend_log_sd[i] = min(max(raw[i, 3 * n_types + 1], np.float32(-4.0)), np.float32(2.0))
        p = _sigmoid32(logit_active[i, n_types - 1])
        p_active[i] = p
        expected_purchases[i] = p * (np.float32(1.0) + np.float32(math.exp(log_mu[i, n_types - 1])))
        per_purchase = math.exp(spend_mean[i] + np.float32(math.exp(spend_log_sd[i])) ** 2 / 2)
        expected_spend[i] = expected_purchases[i] * per_purchase


@nb.njit(cache=True, nogil=True)
def _block(
    actions, min_gap, demand_shift, seed_word, keys, period, hidden, cell, first, last_purchase,
    model_frequency,
    logit_active, log_mu, log_theta, spend_mean, spend_log_sd, p_active, expected_purchases,
    expected_spend, birth, recency, frequency, spend_total, fatigue, opted_out, lift, valid_left,
    since_contact, lstm_weight, lstm_bias, head_weight_1, head_bias_1, head_weight_2, head_bias_2,
    kinds, uses_prior, params, n_model_contacts, counts, spend, margin, discount, contact_cost,
    delivered, refused, left, z, tail,
):  # fmt: skip
    """A whole period of a block of users in one call, without the GIL."""
    _period(
        actions, min_gap, demand_shift, seed_word, keys, period, hidden, cell, first, last_purchase,
    model_frequency,
        logit_active, log_mu, log_theta, spend_mean, spend_log_sd, p_active, expected_purchases,
        expected_spend, birth, recency, frequency, spend_total, fatigue, opted_out, lift, valid_left,
        since_contact, kinds, uses_prior, params, n_model_contacts, counts, spend, margin, discount,
        contact_cost, delivered, refused, left, z, tail,
    )  # fmt: skip
    _cell(z, lstm_weight, lstm_bias, hidden, cell)
    _head(
        hidden, tail, head_weight_1, head_bias_1, head_weight_2, head_bias_2, logit_active, log_mu,
        log_theta, spend_mean, spend_log_sd, p_active, expected_purchases, expected_spend,
    )  # fmt: skip


def _scipy_nb_quantile(u: float, mu: float, theta: float) -> int:
    from scipy.stats import nbinom

    return int(nbinom.ppf(u, theta, theta / (theta + mu)))


class FusedLSTMStep:
    """The compiled period for a simulator over an :class:`LSTMDecayModel` (see the module docstring)."""

    def __init__(
        self, model: LSTMDecayModel, tables: ResponseTables, uses_prior: np.ndarray, reward: RewardConfig,
        new_user_periods: int, seed_word: np.uint64,
    ) -> None:  # fmt: skip
        kernel = model._require_kernel()
        spec = model._require_fitted()
        prior = model.prior
        self.weights = (
            kernel.lstm_weight,
            kernel.lstm_bias,
            kernel.head_weight_1,
            kernel.head_bias_1,
            kernel.head_weight_2,
            kernel.head_bias_2,
        )
        self.kinds = np.column_stack(
            [
                tables.lift_new,
                tables.lift_established,
                tables.fade,
                tables.cost,
                tables.fatigue,
                tables.opt_out,
                tables.discount,
                tables.validity.astype(np.float64),
            ]
        )
        self.uses_prior = uses_prior.astype(np.bool_)
        self.params = np.array(
            [
                tables.fatigue_decay,
                tables.fatigue_scale,
                tables.opt_out_per_fatigue,
                new_user_periods,
                reward.margin,
                prior.r if prior else 0.0,
                prior.alpha if prior else 0.0,
                prior.a if prior else 0.0,
                prior.b if prior else 0.0,
                float(model.cfg.tenure),
                float(model.cfg.recency_frequency),
                float(model.cfg.bgnbd_inputs),
            ]
        )
        self.n_model_contacts = len(spec.interventions)
        self.constants = (self.kinds, self.uses_prior, self.params, self.n_model_contacts)
        self.n_inputs, self.n_known = model._n_inputs(spec)
        self.hidden_size = model.cfg.hidden_size
        self.seed_word = np.uint64(seed_word)

    @staticmethod
    def supports(model: object, uses_prior: np.ndarray) -> bool:
        return isinstance(model, LSTMDecayModel) and not model.calendar and bool(np.all(uses_prior))

    def step(self, s: SimState, actions: np.ndarray, min_gap: int, demand_shift: np.ndarray) -> StepOutcome:
        """One period for a block of users, in place (as ``Simulator._step_block``); ``actions`` int64,
        ``demand_shift`` (n,) float64."""
        n, decay, forecast = s.n_users, s.decay, s.forecast
        p = forecast.params
        n_types = p["logit_active"].shape[1]
        counts = np.empty((n, n_types), dtype=np.int64)
        delivered = np.empty(n, dtype=np.int64)
        spend, margin, discount, cost = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        refused, left = np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.bool_)
        z = np.zeros((n, self.n_inputs + self.hidden_size), dtype=np.float32)
        tail = np.zeros((n, self.n_known), dtype=np.float32)
        forecast_arrays = (
            p["logit_active"], p["log_mu"], p["log_theta"], p["spend_mean"], p["spend_log_sd"],
            forecast.p_active, forecast.expected_purchases, forecast.expected_spend,
        )  # fmt: skip
        state = (
            actions, int(min_gap), demand_shift, self.seed_word, s.keys, decay.period, decay.hidden,
            decay.cell,
            decay.first_period, decay.last_purchase, decay.frequency, *forecast_arrays, s.birth,
            s.recency, s.frequency, s.spend_total, s.fatigue, s.opted_out, s.lift, s.valid_left,
            s.since_contact,
        )  # fmt: skip
        outputs = (counts, spend, margin, discount, cost, delivered, refused, left, z, tail)
        _block(*state, *self.weights, *self.constants, *outputs)
        return StepOutcome(
            activity=PeriodActivity(counts=counts, spend=spend),
            reward=RewardComponents(margin=margin, discount=discount, contact_cost=cost),
            delivered=delivered,
            refused=refused,
            opted_out=left,
        )
