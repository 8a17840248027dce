"""The LSTM's calendar inputs: off below a year of calibration, chosen on held-out users from a year on."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.data.io import read_event_log
from winback.data.panel import PeriodPanel, build_panel
from winback.decay_model import lstm
from winback.decay_model.artifact import load_model, save_model
from winback.decay_model.lstm import CALENDAR_MIN_DAYS, CalendarChoice, LSTMConfig, LSTMDecayModel
from winback.envs.defaults import DEFAULT_MODEL

START = dt.date(2021, 1, 4)
TINY = LSTMConfig(hidden_size=4, head_size=4, max_epochs=1)


def seasonal_panel(
    tmp_path: Path, *, n_users: int, weeks: int, amplitude: float, base: float = 0.25, seed: int = 0
) -> PeriodPanel:
    """A weekly panel of users born uniformly over the first year, who buy in a week with
    probability ``base * (1 + amplitude * sin(2 pi week / 52))``: a yearly season (none at 0)
    that tenure cannot stand in for, since births are spread over the year."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        birth = int(rng.integers(0, 52))
        week = np.arange(birth + 1, weeks)
        season = base * (1 + amplitude * np.sin(2 * np.pi * week / 52))
        bought = [birth, *week[rng.random(len(week)) < season]]
        rows += [
            (f"u{user:04d}", START + dt.timedelta(days=7 * int(w) + int(rng.integers(0, 7)))) for w in bought
        ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "seasonal.csv"
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp"]).assign(event_type="purchase", value=10.0)
    frame.to_csv(path, index=False)
    return build_panel(read_event_log(path), period="week", origin=START)


@pytest.fixture
def fits(monkeypatch) -> list[tuple[str, float]]:
    """(progress label, best validation loss) of every network the LSTM trains while the test runs."""
    calls: list[tuple[str, float]] = []
    train = lstm.train_network

    def recorded(*args, label: str, **kwargs):
        training = train(*args, label=label, **kwargs)
        calls.append((label, training.best_val_loss))
        return training

    monkeypatch.setattr(lstm, "train_network", recorded)
    return calls


def test_a_year_of_calibration_fits_both_candidates_and_keeps_the_better(tmp_path, fits) -> None:
    panel = seasonal_panel(tmp_path, n_users=60, weeks=56, amplitude=0.5)
    until = CALENDAR_MIN_DAYS // 7
    model = LSTMDecayModel(TINY).fit(panel, until=until, seed=3, checkpoint_dir=tmp_path / "checkpoint")
    assert [label for label, _ in fits] == ["fit lstm (no calendar)", "fit lstm (calendar)"]
    choice = model.calendar_choice
    assert choice is not None and choice.how == "validation" and choice.window_days == 364
    assert choice.val_loss == {"no_calendar": fits[0][1], "calendar": fits[1][1]}
    assert model.calendar == choice.calendar == (fits[1][1] < fits[0][1])
    assert model.input_layout().calendar == model.calendar
    assert {p.name for p in (tmp_path / "checkpoint").iterdir()} == {"calendar", "no_calendar"}
    note = model.fit_notes()[0]
    assert f"{fits[0][1]:.5f} without" in note and f"{fits[1][1]:.5f} with the calendar" in note

    loaded = load_model(save_model(model, tmp_path / "model"))
    assert loaded.calendar_choice == choice and loaded.calendar == model.calendar
    state = model.initial_state(panel, until=until)
    np.testing.assert_allclose(
        loaded.forecast(loaded.initial_state(panel, until=until)).p_active, model.forecast(state).p_active
    )


def test_less_than_a_year_never_fits_the_calendar(tmp_path, fits) -> None:
    panel = seasonal_panel(tmp_path, n_users=60, weeks=56, amplitude=0.9)
    model = LSTMDecayModel(TINY).fit(panel, until=CALENDAR_MIN_DAYS // 7 - 1, seed=0)
    assert [label for label, _ in fits] == ["fit lstm"]
    assert not model.calendar and not model.input_layout().calendar
    assert model.calendar_choice == CalendarChoice(calendar=False, how="short_window", window_days=357)
    assert model.fit_notes() == (
        "calendar inputs off: the calibration window covers 51 weeks, less than a year: the model cannot "
        "see a season",
    )


def test_a_calendar_set_in_the_config_is_the_only_candidate(tmp_path, fits) -> None:
    panel = seasonal_panel(tmp_path, n_users=60, weeks=20, amplitude=0.0)
    model = LSTMDecayModel(dataclasses.replace(TINY, calendar=True)).fit(panel, until=10, seed=0)
    assert [label for label, _ in fits] == ["fit lstm"] and model.calendar
    assert model.calendar_choice == CalendarChoice(calendar=True, how="config", window_days=70)


def test_both_candidates_resume_from_their_checkpoints(tmp_path) -> None:
    """A fit stopped after one epoch and resumed to two matches a fit of two epochs straight."""
    panel = seasonal_panel(tmp_path, n_users=60, weeks=56, amplitude=0.5)
    config = dataclasses.replace(TINY, max_epochs=2, patience=99)
    straight = LSTMDecayModel(config).fit(panel, until=53, seed=1)
    LSTMDecayModel(TINY).fit(panel, until=53, seed=1, checkpoint_dir=tmp_path / "checkpoint")
    resumed = LSTMDecayModel(config).fit(panel, until=53, seed=1, checkpoint_dir=tmp_path / "checkpoint")
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.calendar_choice is not None and straight.calendar_choice is not None
    assert resumed.calendar_choice.val_loss == pytest.approx(straight.calendar_choice.val_loss, rel=1e-6)
    assert resumed.calendar == straight.calendar


def test_an_artifact_saved_before_the_choice_was_recorded_loads_unchanged() -> None:
    model = load_model(DEFAULT_MODEL)
    assert isinstance(model, LSTMDecayModel)
    assert model.calendar_choice is None and not model.calendar
    assert model.fit_notes() == (
        "calendar inputs off (how they were chosen is not recorded in this artifact)",
    )


def test_a_strong_yearly_season_is_chosen(tmp_path) -> None:
    """Two years of calibration of a season that doubles purchases and nearly stops them: the
    calendar fits the held-out users better by a margin that the same fit on a log without a season
    (the control) does not reach."""
    config = LSTMConfig(
        hidden_size=8, head_size=8, max_epochs=40, batch_size=32, learning_rate=1e-2, weight_average_decay=0.9
    )
    margin = {}
    for amplitude in (0.9, 0.0):
        panel = seasonal_panel(tmp_path / str(amplitude), n_users=400, weeks=104, amplitude=amplitude)
        model = LSTMDecayModel(config).fit(panel, until=104, seed=0)
        choice = model.calendar_choice
        assert choice is not None and choice.how == "validation"
        margin[amplitude] = choice.val_loss["no_calendar"] - choice.val_loss["calendar"]
        if amplitude:
            assert model.calendar
    assert margin[0.9] > 0.01 > abs(margin[0.0])
