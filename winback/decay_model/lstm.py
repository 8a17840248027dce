"""The learned decay model: an LSTM over each user's periods with hurdle count heads and a spend head.

Each period ``t`` of a user (from birth) is one LSTM step. Its inputs
(:mod:`winback.decay_model.lstm_period`, where they are defined for every path that computes them)
are ``log1p`` of the count of every event type, of the spend and of the contacts of each kind
received, tenure, a birth flag, recency and frequency, the calendar (sine/cosine of the day of
year; see below), and the posterior summaries of a BG/NBD model fitted on the same data,
``P(alive)`` and the log expected purchase rate given the user's ``(x, t_x, T)``: a structural
prior on how silence lowers interest that keeps holding when the model is rolled past the longest
tenure it was fitted on (without it the LSTM's forecasts drift once tenure leaves the fitting
range; see ``benchmarks/RESULTS.md``). The LSTM learns everything else: contacts, spend, other
event types, and corrections to the prior.

After step ``t`` the state predicts period ``t + 1`` through a head that also sees what is known in
advance about ``t + 1``: the contacts sent in it, its tenure and calendar. Per event type the head
gives a hurdle distribution: ``P(count > 0)`` and, when positive, ``count - 1 ~ NegBin(mu, theta)``;
the spend per purchase is log-normal. The user's interest is ``P(purchases > 0)`` with no contact.
Because contacts enter both the head (same-period effect) and the next step (lasting effect),
the model learns intervention effects when the log has randomised contacts.

Seasonality is decided on validation (:class:`CalendarChoice`). A calibration window shorter than a
year (:data:`CALENDAR_MIN_DAYS`) cannot show a season, so the calendar stays off. From a year on, the
model is fitted twice with the same seed, with and without the calendar inputs, and keeps the fit
with the lower loss on the held-out users inside calibration: the calendar can also stand in for
cohort age within one year, and only held-out users tell whether it helps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

import numpy as np
import torch
from scipy.special import expit, logit, ndtri
from scipy.stats import nbinom
from torch import nn

from winback.data.panel import PanelSpec, PeriodPanel, RFMSummary
from winback.data.shards import ShardedPanel
from winback.decay_model.base import (
    DecayModel,
    DecayState,
    Forecast,
    PeriodActivity,
    check_born,
    no_contacts,
    scale_expectations,
)
from winback.decay_model.bgnbd import BGNBDModel, require_repeat_buyers
from winback.decay_model.lstm_fit import (
    FitSequences,
    SequenceSource,
    ShardSequences,
    Training,
    hurdle_log_prob,
    next_period_targets,
    train_network,
)
from winback.decay_model.lstm_period import (
    LOG_MU_RANGE,
    LOG_THETA_RANGE,
    SPEND_LOG_SD_RANGE,
    SPEND_MEAN_OFFSET,
    InputLayout,
    write_known_ahead,
    write_step_inputs,
)
from winback.decay_model.marks import MarkMoments, PurchaseMarks
from winback.errors import ConfigError, DataError

CALENDAR_MIN_DAYS = 364
"""Days (52 weeks) a calibration window must cover before a fit with calendar inputs is tried."""
MIN_LEARNED_CONTACTS = 100
"""Contacts of a kind the fitting data must hold before the model's effect of that kind counts as learned."""


