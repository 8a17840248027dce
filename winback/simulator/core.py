"""The batched user simulator: N users live one period per ``step(actions)``.

A period of one user, in order (RecSim's composition, batched over users):

1. the action is *delivered* unless it is refused: no contact after an opt-out, no coupon while one
   of the same kind is valid (refused actions cost nothing and count as ``none``);
2. a delivered contact sets its kind's log-odds lift (:mod:`winback.simulator.response`), scaled
   down by fatigue, to the larger of the fresh lift and the one still in force (repeats of a kind
   saturate, kinds add);
3. the decay model forecasts the period (with the contacts whose effect it learned, if any), the
   summed lift raises the odds of buying (wear-out, if set, lowers them for over-contacted users),
   and the period's activity is drawn from the user's own random stream
   (:class:`winback.streams.RandomStreams`): the same user meets the same luck under every policy,
   so a contact only adds buyers who would not have bought anyway;
4. rewards: margin on spend, minus discounts paid while a coupon is valid (on every purchase, those
   the user would have made anyway included), minus contact costs (:mod:`winback.simulator.rewards`);
5. fatigue grows and the user may opt out; the activity, intervention-caused purchases included, is
   fed back to the decay model, so a win-back rekindles future interest through the learned dynamics;
6. lifts fade, coupons expire, fatigue decays, and the decay model forecasts the next period.

Users are processed in blocks of ``block_size`` (about a thousand users keeps the LSTM's working set
in cache: on this machine the LSTM cell runs at ~1.5M user-steps/s at a thousand users and at half
that at 16k, out of cache), each with one batched decay-model forward pass; with the compiled step
(:mod:`winback.simulator.fused`, every LSTM model) the blocks of a population larger than one block run on
``threads`` threads at once, BLAS at one thread (:mod:`winback.simulator.threads`). Blocks are
independent (every user draws from its own stream), so the numbers do not depend on the block size
or the threads. The state is changed in place; copy it first to replay a population under another
policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import torch

from winback.contact_records import close_period, receive
from winback.decay_model.base import DecayModel, DecayState, Forecast, PeriodActivity
from winback.decay_model.lstm import LSTMDecayModel
from winback.errors import ConfigError
from winback.simulator.fused import FusedLSTMStep
from winback.simulator.outcome import StepOutcome
from winback.simulator.response import ResponseConfig, ResponseTables, contact_lift, opt_out_probability
from winback.simulator.rewards import RewardComponents, RewardConfig, reward_components
from winback.simulator.state import SINCE_CAP, SimState
from winback.simulator.threads import block_pool, single_threaded_blas
from winback.streams import RandomStreams


@dataclass(frozen=True)
class SimulatorConfig:
    response: ResponseConfig = field(default_factory=ResponseConfig)
    """How users respond to contacts, with the documented priors."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Margin on spend."""
    block_size: int = 1024
    """Users per batched decay-model pass."""
    compiled: bool = True
    """Step blocks of an LSTM decay model through :mod:`winback.simulator.fused` (every configuration
    of the model); ``False`` always composes the decay model's methods (the reference the compiled
    step is tested against). Other decay models have no compiled step: the simulator composes their
    methods and says so once."""
    threads: int | None = None
    """Blocks of the compiled step run at once; ``None``: ``torch.get_num_threads()``, so
    ``torch.set_num_threads`` governs the simulator as it governs the decay model."""

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ConfigError(f"SimulatorConfig.block_size = {self.block_size} (allowed: >= 1)")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"SimulatorConfig.threads = {self.threads} (allowed: >= 1, or None)")


_log = logging.getLogger(__name__)
_COMPOSED_NOTED: set[str] = set()
"""Decay models the simulator has already said it composes (said once per process)."""

_NO_SHIFT = np.zeros(1024)
"""Shared zeros for steps without a demand shift (only ever read)."""


