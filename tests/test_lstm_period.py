"""One LSTM period, four paths: fitting (torch's nn.LSTM over whole sequences), the numpy kernel of
``advance``/``forecast`` (the simulator's composed step), the compiled simulator step and the exported
state-update graph (ONNX) agree over every configuration a user can fit, on a synthetic panel with
three event types and logged contacts, and on CDNOW."""

from __future__ import annotations

import dataclasses
import logging
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import PeriodPanel, build_panel
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.base import PeriodActivity
from winback.decay_model.bgnbd import BGNBDModel
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel, LSTMState
from winback.decay_model.lstm_period import (
    ColumnSink,
    InputLayout,
    torch_formulas,
    write_known_ahead,
    write_step_inputs,
)
from winback.export.graphs import StateUpdateGraph, export_onnx
from winback.export.runtime.session import STATE_INPUTS, STATE_OUTPUTS, inference_session
from winback.simulator import core
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.features import observe
from winback.simulator.population import warm_start
from winback.simulator.response import ResponseConfig

UNTIL = 30
"""Calibration end of the synthetic panels (periods)."""
TINY = LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)


@cache
def synthetic_panel(period: str) -> PeriodPanel:
    """Views, carts and purchases of 300 users over 40 weeks, with randomised contacts of three kinds."""
    config = SyntheticConfig(n_users=300, n_periods=40, seed=7)
    end = np.datetime64(config.start) + np.timedelta64(7 * config.n_periods, "D")
    return build_panel(generate_synthetic_log(config).log, period=period, origin=config.start, end=str(end))


@cache
def cdnow_panel() -> PeriodPanel:
    return load_cdnow_panel("cdnow-sample").select(np.arange(300))


CONFIGURATIONS = {
    "cdnow, defaults": ("cdnow", "week", {}),
    "three types, learned contacts": ("synthetic", "week", {}),
    "three types, calendar": ("synthetic", "week", {"calendar": True}),
    "calendar only": (
        "synthetic",
        "week",
        {"calendar": True, "tenure": False, "recency_frequency": False, "bgnbd_inputs": False},
    ),
    "no tenure, recency or BG/NBD": (
        "synthetic",
        "week",
        {"tenure": False, "recency_frequency": False, "bgnbd_inputs": False},
    ),
    "tenure and BG/NBD, no recency": ("synthetic", "week", {"recency_frequency": False}),
    "daily periods, calendar": ("synthetic", "day", {"calendar": True}),
}


@cache
def fitted(name: str) -> tuple[LSTMDecayModel, PeriodPanel, int]:
    """The configuration's model, fitted on its panel, with the panel and the calibration end."""
    torch.set_num_threads(1)
    source, period, settings = CONFIGURATIONS[name]
    panel = cdnow_panel() if source == "cdnow" else synthetic_panel(period)
    until = 39 if source == "cdnow" else UNTIL * (7 if period == "day" else 1)
    model = LSTMDecayModel(dataclasses.replace(TINY, **settings)).fit(panel, until=until, seed=0)
    return model, panel, until


@pytest.fixture(params=list(CONFIGURATIONS))
def configuration(request: pytest.FixtureRequest) -> tuple[LSTMDecayModel, PeriodPanel, int]:
    return fitted(request.param)


def test_the_configurations_are_the_ones_named() -> None:
    layouts = {name: fitted(name)[0].input_layout() for name in CONFIGURATIONS}
    assert layouts["cdnow, defaults"].n_event_types == 1 and not layouts["cdnow, defaults"].calendar
    assert layouts["three types, learned contacts"].n_event_types == 3
    assert set(fitted("three types, learned contacts")[0].learned_contacts()) == {
        "push_new_items",
        "coupon",
        "care_message",
    }
    assert layouts["calendar only"].calendar and not layouts["calendar only"].bgnbd
    assert layouts["daily periods, calendar"].period_days == 1.0
    assert len({(x.tenure, x.calendar, x.recency_frequency, x.bgnbd) for x in layouts.values()}) >= 5


