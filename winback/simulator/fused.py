"""The simulator step for LSTM decay models, compiled (numba).

:meth:`winback.simulator.core.Simulator._step_block` composes the decay model's ``forecast``,
``lift``, ``sample`` and ``advance`` with the response and reward functions: a few hundred numpy
calls per period, which is what a single-user environment pays for every ``step()`` (~0.7 ms).
For the learned model, this module does the same period in one compiled call per block of users:
a loop over users for the scalar work, matrix products (BLAS) for the LSTM gates and the output
head, and the LSTM's activations as a rational tanh (within 4e-7 of libm's) in a loop LLVM
vectorises. It keeps the same state in place and reproduces the composed step draw for draw, up
to float rounding (``tests/test_lstm_period.py`` compares them over the model's configurations).
The call releases the GIL, so ``Simulator`` can step blocks on several threads.

Every configuration of :class:`LSTMDecayModel` is covered: any event types, calendar inputs,
contacts whose effect the model learned (the head is evaluated again, for the users who got one,
with the contact among its inputs) or driven by the response priors, tenure, recency and BG/NBD
inputs on or off. The period's inputs are those of :mod:`winback.decay_model.lstm_period`, the
same code the other paths run. The arrays travel in named bundles (:class:`UserArrays`,
:class:`DecayArrays`, ...), read by field name, so two of them cannot be swapped silently.
Written by hand, with numba (added for it), because the composed step is the reference and no
library in the stack compiles such a loop; on this machine it is faster than torch's fused LSTM
cell at every block size (``benchmarks/RESULTS.md``). numba caches the compiled code by this
file's time stamp only: after editing ``lstm_period.py``, touch this file (or clear
``__pycache__``) before measuring.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import NamedTuple

import numba as nb
import numpy as np

from winback.decay_model import lstm_period
from winback.decay_model.base import PeriodActivity
from winback.decay_model.lstm import LSTMDecayModel, LSTMState
from winback.decay_model.lstm_period import InputLayout, write_known_ahead, write_step_inputs
from winback.simulator.outcome import StepOutcome
from winback.simulator.response import ResponseTables
from winback.simulator.rewards import RewardComponents, RewardConfig
from winback.simulator.state import SINCE_CAP, SimState
from winback.streams import _mix as streams_mix

_UNIT = 1.0 / float(1 << 53)
_P_FLOOR = np.float32(1e-9)
_NB_STEPS = 64
# How the head's output is read (lstm_period), as constants the compiled code folds in.
_LOG_MU_LOW, _LOG_MU_HIGH = lstm_period.LOG_MU_RANGE
_LOG_THETA_LOW, _LOG_THETA_HIGH = lstm_period.LOG_THETA_RANGE
_SPEND_LOG_SD_LOW, _SPEND_LOG_SD_HIGH = (np.float32(x) for x in lstm_period.SPEND_LOG_SD_RANGE)
_SPEND_MEAN_OFFSET = np.float32(lstm_period.SPEND_MEAN_OFFSET)


def _arrays_of(state: type, name: str, skip: tuple[str, ...] = ()) -> type:
    """A named tuple of the array fields of the dataclass ``state``, in its order: the same arrays,
    read by the same names, in compiled code."""
    fields = [(f.name, np.ndarray) for f in dataclasses.fields(state) if f.name not in skip]
    return NamedTuple(name, fields)  # type: ignore[return-value]


UserArrays = _arrays_of(SimState, "UserArrays", skip=("decay", "forecast"))
"""The simulator's own per-user state (:class:`SimState` but the decay model's), changed in place."""
DecayArrays = _arrays_of(LSTMState, "DecayArrays")
"""The LSTM's per-user state (:class:`~winback.decay_model.lstm.LSTMState`), changed in place."""


class ForecastArrays(NamedTuple):
    """The forecast of the coming period (:class:`~winback.decay_model.base.Forecast`), changed in place."""

    logit_active: np.ndarray
    log_mu: np.ndarray
    log_theta: np.ndarray
    spend_mean: np.ndarray
    spend_log_sd: np.ndarray
    p_active: np.ndarray
    expected_purchases: np.ndarray
    expected_spend: np.ndarray


class Weights(NamedTuple):
    """The fitted network as the numpy kernel packs it (gates i, f, g, o as in ``torch.nn.LSTM``)."""

    lstm_weight: np.ndarray
    lstm_bias: np.ndarray
    head_weight_1: np.ndarray
    head_bias_1: np.ndarray
    head_weight_2: np.ndarray
    head_bias_2: np.ndarray


class Constants(NamedTuple):
    """What the response priors (:class:`ResponseTables`) leave out."""

    model_contact: np.ndarray
    """(K,) int64 index of each contact kind among the model's contact inputs when its effect is learned,
    else -1 (its effect is the priors' lift)."""
    new_user_periods: int
    margin: float