@dataclass(frozen=True)
class LSTMConfig:
    """Hyperparameters of :class:`LSTMDecayModel`.

    Defaults were chosen by validation inside the CDNOW calibration period
    (``benchmarks/decay_validation.py``), never on a holdout.
    """

    hidden_size: int = 32
    """LSTM hidden and cell size."""
    head_size: int = 32
    """Width of the hidden layer of the output head."""
    calendar: bool | None = None
    """Calendar inputs; ``None`` chooses on validation when the fitting window covers a year, and
    leaves them off on a shorter one (:class:`CalendarChoice`)."""
    tenure: bool = True
    """Tenure input (periods since birth, log scale)."""
    recency_frequency: bool = True
    """Recency (periods since the last purchase, or birth) and frequency (purchases so far) inputs:
    the sufficient statistics of the classic models, so the LSTM need not count gaps."""
    bgnbd_inputs: bool = True
    """Feed the BG/NBD posterior summaries (P(alive) and the log expected purchase rate, from a
    BG/NBD fitted on the same data and the user's x, t_x, T) as inputs: a structural prior on how
    silence lowers interest, which holds beyond the longest tenure seen in fitting."""
    batch_size: int = 128
    """Users per gradient step."""
    learning_rate: float = 3e-3
    max_epochs: int = 40
    patience: int = 4
    """Epochs without improvement of the held-out loss before stopping."""
    weight_average_decay: float = 0.995
    """Per-step decay of the exponential moving average of the weights that is validated, kept
    and used (0 uses the raw weights). Averaging damps the optimiser's noise, which otherwise
    shows as seed-to-seed swings of long forecasts."""
    validation_share: float = 0.1
    """Share of users held out (by a seeded draw) for early stopping."""
    spend_weight: float = 0.2
    """Weight of the spend log-likelihood relative to the counts'."""
    block_size: int = 4096
    """Users per forward pass when computing states and forecasts."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "head_size", "batch_size", "max_epochs", "block_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LSTMConfig.{name} = {getattr(self, name)} (allowed: >= 1)")
        if not 0 <= self.weight_average_decay < 1:
            raise ConfigError(
                f"LSTMConfig.weight_average_decay = {self.weight_average_decay} (allowed: [0, 1))"
            )
        if not 0 < self.validation_share < 1:
            raise ConfigError(f"LSTMConfig.validation_share = {self.validation_share} (allowed: (0, 1))")


@dataclass(frozen=True)
class CalendarChoice:
    """How a fit decided on the calendar inputs; saved in the artifact and stated in the decay report."""

    calendar: bool
    how: Literal["config", "short_window", "validation"]
    """Set by :attr:`LSTMConfig.calendar`, off because the window is shorter than
    :data:`CALENDAR_MIN_DAYS`, or chosen on the held-out users."""
    window_days: int
    """Days the calibration (fitting) window covers."""
    val_loss: dict[str, float] = dataclasses.field(default_factory=dict)
    """Best held-out loss per target of each candidate (``calendar``, ``no_calendar``) when chosen
    on validation."""

    def describe(self) -> str:
        """One sentence for a report."""
        weeks = f"{self.window_days / 7:.3g} weeks"
        state = "on" if self.calendar else "off"
        if self.how == "config":
            return f"calendar inputs {state}, set by LSTMConfig.calendar (calibration window: {weeks})"
        if self.how == "short_window":
            return (
                f"calendar inputs off: the calibration window covers {weeks}, less than a year: the "
                "model cannot see a season"
            )
        return (
            f"calendar inputs {state}, chosen on the held-out users of a {weeks} calibration window: "
            f"validation loss {self.val_loss[_CANDIDATES[True]]:.5f} with the calendar, "
            f"{self.val_loss[_CANDIDATES[False]]:.5f} without"
        )


_CANDIDATES = {False: "no_calendar", True: "calendar"}
"""Name of each calendar candidate: its key in :attr:`CalendarChoice.val_loss` and its checkpoint
subdirectory."""


class _Network(nn.Module):
    def __init__(self, n_inputs: int, n_head_inputs: int, n_event_types: int, config: LSTMConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_inputs, config.hidden_size, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(config.hidden_size + n_head_inputs, config.head_size),
            nn.ReLU(),
            nn.Linear(config.head_size, 3 * n_event_types + 2),
        )
        self.n_event_types = n_event_types

    def heads(self, hidden: torch.Tensor, head_inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return _split_head(self.head(torch.cat([hidden, head_inputs], dim=-1)), self.n_event_types)


_Array = TypeVar("_Array", torch.Tensor, np.ndarray)


def _split_head(out: _Array, n_event_types: int) -> dict[str, _Array]:
    """The named distribution parameters in the head's raw output (torch or numpy; the ranges of
    :mod:`~winback.decay_model.lstm_period`)."""
    e = n_event_types
    return {
        "logit_active": out[..., :e],
        "log_mu": out[..., e : 2 * e].clip(*LOG_MU_RANGE),
        "log_theta": out[..., 2 * e : 3 * e].clip(*LOG_THETA_RANGE),
        "spend_mean": out[..., 3 * e] + SPEND_MEAN_OFFSET,
        "spend_log_sd": out[..., 3 * e + 1].clip(*SPEND_LOG_SD_RANGE),
    }


class _Kernel:
    """The fitted network as numpy arrays with the inputs it reads, for one-period inference
    (``forecast`` and ``advance``, and the compiled simulator step).

    A period of the simulator is one LSTM cell step and one head evaluation for a batch of users.
    Written with numpy rather than torch because torch's per-call overhead dominates small batches
    (~40 us per cell call against ~16 us here at one user). With one thread it matches torch's cell
    at a thousand users (1.06M vs 1.02M users/s); with two it runs at half of it (1.08M vs 2.12M,
    ``benchmarks/RESULTS.md``, simulator speed), and its BLAS threads are not governed by
    ``torch.set_num_threads``.
    """

    def __init__(self, network: _Network, layout: InputLayout) -> None:
        self.layout = layout
        weights = {k: v.detach().numpy().astype(np.float32) for k, v in network.state_dict().items()}
        self.hidden_size = network.lstm.hidden_size
        self.n_event_types = network.n_event_types
        self.lstm_weight = np.ascontiguousarray(
            np.concatenate([weights["lstm.weight_ih_l0"], weights["lstm.weight_hh_l0"]], axis=1).T
        )
        self.lstm_bias = weights["lstm.bias_ih_l0"] + weights["lstm.bias_hh_l0"]
        self.head_weight_1 = np.ascontiguousarray(weights["head.0.weight"].T)
        self.head_bias_1 = weights["head.0.bias"]
        self.head_weight_2 = np.ascontiguousarray(weights["head.2.weight"].T)
        self.head_bias_2 = weights["head.2.bias"]

    def step(self, inputs: np.ndarray, hidden: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LSTM cell step (gate order i, f, g, o as in ``torch.nn.LSTM``)."""
        h = self.hidden_size
        gates = np.concatenate([inputs, hidden], axis=1) @ self.lstm_weight
        gates += self.lstm_bias
        new_cell = _sigmoid(gates[:, h : 2 * h]) * cell
        new_cell += _sigmoid(gates[:, :h]) * np.tanh(gates[:, 2 * h : 3 * h])
        return _sigmoid(gates[:, 3 * h :]) * np.tanh(new_cell), new_cell

    def heads(self, hidden: np.ndarray, head_inputs: np.ndarray) -> dict[str, np.ndarray]:
        layer = np.concatenate([hidden, head_inputs], axis=1) @ self.head_weight_1
        layer += self.head_bias_1
        np.maximum(layer, 0.0, out=layer)
        out = layer @ self.head_weight_2
        out += self.head_bias_2
        return _split_head(out, self.n_event_types)