def test_the_layout_counts_what_the_writers_write_and_the_network_reads(configuration) -> None:
    model, _, _ = configuration
    layout = model.input_layout()
    assert model.network is not None
    assert model.network.lstm.input_size == layout.n_step
    assert model.network.head[0].in_features == model.cfg.hidden_size + layout.n_known_ahead
    row = np.full(layout.n_step + 1, np.nan, dtype=np.float32)
    counts, contacts = np.ones(layout.n_event_types), np.ones(layout.n_contact_kinds)
    assert write_step_inputs(row, layout, 5, 2, counts, 3.0, contacts, 4, 2.0) == layout.n_step
    assert np.isfinite(row[: layout.n_step]).all() and np.isnan(row[layout.n_step])


def walk_from_birth(model: LSTMDecayModel, panel: PeriodPanel, until: int) -> LSTMState:
    """Every user's state at ``until``, fed period by period from birth through the numpy kernel."""
    hidden = np.zeros((panel.n_users, model.cfg.hidden_size), dtype=np.float32)
    state = LSTMState(
        period=panel.first_period.copy(),
        hidden=hidden,
        cell=hidden.copy(),
        first_period=panel.first_period.copy(),
        last_purchase=panel.first_period.copy(),
        frequency=np.zeros(panel.n_users),
    )
    for period in range(int(panel.first_period.min()), until):
        rows = np.flatnonzero(panel.first_period <= period)
        activity = PeriodActivity(counts=panel.counts[rows, period], spend=panel.spend[rows, period])
        state.assign(rows, model.advance(state.take(rows), activity, panel.interventions[rows, period]))
    return state


def test_fitting_and_the_numpy_kernel_give_the_same_states(configuration) -> None:
    """``initial_state`` runs nn.LSTM over the fitting sequences; the kernel steps one period at a time."""
    model, panel, until = configuration
    panel = panel.select(panel.born_before(until))
    expected = model.initial_state(panel, until=until)
    walked = walk_from_birth(model, panel, until)
    np.testing.assert_allclose(walked.hidden, expected.hidden, atol=2e-5)
    np.testing.assert_allclose(walked.cell, expected.cell, atol=2e-5, rtol=1e-5)
    np.testing.assert_array_equal(walked.period, expected.period)
    np.testing.assert_array_equal(walked.last_purchase, expected.last_purchase)
    np.testing.assert_array_equal(walked.frequency, expected.frequency)