class Requests(NamedTuple):
    """What the period asks of the block: each user's action and demand shift, the frequency cap, the seed."""

    actions: np.ndarray
    """(n,) int64 requested actions."""
    demand_shift: np.ndarray
    """(n,) float64 log-odds shifts of demand."""
    min_gap: int
    seed_word: np.uint64


class Outputs(NamedTuple):
    """What a period gives back, per user."""

    counts: np.ndarray
    spend: np.ndarray
    margin: np.ndarray
    discount: np.ndarray
    contact_cost: np.ndarray
    delivered: np.ndarray
    refused: np.ndarray
    left: np.ndarray


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
def _period(requests, users, decay, forecast, weights, response, constants, layout, out, z, tail):
    """Steps 1-6 of a period for every user: everything but the LSTM cell and the next head.

    Writes the period's outcomes, the LSTM inputs ``z`` (n, inputs + hidden: the hidden state is
    copied after the inputs) and the head's known-ahead inputs ``tail`` of the next period; the
    cell and the next forecast are left to ``_cell`` and ``_head``.
    """
    n, n_types = forecast.logit_active.shape
    n_kinds = users.lift.shape[1]
    size = decay.hidden.shape[1]
    n_slots = 2 * n_types + 2
    n_inputs = z.shape[1] - size
    u = np.empty(n_slots)
    contacts = np.zeros(layout.n_contact_kinds)
    known = np.empty(tail.shape[1], dtype=np.float32)
    layer = np.empty(weights.head_weight_1.shape[1], dtype=np.float32)
    raw = np.empty(weights.head_weight_2.shape[1], dtype=np.float32)
    for i in range(n):
        # 1. delivery and lifts
        action = requests.actions[i]
        allowed = action > 0 and not users.opted_out[i]
        if allowed:
            kind = action - 1
            if response.validity[kind] > 0 and users.valid_left[i, kind] > 0:
                allowed = False
            if requests.min_gap > 0:
                for k in range(n_kinds):
                    if users.since_contact[i, k] < requests.min_gap:
                        allowed = False
        out.delivered[i] = action if allowed else 0
        out.refused[i] = action > 0 and not allowed
        kind = action - 1
        learned = -1
        if allowed:
            learned = constants.model_contact[kind]
            if learned < 0:
                is_new = decay.period[i] - users.birth[i] < constants.new_user_periods
                base = response.lift_new[kind] if is_new else response.lift_established[kind]
                fresh = base * math.exp(-users.fatigue[i] / response.fatigue_scale)
                users.lift[i, kind] = max(users.lift[i, kind], fresh)
            users.valid_left[i, kind] = max(users.valid_left[i, kind], response.validity[kind])
        if learned >= 0:  # the model's own effect: this period's forecast with the contact among its inputs
            contacts[learned] = 1.0
            write_known_ahead(known, 0, layout, decay.period[i], decay.first_period[i], contacts)
            _head_row(decay.hidden[i], known, weights, layer, raw)
            _read_head(raw, forecast, i)
        # 2. the period's draws: lifted purchase odds, counts, spend
        user_word = _mix(requests.seed_word ^ users.keys[i])
        step_word = _mix(user_word ^ _mix(np.uint64(decay.period[i])))
        for slot in range(n_slots):
            bits = _mix(step_word ^ np.uint64(slot)) >> np.uint64(11)
            u[slot] = (float(bits) + 0.5) * _UNIT
        shift = requests.demand_shift[i]
        for k in range(n_kinds):
            shift += users.lift[i, k]
        purchases = 0
        for e in range(n_types):
            logit = forecast.logit_active[i, e]
            if e == n_types - 1 and shift != 0.0:
                p = min(max(forecast.p_active[i], _P_FLOOR), np.float32(1.0) - _P_FLOOR)
                lifted = 1.0 / (1.0 + math.exp(-(np.float32(math.log(p / (np.float32(1.0) - p))) + shift)))
                logit = np.float32(math.log(lifted / (1.0 - lifted)))
            count = 0
            if u[e] < _sigmoid32(logit):
                mu = np.float32(math.exp(forecast.log_mu[i, e]))
                theta = np.float32(math.exp(forecast.log_theta[i, e]))
                count = _nb_quantile(u[n_types + e], float(mu), float(theta))
                if count < 0:  # deeper in the tail than the walk: exact but slow, and rare
                    with nb.objmode(count="int64"):
                        count = _scipy_nb_quantile(u[n_types + e], float(mu), float(theta))
                count += 1
            out.counts[i, e] = count
            purchases = count
        amount = 0.0
        if purchases > 0:
            scale = np.float32(math.exp(forecast.spend_log_sd[i]))
            amount = purchases * math.exp(forecast.spend_mean[i] + scale * _ndtri(u[2 * n_types]))
        out.spend[i] = amount
        # 3. rewards
        rate = 0.0
        for k in range(n_kinds):
            if users.valid_left[i, k] > 0:
                rate += response.discount[k]
        out.margin[i] = constants.margin * amount
        out.discount[i] = rate * amount
        out.contact_cost[i] = response.cost[kind] if allowed else 0.0
        # 4. fatigue, opt-out, history
        out.left[i] = False
        if allowed:
            users.fatigue[i] += response.fatigue[kind]
            p_leave = min(response.opt_out[kind] + response.opt_out_per_fatigue * users.fatigue[i], 1.0)
            if u[n_slots - 1] < p_leave:
                out.left[i] = True
                users.opted_out[i] = True
        users.recency[i] = 1 if purchases > 0 else users.recency[i] + 1
        users.frequency[i] += purchases
        users.spend_total[i] += amount
        for k in range(n_kinds):
            users.since_contact[i, k] = min(users.since_contact[i, k] + 1, SINCE_CAP)
        if allowed:
            users.since_contact[i, kind] = 1
        # 5. the LSTM's inputs for the period that happened
        if purchases > 0:
            decay.last_purchase[i] = decay.period[i]
        decay.frequency[i] += purchases
        write_step_inputs(
            z[i], layout, decay.period[i], decay.first_period[i], out.counts[i], amount, contacts,
            decay.last_purchase[i], decay.frequency[i],
        )  # fmt: skip
        for h in range(size):
            z[i, n_inputs + h] = decay.hidden[i, h]
        if learned >= 0:
            contacts[learned] = 0.0
        # 6. fades and expiries
        for k in range(n_kinds):
            if users.valid_left[i, k] <= 1:
                users.lift[i, k] *= response.fade[k]
            users.valid_left[i, k] = max(users.valid_left[i, k] - 1, 0)
        users.fatigue[i] *= response.fatigue_decay
        # 7. the next period's known-ahead head inputs, no contact
        decay.period[i] += 1
        write_known_ahead(tail[i], 0, layout, decay.period[i], decay.first_period[i], contacts)