@dataclass
class LSTMState(DecayState):
    hidden: np.ndarray
    """(n, H) float32."""
    cell: np.ndarray
    """(n, H) float32."""
    first_period: np.ndarray
    """(n,) birth period, for tenure."""
    last_purchase: np.ndarray
    """(n,) period of the last purchase (birth if none), for recency."""
    frequency: np.ndarray
    """(n,) purchases so far."""


TrainCandidate = Callable[["_Network", str | Path | None, str], Training]
"""Trains a freshly built network in place (given its checkpoint directory and progress label)."""


@dataclass(frozen=True)
class RayBackend:
    """Where :meth:`LSTMDecayModel.fit_shards` trains with Ray: ``address`` of a running cluster
    (``None``: a local Ray of ``workers + 1`` CPUs, one for Ray Data's reads) and ``workers``
    data-parallel CPU workers."""

    workers: int = 2
    address: str | None = None


class LSTMDecayModel(DecayModel):
    """Learned interest decay (see the module docstring)."""

    name: ClassVar[str] = "lstm"
    uses_contacts: ClassVar[bool] = True

    def __init__(self, config: LSTMConfig | None = None) -> None:
        self.cfg = config or LSTMConfig()
        self.calendar = bool(self.cfg.calendar)
        self.network: _Network | None = None
        self.kernel: _Kernel | None = None
        self.prior: BGNBDModel | None = None
        self.history: list[dict[str, float]] = []
        self.contact_counts: dict[str, int] = {}
        """Contacts of each kind in the fitting data."""
        self.calendar_choice: CalendarChoice | None = None
        """How the fit decided on the calendar (``None`` for artifacts saved before it was recorded)."""

    # ----------------------------------------------------------------------------------- features
    def input_layout(self) -> InputLayout:
        """The inputs this model reads (:mod:`winback.decay_model.lstm_period`)."""
        spec = self._require_fitted()
        prior = self.prior
        return InputLayout(
            n_event_types=len(spec.event_types),
            n_contact_kinds=len(spec.interventions),
            tenure=self.cfg.tenure,
            calendar=self.calendar,
            recency_frequency=self.cfg.recency_frequency,
            bgnbd=self.cfg.bgnbd_inputs,
            origin_day=float(spec.origin_date.timetuple().tm_yday - 1),
            period_days=float(spec.period_days),
            prior_r=prior.r if prior else 0.0,
            prior_alpha=prior.alpha if prior else 0.0,
            prior_a=prior.a if prior else 0.0,
            prior_b=prior.b if prior else 0.0,
        )

    def _sequences(self, panel: PeriodPanel, until: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Left-aligned sequences from birth: (inputs (n, L, step), next-period head inputs, lengths)."""
        lengths = (until - panel.first_period).astype(np.int64)
        max_len = int(lengths.max())
        offsets = np.arange(max_len)
        period = panel.first_period[:, None] + offsets[None, :]
        valid = offsets[None, :] < lengths[:, None]
        period_c = np.minimum(period, panel.spec.n_periods - 1)
        rows = np.arange(panel.n_users)[:, None]
        counts = np.where(valid[..., None], panel.counts[rows, period_c], 0)
        spend = np.where(valid, panel.spend[rows, period_c], 0.0)
        contacts = np.where(valid[..., None], panel.interventions[rows, period_c], 0)
        first = panel.first_period[:, None]
        purchases = counts[..., -1]
        last_purchase = np.maximum.accumulate(np.where(purchases > 0, period, first), axis=1)
        frequency = np.cumsum(purchases, axis=1)
        layout = self.input_layout()
        inputs = np.empty((*period.shape, layout.n_step), dtype=np.float32)
        write_step_inputs(
            _columns(inputs), layout, period, first, _columns(counts), spend, _columns(contacts),
            last_purchase, frequency,
        )  # fmt: skip
        next_period = np.minimum(period + 1, panel.spec.n_periods - 1)
        next_valid = offsets[None, :] + 1 < lengths[:, None]
        next_contacts = np.where(next_valid[..., None], panel.interventions[rows, next_period], 0)
        head_inputs = np.empty((*period.shape, layout.n_known_ahead), dtype=np.float32)
        write_known_ahead(_columns(head_inputs), 0, layout, period + 1, first, _columns(next_contacts))
        return inputs * valid[..., None], head_inputs, lengths

    # ---------------------------------------------------------------------------------------- fit
    def fit(
        self,
        panel: PeriodPanel,
        *,
        until: int,
        seed: int = 0,
        progress: bool = False,
        checkpoint_dir: str | Path | None = None,
    ) -> Self:
        """Fit on periods before ``until`` with early stopping on held-out users
        (:func:`~winback.decay_model.lstm_fit.train_network`), the calendar decided as the module
        docstring says (the choice is kept in :attr:`calendar_choice`).

        With ``checkpoint_dir``, the state after every epoch is written there (safetensors + JSON)
        and a later call with the same directory resumes from it; when both calendar candidates
        are fitted, each has its own subdirectory (``calendar``, ``no_calendar``), so a resumed fit
        skips a finished candidate and continues the other.
        """
        panel = panel.select(panel.born_before(until))
        contacts = panel.interventions[:, :until].sum(axis=(0, 1), dtype=np.int64)
        return self._fit(
            panel.spec,
            until,
            contacts,
            lambda: BGNBDModel().fit(panel, until=until),
            self._local_training(lambda: self._fit_sequences(panel, until), seed, progress),
            seed,
            checkpoint_dir,
        )

    def fit_shards(
        self,
        panel: ShardedPanel,
        *,
        until: int,
        seed: int = 0,
        progress: bool = False,
        checkpoint_dir: str | Path | None = None,
        ray: RayBackend | None = None,
    ) -> Self:
        """:meth:`fit` on a panel stored as user shards (:mod:`winback.data.shards`), holding one
        shard's sequences at a time (:class:`~winback.decay_model.lstm_fit.ShardSequences`): memory
        follows the shard, plus the BG/NBD prior's three summaries per user (24 bytes).

        Users are held out by a seeded hash of their id (:func:`~winback.decay_model.lstm_fit.held_out`),
        so the fit is not :meth:`fit`'s on the same users, but it is the same model, loss and early
        stopping. With ``ray``, the network is trained by Ray Train's data-parallel workers reading the
        shards through Ray Data (:mod:`winback.decay_model.lstm_ray`; ``checkpoint_dir`` unused).
        """
        contacts = np.zeros(len(panel.spec.interventions), dtype=np.int64)
        rfms, moments = [], MarkMoments()
        for shard in panel:
            shard = shard.select(shard.born_before(until))
            contacts += shard.interventions[:, :until].sum(axis=(0, 1), dtype=np.int64)
            rfms.append(shard.rfm(until))
            moments.add(shard, until)
        rfm = RFMSummary(
            *(np.concatenate([getattr(part, name) for part in rfms]) for name in ("x", "t_x", "T"))
        )

        def prior() -> BGNBDModel:
            require_repeat_buyers(rfm, panel.spec, until)
            return BGNBDModel().fit_summary(
                rfm, PurchaseMarks.from_moments(moments, panel.spec, until), panel.spec
            )

        def sequences() -> ShardSequences:
            return ShardSequences(
                panel, until, lambda shard: self._fit_sequences(shard, until), seed, self.cfg.validation_share
            )

        if ray is None:
            training = self._local_training(sequences, seed, progress)
        else:
            from winback.decay_model.lstm_ray import ray_training

            training = ray_training(self, panel, until, seed, ray, progress)
        return self._fit(panel.spec, until, contacts, prior, training, seed, checkpoint_dir)

    def _local_training(
        self, sequences: Callable[[], FitSequences | SequenceSource], seed: int, progress: bool
    ) -> TrainCandidate:
        """Trains a candidate network in this process (:func:`train_network`)."""

        def train(network: _Network, checkpoint_dir: str | Path | None, label: str) -> Training:
            return train_network(
                network, sequences(), self.cfg, seed=seed, progress=progress, checkpoint_dir=checkpoint_dir,
                history=list(self.history), label=label,
            )  # fmt: skip

        return train

    def _fit(
        self,
        spec: PanelSpec,
        until: int,
        contacts: np.ndarray,
        fit_prior: Callable[[], BGNBDModel],
        train: TrainCandidate,
        seed: int,
        checkpoint_dir: str | Path | None,
    ) -> Self:
        """The fit of :meth:`fit` and :meth:`fit_shards`, given the users' contacts, prior and a trainer
        of each candidate network (called with the calendar decided in :attr:`calendar`)."""
        window_days = until * spec.period_days
        if self.cfg.calendar is not None:
            how, candidates = "config", [self.cfg.calendar]
        elif window_days < CALENDAR_MIN_DAYS:
            how, candidates = "short_window", [False]
        else:
            how, candidates = "validation", [False, True]
        self.spec = spec
        self.contact_counts = dict(zip(spec.interventions, map(int, contacts), strict=True))
        if self.cfg.bgnbd_inputs:
            try:
                self.prior = fit_prior()
            except DataError as err:
                raise DataError(
                    f"the LSTM's BG/NBD prior input (LSTMConfig.bgnbd_inputs): {err.problem}",
                    expected=err.expected,
                ) from err
        fits: dict[bool, tuple[_Network, Training]] = {}
        for calendar in candidates:
            self.calendar = calendar
            directory = checkpoint_dir
            if checkpoint_dir is not None and len(candidates) > 1:
                directory = Path(checkpoint_dir) / _CANDIDATES[calendar]
            label = (
                f"fit lstm ({_CANDIDATES[calendar].replace('_', ' ')})" if len(candidates) > 1 else "fit lstm"
            )
            network = self._build_network(spec, torch.Generator().manual_seed(seed))
            fits[calendar] = network, train(network, directory, label)
        # Ties keep the model without the calendar (the first candidate): fewer inputs.
        self.calendar = min(candidates, key=lambda calendar: fits[calendar][1].best_val_loss)
        network, training = fits[self.calendar]
        self.calendar_choice = CalendarChoice(
            calendar=self.calendar,
            how=how,
            window_days=int(window_days),
            val_loss={_CANDIDATES[c]: fits[c][1].best_val_loss for c in candidates}
            if len(candidates) > 1
            else {},
        )
        self.history = training.history
        self.network, self.kernel = network, _Kernel(network, self.input_layout())
        return self

    def _fit_sequences(self, panel: PeriodPanel, until: int) -> FitSequences:
        """What the network of :meth:`input_layout`'s inputs reads, from the periods before ``until``."""
        until_array = np.full(panel.n_users, until, dtype=np.int64)
        inputs, head_inputs, lengths = self._sequences(panel, until_array)
        return FitSequences(inputs, head_inputs, *next_period_targets(panel, lengths), lengths)

    def fit_notes(self) -> tuple[str, ...]:
        if self.calendar_choice is None:
            state = "on" if self.calendar else "off"
            return (f"calendar inputs {state} (how they were chosen is not recorded in this artifact)",)
        return (self.calendar_choice.describe(),)

    def _build_network(self, spec: PanelSpec, generator: torch.Generator) -> _Network:
        layout = self.input_layout()
        network = _Network(layout.n_step, layout.n_known_ahead, len(spec.event_types), self.cfg)
        with torch.no_grad():
            for parameter in network.parameters():
                if parameter.dim() > 1:
                    bound = 1.0 / math.sqrt(parameter.shape[1])
                    parameter.copy_(torch.empty_like(parameter).uniform_(-bound, bound, generator=generator))
                else:
                    parameter.zero_()
        return network

    # ---------------------------------------------------------------------------------- interface
    @torch.no_grad()
    def initial_state(self, panel: PeriodPanel, *, until: int | np.ndarray) -> LSTMState:
        network = self._require_network()
        until_array = check_born(panel, until)
        hidden = np.zeros((panel.n_users, self.cfg.hidden_size), dtype=np.float32)
        cell = np.zeros_like(hidden)
        for start in range(0, panel.n_users, self.cfg.block_size):
            block = np.arange(start, min(start + self.cfg.block_size, panel.n_users))
            inputs, _, lengths = self._sequences(panel.select(block), until_array[block])
            packed = nn.utils.rnn.pack_padded_sequence(
                torch.from_numpy(inputs), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
            )
            _, (h, c) = network.lstm(packed)
            hidden[block], cell[block] = h[0].numpy(), c[0].numpy()
        periods = np.arange(panel.spec.n_periods)[None, :]
        seen = (periods < until_array[:, None]) & (periods >= panel.first_period[:, None])
        bought = seen & (panel.purchases > 0)
        return LSTMState(
            period=until_array,
            hidden=hidden,
            cell=cell,
            first_period=panel.first_period.copy(),
            last_purchase=np.maximum(np.where(bought, periods, -1).max(axis=1), panel.first_period),
            frequency=(panel.purchases * seen).sum(axis=1).astype(np.float64),
        )

    def forecast(self, state: LSTMState, contacts: np.ndarray | None = None) -> Forecast:
        spec = self._require_fitted()
        kernel = self._require_kernel()
        if contacts is None:
            contacts = no_contacts(len(state.period), spec)
        layout = kernel.layout
        head_inputs = np.empty((len(state.period), layout.n_known_ahead), dtype=np.float32)
        write_known_ahead(head_inputs.T, 0, layout, state.period, state.first_period, contacts.T)
        params = kernel.heads(state.hidden, head_inputs)
        p_active = expit(params["logit_active"][:, -1])
        purchases = p_active * (1.0 + np.exp(params["log_mu"][:, -1]))
        spend_per_purchase = np.exp(params["spend_mean"] + np.exp(params["spend_log_sd"]) ** 2 / 2)
        return Forecast(
            p_active=p_active,
            expected_purchases=purchases,
            expected_spend=purchases * spend_per_purchase,
            params=params,
        )

    def _with_p_active(self, forecast: Forecast, p_active: np.ndarray) -> Forecast:
        logit_active = forecast.params["logit_active"].copy()
        logit_active[:, -1] = logit(p_active)
        return scale_expectations(forecast, p_active, logit_active=logit_active)

    def learned_contacts(self) -> tuple[str, ...]:
        return tuple(kind for kind, n in self.contact_counts.items() if n >= MIN_LEARNED_CONTACTS)

    def uniforms_per_user(self) -> int:
        """Per event type one uniform for being active and one for the count, plus one for the spend."""
        return 2 * len(self._require_fitted().event_types) + 1

    def sample(self, forecast: Forecast, uniforms: np.ndarray) -> PeriodActivity:
        p = forecast.params
        n_types = p["logit_active"].shape[1]
        active = np.nonzero(uniforms[:, :n_types] < expit(p["logit_active"]))
        mu, theta = np.exp(p["log_mu"][active]), np.exp(p["log_theta"][active])
        counts = np.zeros(p["logit_active"].shape, dtype=np.int64)
        u_count = uniforms[:, n_types : 2 * n_types][active]
        counts[active] = 1 + _negative_binomial_quantile(u_count, mu, theta)
        buyers = np.flatnonzero(counts[:, -1])
        spend = np.zeros(len(counts))
        z = ndtri(uniforms[buyers, 2 * n_types])
        per_purchase = np.exp(p["spend_mean"][buyers] + np.exp(p["spend_log_sd"][buyers]) * z)
        spend[buyers] = counts[buyers, -1] * per_purchase
        return PeriodActivity(counts=counts, spend=spend)

    def log_prob(self, forecast: Forecast, purchases: np.ndarray) -> np.ndarray:
        p = forecast.params
        log_prob = hurdle_log_prob(
            torch.from_numpy(np.asarray(purchases, dtype=np.float64)),
            torch.from_numpy(p["logit_active"][:, -1]),
            torch.from_numpy(p["log_mu"][:, -1]),
            torch.from_numpy(p["log_theta"][:, -1]),
        )
        return log_prob.numpy()

    def advance(
        self, state: LSTMState, activity: PeriodActivity, contacts: np.ndarray | None = None
    ) -> LSTMState:
        spec = self._require_fitted()
        kernel = self._require_kernel()
        if contacts is None:
            contacts = no_contacts(len(state.period), spec)
        bought = activity.purchases > 0
        last_purchase = np.where(bought, state.period, state.last_purchase)
        frequency = state.frequency + activity.purchases
        layout = kernel.layout
        inputs = np.empty((len(state.period), layout.n_step), dtype=np.float32)
        write_step_inputs(
            inputs.T, layout, state.period, state.first_period, activity.counts.T, activity.spend,
            contacts.T, last_purchase, frequency,
        )  # fmt: skip
        hidden, cell = kernel.step(inputs, state.hidden, state.cell)
        return dataclasses.replace(
            state,
            period=state.period + 1,
            hidden=hidden,
            cell=cell,
            last_purchase=last_purchase,
            frequency=frequency,
        )

    # ------------------------------------------------------------------------------ serialisation
    def config(self) -> dict[str, Any]:
        return {
            "lstm": dataclasses.asdict(self.cfg),
            "calendar": self.calendar,
            "history": self.history,
            "bgnbd_prior": None if self.prior is None else self.prior.config(),
            "contact_counts": self.contact_counts,
            "calendar_choice": None
            if self.calendar_choice is None
            else dataclasses.asdict(self.calendar_choice),
        }

    def tensors(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._require_network().state_dict().items()}

    @classmethod
    def from_artifact(cls, config: dict[str, Any], tensors: dict[str, np.ndarray], spec: PanelSpec) -> Self:
        model = cls(LSTMConfig(**config["lstm"]))
        model.calendar = bool(config["calendar"])
        model.history = list(config["history"])
        model.contact_counts = {str(k): int(v) for k, v in config["contact_counts"].items()}
        choice = config.get("calendar_choice")  # absent from artifacts saved before it was recorded
        model.calendar_choice = None if choice is None else CalendarChoice(**choice)
        model.spec = spec
        if config["bgnbd_prior"] is not None:
            model.prior = BGNBDModel.from_artifact(config["bgnbd_prior"], {}, spec)
        network = model._build_network(spec, torch.Generator().manual_seed(0))
        network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
        network.eval()
        model.network, model.kernel = network, _Kernel(network, model.input_layout())
        return model

    def _require_network(self) -> _Network:
        self._require_fitted()
        assert self.network is not None
        return self.network

    def _require_kernel(self) -> _Kernel:
        self._require_fitted()
        assert self.kernel is not None
        return self.kernel


def _negative_binomial_quantile(
    u: np.ndarray, mu: np.ndarray, theta: np.ndarray, max_steps: int = 64
) -> np.ndarray:
    """Smallest ``k`` with ``P(K <= k) >= u`` for ``K ~ NegBin(mean mu, shape theta)``.

    Walks the pmf recursion ``P(k+1) = P(k) (k + theta) / (k + 1) * mu / (mu + theta)`` for all users
    at once: counts are small, so a few vectorised steps replace scipy's per-element root search
    (``nbinom.ppf``), which is kept for the rare draws deeper in the tail than ``max_steps``.
    """
    mu, theta = mu.astype(np.float64), theta.astype(np.float64)
    ratio = mu / (mu + theta)
    pmf = np.exp(theta * np.log1p(-ratio))
    cdf = pmf.copy()
    k = np.zeros(len(u), dtype=np.int64)
    open_ = np.flatnonzero(cdf < u)
    for step in range(max_steps):
        if not open_.size:
            return k
        pmf[open_] *= (step + theta[open_]) / (step + 1) * ratio[open_]
        cdf[open_] += pmf[open_]
        k[open_] += 1
        open_ = open_[cdf[open_] < u[open_]]
    k[open_] = nbinom.ppf(u[open_], theta[open_], 1.0 - ratio[open_]).astype(np.int64)
    return k


def _columns(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` with its last axis first: the column-first layout the writers index."""
    return np.moveaxis(array, -1, 0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function; numpy's vectorised ``exp`` beats ``scipy.special.expit`` on float32 blocks."""
    return 1.0 / (1.0 + np.exp(-x))