@pytest.mark.parametrize("effects", ["auto", "prior"])
def test_the_compiled_step_reproduces_the_composed_step(configuration, effects: str) -> None:
    model, panel, until = configuration
    response = ResponseConfig(effects=effects, opt_out_per_fatigue=0.05)
    compiled = Simulator(model, SimulatorConfig(response=response, block_size=128), seed=3)
    composed = Simulator(model, SimulatorConfig(response=response, block_size=128, compiled=False), seed=3)
    assert compiled._fused is not None and composed._fused is None
    state, reference = warm_start(compiled, panel, until=until), warm_start(composed, panel, until=until)
    rng = np.random.default_rng(5)
    for period in range(8):
        actions = rng.integers(0, 4, state.n_users)
        shift = rng.normal(0, 0.5, state.n_users) * (period % 2)
        got = compiled.step(state, actions, demand_shift=shift)
        expected = composed.step(reference, actions, demand_shift=shift)
        np.testing.assert_array_equal(got.activity.counts, expected.activity.counts)
        np.testing.assert_array_equal(got.delivered, expected.delivered)
        np.testing.assert_array_equal(got.opted_out, expected.opted_out)
        np.testing.assert_allclose(got.reward.total, expected.reward.total, rtol=1e-5, atol=1e-6)
    for name in ("recency", "frequency", "opted_out", "valid_left", "since_contact", "period"):
        np.testing.assert_array_equal(getattr(state, name), getattr(reference, name))
    np.testing.assert_allclose(state.lift, reference.lift, rtol=1e-6)
    np.testing.assert_allclose(state.decay.hidden, reference.decay.hidden, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(state.forecast.p_active, reference.forecast.p_active, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(observe(compiled, state), observe(composed, reference), rtol=1e-4, atol=1e-6)
    if effects == "auto" and compiled.learned:
        assert (got.delivered > 0).any(), "learned contacts went out and reached the model"


def test_the_state_update_graph_reproduces_the_numpy_kernel(configuration, tmp_path: Path) -> None:
    model, panel, until = configuration
    state = model.initial_state(panel.select(panel.born_before(until)), until=until)
    rng = np.random.default_rng(8)
    n = len(state.period)
    counts = rng.poisson(0.4, (n, model.input_layout().n_event_types))
    activity = PeriodActivity(counts=counts, spend=counts[:, -1] * rng.gamma(2.0, 15.0, n))
    contacts = (rng.random((n, model.input_layout().n_contact_kinds)) < 0.3).astype(np.int64)
    learned = model.learned_contacts()
    path = tmp_path / "state_update.onnx"
    graph = StateUpdateGraph(model, learned)
    example = tuple(torch.from_numpy(np.asarray(x[:2])) for x in _feeds(state, activity, contacts))
    export_onnx(graph, example, STATE_INPUTS, STATE_OUTPUTS, path)
    outputs = inference_session(path.read_bytes()).run(
        None, dict(zip(STATE_INPUTS, _feeds(state, activity, contacts), strict=True))
    )
    got = dict(zip(STATE_OUTPUTS, outputs, strict=True))
    mask = np.isin(model.spec.interventions, learned).astype(np.int64)
    expected = model.advance(state, activity, contacts * mask)
    np.testing.assert_allclose(got["next_hidden"], expected.hidden, atol=2e-5)
    np.testing.assert_allclose(got["next_cell"], expected.cell, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(got["interest"], model.forecast(expected).p_active, atol=1e-5)
    np.testing.assert_array_equal(got["next_last_purchase"], expected.last_purchase)
    np.testing.assert_array_equal(got["next_frequency"], expected.frequency)


def _feeds(state: LSTMState, activity: PeriodActivity, contacts: np.ndarray) -> tuple[np.ndarray, ...]:
    return (
        state.hidden, state.cell, state.period, state.first_period, state.last_purchase, state.frequency,
        activity.counts.astype(np.int64), activity.spend.astype(np.float64), contacts,
    )  # fmt: skip


def test_numpy_and_torch_run_the_same_formulas() -> None:
    """The writers evaluated on numpy arrays and traced in torch give the same columns."""
    layout = InputLayout(3, 2, True, True, True, True, 37.0, 7.0, 0.24, 4.41, 0.79, 2.43)
    rng = np.random.default_rng(1)
    n = 500
    first = rng.integers(0, 40, n)
    period = first + rng.integers(0, 60, n)
    last_purchase = np.minimum(period, first + rng.integers(0, 60, n))
    frequency = rng.integers(0, 9, n).astype(np.float64)
    counts, spend, contacts = rng.poisson(1.0, (n, 3)), rng.gamma(2.0, 20.0, n), rng.integers(0, 2, (n, 2))
    arrays = (period, first, counts, spend, contacts, last_purchase, frequency)
    with_numpy = np.empty((n, layout.n_step), dtype=np.float32)
    write_step_inputs(
        with_numpy.T, layout, period, first, counts.T, spend, contacts.T, last_purchase, frequency
    )
    tensors = [torch.from_numpy(x) for x in arrays]
    tensors[2], tensors[4] = tensors[2].T, tensors[4].T
    sink = ColumnSink()
    torch_formulas().write_step_inputs(sink, layout, *tensors)
    np.testing.assert_array_equal(sink.stack().numpy(), with_numpy)
    known = np.empty((n, layout.n_known_ahead), dtype=np.float32)
    write_known_ahead(known.T, 0, layout, period, first, contacts.T)
    np.testing.assert_array_equal(known, with_numpy[:, 4 : 4 + layout.n_known_ahead])


def test_a_model_without_a_compiled_step_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    model = BGNBDModel().fit(cdnow_panel(), until=39)
    core._COMPOSED_NOTED.discard(model.name)
    with caplog.at_level(logging.WARNING, logger="winback.simulator.core"):
        Simulator(model)
        Simulator(model)
    assert [r.getMessage() for r in caplog.records].count(
        "the 'bgnbd' decay model has no compiled simulator step; its methods are composed (slower)"
    ) == 1
    assert Simulator(model)._fused is None