@nb.njit(cache=True)
def _head_row(hidden, known, weights, layer, raw):
    """The output head of one user (``_Kernel.heads`` for a single row) into ``raw``; the loops run
    along the weights' rows, so they vectorise."""
    size = hidden.shape[0]
    w1, w2 = weights.head_weight_1, weights.head_weight_2
    layer[:] = weights.head_bias_1
    for h in range(size):
        for j in range(layer.shape[0]):
            layer[j] += hidden[h] * w1[h, j]
    for t in range(known.shape[0]):
        for j in range(layer.shape[0]):
            layer[j] += known[t] * w1[size + t, j]
    raw[:] = weights.head_bias_2
    for j in range(layer.shape[0]):
        unit = max(layer[j], np.float32(0.0))
        for o in range(raw.shape[0]):
            raw[o] += unit * w2[j, o]


@nb.njit(cache=True)
def _cell(z, weights, decay):
    """The LSTM cell on ``z`` = [inputs, hidden]: gates by one matrix product, then the activations."""
    _lstm_cell(z @ weights.lstm_weight, weights.lstm_bias, decay.hidden, decay.cell)


@nb.njit(cache=True)
def _head(decay, tail, weights, forecast):
    """The output head on the new hidden state: the next period's forecast, in place."""
    layer = np.concatenate((decay.hidden, tail), axis=1) @ weights.head_weight_1
    for i in range(layer.shape[0]):
        for j in range(layer.shape[1]):
            layer[i, j] = max(layer[i, j] + weights.head_bias_1[j], np.float32(0.0))
    raw = layer @ weights.head_weight_2
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            raw[i, j] += weights.head_bias_2[j]
        _read_head(raw[i], forecast, i)


@nb.njit(cache=True)
def _read_head(raw, forecast, i):
    """User ``i``'s forecast from the head's output ``raw`` (as ``LSTMDecayModel``'s ``_split_head``)."""
    n_types = forecast.logit_active.shape[1]
    for e in range(n_types):
        forecast.logit_active[i, e] = raw[e]
        forecast.log_mu[i, e] = min(max(raw[n_types + e], _LOG_MU_LOW), _LOG_MU_HIGH)
        forecast.log_theta[i, e] = min(max(raw[2 * n_types + e], _LOG_THETA_LOW), _LOG_THETA_HIGH)
    forecast.spend_mean[i] = raw[3 * n_types] + _SPEND_MEAN_OFFSET
    forecast.spend_log_sd[i] = min(max(raw[3 * n_types + 1], _SPEND_LOG_SD_LOW), _SPEND_LOG_SD_HIGH)
    p = _sigmoid32(forecast.logit_active[i, n_types - 1])
    forecast.p_active[i] = p
    purchases = p * (np.float32(1.0) + np.float32(math.exp(forecast.log_mu[i, n_types - 1])))
    forecast.expected_purchases[i] = purchases
    per_purchase = math.exp(forecast.spend_mean[i] + np.float32(math.exp(forecast.spend_log_sd[i])) ** 2 / 2)
    forecast.expected_spend[i] = forecast.expected_purchases[i] * per_purchase


