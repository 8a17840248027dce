"""Simulated populations: real users warm-started from their history, new users, and clones of either."""

from __future__ import annotations

import numpy as np

from winback.data.panel import PeriodPanel
from winback.simulator.core import Simulator
from winback.simulator.state import SINCE_CAP, SimState
from winback.streams import draw_keys, user_keys


def warm_start(simulator: Simulator, panel: PeriodPanel, *, until: int) -> SimState:
    """Every user born before ``until``, where they stood at its start.

    Each user's history ``[birth, until)`` goes through the decay model (for the LSTM: every period
    fed through the network), so the simulated population starts where the real one stood. Contacts
    logged in the history set the periods since each kind, the fatigue and any coupon still valid,
    with the simulator's response parameters. Stream keys are hashes of the user ids.
    """
    panel = panel.select(panel.born_before(until))
    periods = np.arange(until)
    seen = periods[None, :] >= panel.first_period[:, None]
    purchases = panel.purchases[:, :until] * seen
    bought = purchases > 0
    last_purchase = np.where(bought.any(axis=1), until - 1 - np.argmax(bought[:, ::-1], axis=1), -1)
    since_birth_or_purchase = until - np.maximum(last_purchase, panel.first_period)
    fatigue, since_contact, valid_left = _contact_history(simulator, panel, until)
    return simulator.start(
        simulator.model.initial_state(panel, until=until),
        user_keys(panel.user_ids),
        birth=panel.first_period,
        recency=since_birth_or_purchase,
        frequency=purchases.sum(axis=1),
        spend_total=(panel.spend[:, :until] * seen).sum(axis=1),
        fatigue=fatigue,
        since_contact=since_contact,
        valid_left=valid_left,
    )


def new_users(simulator: Simulator, panel: PeriodPanel, n_users: int, *, seed: int) -> SimState:
    """``n_users`` users right after their birth period, births resampled from ``panel``.

    The decay model does not model acquisition, so each new user's birth period (its activity and
    its period on the calendar) is that of a real user drawn with replacement by a seeded generator;
    from then on the user lives by the model. Stream keys are fresh (derived from ``seed``), so new
    users do not share luck with the real users they were born like.
    """
    templates = np.random.default_rng(seed).integers(0, panel.n_users, n_users)
    born = panel.select(templates)
    until = born.first_period + 1
    rows = np.arange(n_users)
    purchases = born.purchases[rows, born.first_period].astype(np.int64)
    return simulator.start(
        simulator.model.initial_state(born, until=until),
        draw_keys(user_keys([f"winback.new_users:{seed}"]), n_users),
        birth=born.first_period,
        recency=np.ones(n_users, dtype=np.int64),
        frequency=purchases,
        spend_total=born.spend[rows, born.first_period].astype(np.float64),
    )


def replicate(state: SimState, copies: int) -> SimState:
    """Each user ``copies`` times, user-major, every copy with its own random stream."""
    replicated = state.repeat(copies)
    replicated.keys = draw_keys(state.keys, copies)
    return replicated


def split_users(state: SimState, held_out_share: float, *, salt: int = 0) -> tuple[SimState, SimState]:
    """(kept, held out): the users :func:`held_out` picks, in their order."""
    held = held_out(state.keys, held_out_share, salt=salt)
    return state.take(np.flatnonzero(~held)), state.take(np.flatnonzero(held))


def held_out(keys: np.ndarray, share: float, *, salt: int = 0) -> np.ndarray:
    """Which of the users ``keys`` are held out: those whose hash of the key (and ``salt``) falls below
    ``share``, so a split depends on nothing but the users and is the same in every run; splits with
    different salts are independent."""
    with np.errstate(over="ignore"):
        salted = np.asarray(keys, dtype=np.uint64) ^ _SPLIT_SALT ^ np.uint64(salt)
        unit = (draw_keys(salted, 1) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return unit < share


_SPLIT_SALT = np.uint64(0x5EED_0F_5B11_7C0D)
"""Mixed into keys before the split hash, so it is independent of the simulation's own draws."""


def _contact_history(
    simulator: Simulator, panel: PeriodPanel, until: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fatigue, periods since each kind (capped) and coupon validity left, from logged contacts."""
    tables, n_kinds = simulator.tables, len(simulator.kinds)
    since = np.full((panel.n_users, n_kinds), SINCE_CAP, dtype=np.int64)
    valid_left = np.zeros((panel.n_users, n_kinds), dtype=np.int64)
    fatigue = np.zeros(panel.n_users)
    age = until - np.arange(until)  # 1 for the last period before ``until``
    for k, kind in enumerate(simulator.kinds):
        if kind not in panel.spec.interventions:
            continue
        sent = panel.interventions[:, :until, panel.spec.interventions.index(kind)] > 0
        if not sent.any():
            continue
        ever = sent.any(axis=1)
        last_age = np.where(ever, age[until - 1 - np.argmax(sent[:, ::-1], axis=1)], SINCE_CAP)
        since[:, k] = np.minimum(last_age, SINCE_CAP)
        valid_left[:, k] = np.where(ever, np.maximum(tables.validity[k] - last_age, 0), 0)
        # Fatigue added at the contact, then decayed once per period after it, as in ``step``.
        fatigue += tables.fatigue[k] * (sent * tables.fatigue_decay ** age[None, :]).sum(axis=1)
    return fatigue, since, valid_left
