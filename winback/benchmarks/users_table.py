"""Users tables of simulated users for ``winback decide``: their stored state before a period, and
what they did and received in it (for tests, benchmarks and the production loop's experiments)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from winback.export.runtime.batch import TableSpec, Users, users_table
from winback.export.runtime.records import ContactRecords
from winback.export.runtime.state import UserStates
from winback.simulator.core import Simulator
from winback.simulator.state import SimState


def simulated_period(
    simulator: Simulator, state: SimState, actions: np.ndarray, spec: TableSpec, ids: np.ndarray
) -> pa.Table:
    """The users table of ``state``'s users (named ``ids``) for the period that ``actions`` are
    contacted in: the state before it, the activity and contacts the simulator draws (``state``
    advances in place), and opt-outs as recorded after it."""
    d = state.decay.take(np.arange(state.n_users))  # a copy: the step changes the state in place
    before = UserStates(
        d.hidden, d.cell, d.period, d.first_period, d.last_purchase, d.frequency, state.spend_total.copy()
    )
    valid_left, since, fatigue = state.valid_left.copy(), state.since_contact.copy(), state.fatigue.copy()
    outcome = simulator.step(state, actions)
    records = ContactRecords(fatigue, state.opted_out.copy(), valid_left, since)
    users = Users(ids, before, records, outcome.activity.counts, outcome.activity.spend, outcome.delivered)
    return users_table(spec, users, simulator.actions)