@nb.njit(cache=True, nogil=True)
def _block(requests, users, decay, forecast, weights, tables, constants, layout, out, z, tail):
    """A whole period of a block of users in one call, without the GIL.

    The bundles arrive as plain tuples, in their fields' order (numba dispatches those several times
    faster than named tuples: 4 us against 14 us a call), and are named again here.
    """
    requests, users, decay = Requests(*requests), UserArrays(*users), DecayArrays(*decay)
    forecast, weights, out = ForecastArrays(*forecast), Weights(*weights), Outputs(*out)
    tables, constants, layout = ResponseTables(*tables), Constants(*constants), InputLayout(*layout)
    _period(requests, users, decay, forecast, weights, tables, constants, layout, out, z, tail)
    _cell(z, weights, decay)
    _head(decay, tail, weights, forecast)


def _scipy_nb_quantile(u: float, mu: float, theta: float) -> int:
    from scipy.stats import nbinom

    return int(nbinom.ppf(u, theta, theta / (theta + mu)))


class FusedLSTMStep:
    """The compiled period for a simulator over an :class:`LSTMDecayModel` (see the module docstring)."""

    def __init__(
        self,
        model: LSTMDecayModel,
        tables: ResponseTables,
        model_contact: np.ndarray,
        reward: RewardConfig,
        new_user_periods: int,
        seed_word: np.uint64,
    ) -> None:
        """``model_contact``: (K,) index of each contact kind among the model's contact inputs when the
        simulator takes its effect from the model, -1 when from the response priors."""
        kernel = model._require_kernel()
        self.layout: InputLayout = kernel.layout
        self.n_step, self.n_known_ahead = self.layout.n_step, self.layout.n_known_ahead
        self.weights = Weights(
            kernel.lstm_weight,
            kernel.lstm_bias,
            kernel.head_weight_1,
            kernel.head_bias_1,
            kernel.head_weight_2,
            kernel.head_bias_2,
        )
        self.tables = tables
        self.constants = Constants(
            np.asarray(model_contact, dtype=np.int64), int(new_user_periods), float(reward.margin)
        )
        self.hidden_size = model.cfg.hidden_size
        self.seed_word = np.uint64(seed_word)
        self.constant_bundles = (
            tuple(self.weights),
            tuple(self.tables),
            tuple(self.constants),
            tuple(self.layout),
        )
        """The bundles that do not change between steps, as the plain tuples ``_block`` takes."""

    def step(self, s: SimState, actions: np.ndarray, min_gap: int, demand_shift: np.ndarray) -> StepOutcome:
        """One period for a block of users, in place (as ``Simulator._step_block``); ``actions`` int64,
        ``demand_shift`` (n,) float64."""
        n = s.n_users
        out = Outputs(
            counts=np.empty((n, self.layout.n_event_types), dtype=np.int64),
            spend=np.empty(n),
            margin=np.empty(n),
            discount=np.empty(n),
            contact_cost=np.empty(n),
            delivered=np.empty(n, dtype=np.int64),
            refused=np.empty(n, dtype=np.bool_),
            left=np.empty(n, dtype=np.bool_),
        )
        z = np.zeros((n, self.n_step + self.hidden_size), dtype=np.float32)
        tail = np.zeros((n, self.n_known_ahead), dtype=np.float32)
        forecast = _forecast_params(s.forecast.params) + _forecast_expectations(s.forecast)
        requests = (actions, demand_shift, int(min_gap), self.seed_word)
        _block(
            requests,
            _user_arrays(s),
            _decay_arrays(s.decay),
            forecast,
            *self.constant_bundles,
            tuple(out),
            z,
            tail,
        )
        return StepOutcome(
            activity=PeriodActivity(counts=out.counts, spend=out.spend),
            reward=RewardComponents(margin=out.margin, discount=out.discount, contact_cost=out.contact_cost),
            delivered=out.delivered,
            refused=out.refused,
            opted_out=out.left,
        )


# The bundles of a state as plain tuples, gathered by field name (a field cannot land in another's place).
_user_arrays = operator.attrgetter(*UserArrays._fields)
_decay_arrays = operator.attrgetter(*DecayArrays._fields)
_forecast_params = operator.itemgetter(*ForecastArrays._fields[:5])
_forecast_expectations = operator.attrgetter(*ForecastArrays._fields[5:])