def _demand_shift(demand_shift: np.ndarray | None, n_users: int) -> np.ndarray:
    """(n,) float64 log-odds shifts of demand (shared zeros when ``None``), checked."""
    if demand_shift is None:
        return _NO_SHIFT[:n_users] if n_users <= len(_NO_SHIFT) else np.zeros(n_users)
    shift = np.asarray(demand_shift, dtype=np.float64)
    if shift.shape != (n_users,) or not np.isfinite(shift).all():
        raise ValueError(f"demand_shift must be ({n_users},) finite floats, got shape {shift.shape}")
    return shift


@nb.njit(cache=True)
def _outside(actions: np.ndarray, n_actions: int) -> bool:
    """Whether any action is outside ``[0, n_actions)`` (compiled: checked on every step)."""
    for action in actions:
        if action < 0 or action >= n_actions:
            return True
    return False


class Simulator:
    """Steps a population of users under a decay model and the response priors (module docstring)."""

    def __init__(self, model: DecayModel, config: SimulatorConfig | None = None, *, seed: int = 0) -> None:
        self.model = model
        self.config = config or SimulatorConfig()
        self.kinds: tuple[str, ...] = self.config.response.kinds
        self.actions: tuple[str, ...] = self.config.response.actions
        """Action names, ``none`` first: action ``i > 0`` sends a contact of kind ``kinds[i - 1]``."""
        self.streams = RandomStreams(seed)
        self.tables = ResponseTables.from_config(self.config.response)
        spec = model._require_fitted()
        self.n_model_uniforms = model.uniforms_per_user()
        self.learned = self._learned_kinds(model)
        self._model_contact_index = np.array(
            [spec.interventions.index(k) if k in self.learned else -1 for k in self.kinds], dtype=np.int64
        )
        self._uses_prior = np.array([k not in self.learned for k in self.kinds])
        self.is_coupon = self.tables.validity > 0
        """(K,) bool: which contact kinds are coupon-like (have a validity)."""
        self._fused = (
            FusedLSTMStep(
                model,
                self.tables,
                self._model_contact_index,
                self.config.reward,
                self.config.response.new_user_periods,
                self.streams.seed_word,
            )
            if self.config.compiled and isinstance(model, LSTMDecayModel)
            else None
        )
        if self.config.compiled and self._fused is None and model.name not in _COMPOSED_NOTED:
            _COMPOSED_NOTED.add(model.name)
            _log.warning(
                "the '%s' decay model has no compiled simulator step; its methods are composed (slower)",
                model.name,
            )

    def _learned_kinds(self, model: DecayModel) -> frozenset[str]:
        learned = set(model.learned_contacts()) & set(self.kinds)
        effects = self.config.response.effects
        if effects == "prior":
            return frozenset()
        if effects == "learned" and (missing := [k for k in self.kinds if k not in learned]):
            raise ConfigError(
                f"ResponseConfig.effects = 'learned', but the decay model learned no effect of {missing} "
                f"(learned: {sorted(learned) or 'none'}); use effects = 'auto' or 'prior', or fit the "
                "model on a log with these contacts"
            )
        return frozenset(learned)

    # ------------------------------------------------------------------------------- population
    def start(
        self,
        decay: DecayState,
        keys: np.ndarray,
        *,
        birth: np.ndarray,
        recency: np.ndarray,
        frequency: np.ndarray,
        spend_total: np.ndarray,
        fatigue: np.ndarray | None = None,
        since_contact: np.ndarray | None = None,
        valid_left: np.ndarray | None = None,
    ) -> SimState:
        """A population from decay-model states and each user's history summary (no contact by default)."""
        n, n_kinds = len(keys), len(self.kinds)
        return SimState(
            keys=np.asarray(keys, dtype=np.uint64),
            decay=decay,
            forecast=self._forecast_blocks(decay),
            birth=np.asarray(birth, dtype=np.int64),
            recency=np.asarray(recency, dtype=np.int64),
            frequency=np.asarray(frequency, dtype=np.int64),
            spend_total=np.asarray(spend_total, dtype=np.float64),
            fatigue=np.zeros(n) if fatigue is None else np.asarray(fatigue, dtype=np.float64),
            opted_out=np.zeros(n, dtype=bool),
            lift=np.zeros((n, n_kinds)),
            valid_left=np.zeros((n, n_kinds), dtype=np.int64) if valid_left is None else valid_left,
            since_contact=(
                np.full((n, n_kinds), SINCE_CAP, dtype=np.int64) if since_contact is None else since_contact
            ),
        )

    def _forecast_blocks(self, decay: DecayState) -> Forecast:
        n, size = len(decay.period), self.config.block_size
        return Forecast.concatenate(
            [self.model.forecast(decay.take(slice(i, i + size))) for i in range(0, max(n, 1), size)]
        )

    # ------------------------------------------------------------------------------------ views
    def interest(self, state: SimState) -> np.ndarray:
        """(n,) P(buying in the coming period) if nothing new is sent, lifts still in force included."""
        shift = state.lift.sum(axis=1)
        return self.model.lift(state.forecast, shift).p_active if shift.any() else state.forecast.p_active

    def action_masks(self, state: SimState, min_gap: int = 0) -> np.ndarray:
        """(n, A) bool: the actions that would be delivered (``none`` always is).

        A contact is refused after an opt-out, while a coupon of its kind is valid, and, with a
        frequency cap ``min_gap``, until ``min_gap`` periods have passed since the last contact of any kind.
        """
        masks = np.ones((state.n_users, len(self.actions)), dtype=bool)
        masks[:, 1:] = ~state.opted_out[:, None] & ~(self.is_coupon[None, :] & (state.valid_left > 0))
        if min_gap > 0:
            masks[:, 1:] &= (state.since_contact.min(axis=1) >= min_gap)[:, None]
        return masks

    def expected_reward(
        self,
        state: SimState,
        actions: np.ndarray,
        *,
        min_gap: int = 0,
        demand_shift: np.ndarray | None = None,
    ) -> RewardComponents:
        """Each user's reward for ``actions`` in the coming period, in expectation over its draws.

        Call before :meth:`step` with the same actions: the delivered contacts go through the decay
        model (learned kinds) and the lifts (prior-driven kinds) as ``step`` sends them, and margin
        and discounts are taken on the expected spend of that forecast. A low-variance training
        signal with the realised reward's expectation (the realised reward is what benchmarks measure).
        """
        tables, n = self.tables, state.n_users
        _, contacted, kind, fresh = self._deliver(state, actions, min_gap)
        lift = state.lift.copy()
        lift[contacted, kind] = np.maximum(lift[contacted, kind], fresh)
        valid = state.valid_left > 0
        valid[contacted, kind] |= tables.validity[kind] > 0
        shift = self._with_wear_out(_demand_shift(demand_shift, n), state.fatigue)
        forecast, _ = self._period_forecast(state, lift, contacted, kind, shift)
        spend = forecast.expected_spend
        contact_cost = np.zeros(n)
        contact_cost[contacted] = tables.cost[kind]
        return reward_components(spend, valid @ tables.discount, contact_cost, self.config.reward)

    # ------------------------------------------------------------------------------------- step
    def step(
        self,
        state: SimState,
        actions: np.ndarray,
        *,
        min_gap: int = 0,
        demand_shift: np.ndarray | None = None,
    ) -> StepOutcome:
        """Advance every user one period under ``actions`` ((n,) ints into :attr:`actions`), in place.

        Actions outside :meth:`action_masks` (with the frequency cap ``min_gap``) are refused.
        ``demand_shift`` ((n,) float) is added to every user's log-odds of buying this period, as a
        lift is: a demand shock such as a holiday peak (``log(multiplier)`` of the odds).
        """
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (state.n_users,):
            raise ValueError(f"actions has shape {actions.shape}, expected ({state.n_users},)")
        demand_shift = self._with_wear_out(_demand_shift(demand_shift, state.n_users), state.fatigue)
        if _outside(actions, len(self.actions)):
            raise ValueError(f"actions must be in [0, {len(self.actions)}) ({', '.join(self.actions)})")
        size = self.config.block_size
        if state.n_users <= size:
            return self._step_block(state, actions, min_gap, demand_shift)
        starts = range(0, state.n_users, size)

        def step_block(i: int) -> StepOutcome:
            block = slice(i, i + size)
            return self._step_block(state.take(block), actions[block], min_gap, demand_shift[block])

        if self._fused is None:
            return StepOutcome.concatenate([step_block(i) for i in starts])
        threads = min(self.config.threads or torch.get_num_threads(), len(starts))
        with single_threaded_blas():
            if threads == 1:
                return StepOutcome.concatenate([step_block(i) for i in starts])
            return StepOutcome.concatenate(list(block_pool(threads).map(step_block, starts)))

    def _with_wear_out(self, demand_shift: np.ndarray, fatigue: np.ndarray) -> np.ndarray:
        """``demand_shift`` lowered by each user's wear-out (fatigue beyond the tolerance), if any."""
        response = self.config.response
        if response.fatigue_annoyance == 0:
            return demand_shift
        excess = np.maximum(fatigue - response.fatigue_tolerance, 0.0)
        return demand_shift - response.fatigue_annoyance * excess

    def _step_block(
        self, s: SimState, actions: np.ndarray, min_gap: int, demand_shift: np.ndarray
    ) -> StepOutcome:
        """One period for a block of users; ``s`` holds views into the population, changed in place."""
        tables, n = self.tables, s.n_users
        if self._fused is not None:
            return self._fused.step(s, actions, min_gap, demand_shift)
        # 1. delivery; 2. lifts of prior-driven contacts; coupons become valid; fatigue grows
        delivered, contacted, kind, fresh = self._deliver(s, actions, min_gap)
        self._receive(s, contacted, kind, fresh)
        # 3. forecast with learned contacts, lift, draw
        forecast, model_contacts = self._period_forecast(s, s.lift, contacted, kind, demand_shift)
        uniforms = self.streams.uniforms(s.keys, s.period, self.n_model_uniforms + 1)
        activity = self.model.sample(forecast, uniforms[:, : self.n_model_uniforms])
        # 4. rewards
        discount_rate = (s.valid_left > 0) @ tables.discount
        contact_cost = np.zeros(n)
        contact_cost[contacted] = tables.cost[kind]
        reward = reward_components(activity.spend, discount_rate, contact_cost, self.config.reward)
        # 5. opt-outs, then 5-6 as for an observed period
        leaving = uniforms[contacted, -1] < opt_out_probability(tables, kind, s.fatigue[contacted])
        opted_out = np.zeros(n, dtype=bool)
        opted_out[contacted[leaving]] = True
        self._record(s, activity, contacted, kind, model_contacts, opted_out)
        return StepOutcome(
            activity=activity,
            reward=reward,
            delivered=delivered,
            refused=(actions > 0) & (delivered == 0),
            opted_out=opted_out,
        )

    def track(
        self, state: SimState, delivered: np.ndarray, activity: PeriodActivity, opted_out: np.ndarray
    ) -> None:
        """Advance every user one period that happened elsewhere, in place: what a platform does with
        its real users' period (the contacts ``delivered`` ((n,) action indices), the ``activity``
        observed and who ``opted_out``), so their state, forecast and features stay current.

        The bookkeeping is the one :meth:`step` does after drawing (composed, never compiled); only
        the draws are replaced by what was observed.
        """
        delivered = np.asarray(delivered, dtype=np.int64)
        if delivered.shape != (state.n_users,) or _outside(delivered, len(self.actions)):
            raise ValueError(f"delivered must be ({state.n_users},) ints in [0, {len(self.actions)})")
        contacted = np.flatnonzero(delivered)
        kind = delivered[contacted] - 1
        self._receive(state, contacted, kind, self._fresh_lift(state, contacted, kind))
        model_contacts = self._model_contacts(state.n_users, contacted, kind)
        self._record(state, activity, contacted, kind, model_contacts, np.asarray(opted_out, dtype=bool))

    def _receive(self, s: SimState, contacted: np.ndarray, kind: np.ndarray, fresh: np.ndarray) -> None:
        """Delivered contacts take effect: lifts (the larger of fresh and in force), validity, fatigue."""
        s.lift[contacted, kind] = np.maximum(s.lift[contacted, kind], fresh)
        receive(s.valid_left, s.fatigue, contacted, kind, self.tables.validity, self.tables.fatigue)

    def _record(
        self,
        s: SimState,
        activity: PeriodActivity,
        contacted: np.ndarray,
        kind: np.ndarray,
        model_contacts: np.ndarray | None,
        opted_out: np.ndarray,
    ) -> None:
        """The period's end: opt-outs, history, decay state; lifts fade, coupons expire, fatigue
        decays, and the decay model forecasts the next period."""
        tables = self.tables
        s.opted_out |= opted_out
        bought = activity.purchases > 0
        s.recency[:] = np.where(bought, 1, s.recency + 1)
        s.frequency += activity.purchases
        s.spend_total += activity.spend
        s.decay.assign(slice(None), self.model.advance(s.decay, activity, model_contacts))
        s.lift *= np.where(s.valid_left > 1, 1.0, tables.fade[None, :])  # before validity counts down
        close_period(s.since_contact, s.valid_left, s.fatigue, contacted, kind, tables.fatigue_decay)
        s.forecast.assign(slice(None), self.model.forecast(s.decay))

    def _deliver(
        self, s: SimState, actions: np.ndarray, min_gap: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (n,) actions delivered (refused ones as ``none``), the users contacted, the kind of
        each contact and its fresh log-odds lift (0 for kinds the decay model learned)."""
        delivered = np.where(self.action_masks(s, min_gap)[np.arange(s.n_users), actions], actions, 0)
        contacted = np.flatnonzero(delivered)
        kind = delivered[contacted] - 1
        return delivered, contacted, kind, self._fresh_lift(s, contacted, kind)

    def _fresh_lift(self, s: SimState, contacted: np.ndarray, kind: np.ndarray) -> np.ndarray:
        """The log-odds lift of each delivered contact (0 for kinds the decay model learned)."""
        is_new = s.tenure[contacted] < self.config.response.new_user_periods
        return contact_lift(self.tables, kind, is_new, s.fatigue[contacted]) * self._uses_prior[kind]

    def _period_forecast(
        self, s: SimState, lift: np.ndarray, contacted: np.ndarray, kind: np.ndarray, demand_shift: np.ndarray
    ) -> tuple[Forecast, np.ndarray | None]:
        """The period's forecast given the contacts delivered (learned kinds through the decay model,
        then ``lift`` (n, K) and ``demand_shift`` on the log-odds), and the contacts of learned kinds in
        the model's layout (``None`` when there are none)."""
        model_contacts = self._model_contacts(s.n_users, contacted, kind)
        forecast = s.forecast if model_contacts is None else self.model.forecast(s.decay, model_contacts)
        shift = lift.sum(axis=1) + demand_shift
        return (self.model.lift(forecast, shift) if shift.any() else forecast), model_contacts

    def _model_contacts(self, n: int, contacted: np.ndarray, kind: np.ndarray) -> np.ndarray | None:
        """(n, C) contacts of learned kinds in the decay model's layout, ``None`` when there are none."""
        learned = ~self._uses_prior[kind]
        if not learned.any():
            return None
        contacts = np.zeros((n, len(self.model._require_fitted().interventions)), dtype=np.int64)
        contacts[contacted[learned], self._model_contact_index[kind[learned]]] = 1
        return contacts
