"""``winback decay`` from the command line: success paths and exit code 2 on bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.cli import app
from winback.data.io import write_event_log
from winback.data.sources import load_panel_split
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.artifact import load_model


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as stop:
        app(argv)
    return int(stop.value.code or 0)


def test_help_lists_the_subcommands(capsys) -> None:
    assert run(["decay", "--help"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "eval" in out


def test_fit_writes_a_loadable_artifact(tmp_path) -> None:
    out = tmp_path / "model"
    assert run(["decay", "fit", "--data", "cdnow-sample", "--model", "recurrence", "--out", str(out)]) == 0
    assert load_model(out).name == "recurrence"


def test_eval_writes_metrics_for_every_model(tmp_path) -> None:
    argv = ["decay", "eval", "--data", "cdnow-sample", "--models", "exponential,bgnbd", "--draws", "2"]
    assert run([*argv, "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["models"]) == {"exponential", "bgnbd"}
    assert metrics["meta"]["calibration_periods"] == 39
    assert (tmp_path / "report.md").is_file() and (tmp_path / "models" / "bgnbd" / "model.json").is_file()


def test_unknown_model_exits_2(tmp_path, capsys) -> None:
    assert run(["decay", "fit", "--data", "cdnow-sample", "--model", "prophet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'prophet'" in err and "Traceback" not in err


def test_calibration_end_off_a_period_boundary_exits_2(tmp_path, capsys) -> None:
    argv = ["decay", "fit", "--data", "cdnow-sample", "--model", "exponential", "--out", str(tmp_path)]
    assert run([*argv, "--calibration-end", "1997-10-02"]) == 2
    assert "not on a period boundary" in capsys.readouterr().err


def test_missing_data_file_exits_2(tmp_path, capsys) -> None:
    argv = ["decay", "fit", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")]
    assert run(argv) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_fit_on_a_file_lays_the_period_grid_on_the_split_date(tmp_path) -> None:
    path = tmp_path / "events.csv"
    write_event_log(generate_synthetic_log(SyntheticConfig(n_users=150, n_periods=20, seed=2)).log, path)
    split = load_panel_split(
        str(path), calibration_end="2021-03-03"
    )  # a Wednesday; the log starts on a Monday
    assert str(split.panel.spec.period_start(split.calibration_end)) == "2021-03-03"
    assert split.panel.spec.origin <= "2021-01-04"
    argv = ["decay", "fit", "--data", str(path), "--model", "exponential", "--out", str(tmp_path / "m")]
    assert run([*argv, "--calibration-end", "2021-03-03"]) == 0
    assert load_model(tmp_path / "m").spec == split.panel.spec


def test_fit_resumes_the_lstm_from_its_checkpoint(tmp_path) -> None:
    out = tmp_path / "lstm"
    argv = [
        "decay",
        "fit",
        "--data",
        "cdnow-sample",
        "--model",
        "lstm",
        "--out",
        str(out),
        "--hidden-size",
        "4",
    ]
    assert run([*argv, "--max-epochs", "1", "--threads", "1"]) == 0
    assert (out / "checkpoint" / "checkpoint.json").is_file()
    assert run([*argv, "--max-epochs", "2", "--threads", "1", "--resume"]) == 0
    assert [h["epoch"] for h in load_model(out).history] == [1, 2]


# ------------------------------------------------------------------ logs no model can be fitted on
START = dt.date(2021, 1, 4)
"""A Monday: weekly panels of the logs below start on it."""


def write_log(path: Path, rows: list[tuple[str, dt.date, str, float]]) -> str:
    """A CSV event log of ``(user_id, date, event_type, value)`` rows; returns its path."""
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "event_type", "value"])
    frame.to_csv(path, index=False)
    return str(path)


def buyers(
    n_users: int, days: int, rate: float = 0.2, *, spread: int = 7, seed: int = 0
) -> list[tuple[str, dt.date, str, float]]:
    """Users ``u000``, ``u001``, ... who each buy on their first day (one of the first ``spread``)
    and then on each later day with probability ``rate``."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        first = int(rng.integers(0, spread))
        days_bought = [first, *(d for d in range(first + 1, days) if rng.random() < rate)]
        rows += [(f"u{user:03d}", START + dt.timedelta(days=d), "purchase", 10.0) for d in days_bought]
    return rows


LOGS = {
    "one day": lambda: buyers(30, 1, spread=1),
    "one week": lambda: buyers(40, 7),
    "one user": lambda: buyers(1, 56, rate=0.3),
    "two users": lambda: buyers(2, 56, rate=0.3),
    "no purchases": lambda: [(u, d, "view", 0.0) for u, d, _, _ in buyers(40, 56)],
    "every purchase on one day": lambda: (
        buyers(30, 1, spread=1) + [(u, d, "view", 0.0) for u, d, _, _ in buyers(30, 56)]
    ),
    "nobody repeats": lambda: buyers(40, 56, rate=0.0, spread=56),
    "regular": lambda: buyers(60, 56),
}
"""Tiny logs starting on :data:`START`: eight weeks unless the name says otherwise."""

FIT_CASES = [
    # (log, extra arguments, model, what the message must say)
    ("one day", [], "lstm", "the calibration window has 0 weeks (the default split at mid-log of a log "
     "covering 1 week); at least 2 are needed"),
    ("one day", ["--period", "day"], "lstm", "0 days (the default split at mid-log of a log covering 1 day)"),
    ("one week", [], "bgnbd", "at least 2 are needed: every model learns how a week follows the ones"),
    ("one user", [], "lstm", "the draw leaves 1 to train on and 0 to validate on"),
    ("two users", [], "lstm", "the draw leaves 2 to train on and 0 to validate on"),
    ("no purchases", [], "exponential", "no 'purchase' event before the calibration end 2021-02-01"),
    ("every purchase on one day", [], "bgnbd", "no user repeats a purchase before period 4 (2021-02-01)"),
    ("every purchase on one day", [], "lstm", "the LSTM's BG/NBD prior input (LSTMConfig.bgnbd_inputs): "
     "no user repeats"),
    ("nobody repeats", [], "bgnbd", "no user repeats a purchase"),
    ("regular", ["--calibration-end", "2020-12-01"], "bgnbd", "2020-12-01 is on or before the log's first "
     "event (2021-01-04)"),
    ("regular", ["--calibration-end", "2021-01-04"], "bgnbd", "on or before the log's first event"),
    ("regular", ["--calibration-end", "2021-01-11"], "bgnbd", "the calibration window has 1 week; at least"),
    ("regular", ["--calibration-end", "2021-01-11"], "bgnbd", "a calibration end on or after 2021-01-18"),
    ("regular", ["--calibration-end", "2021-04-01"], "bgnbd", "the calibration end 2021-04-01 is after the "
     "log's last week"),
    ("regular", ["--calibration-end", "2021-02-30"], "bgnbd", "calibration end '2021-02-30' is not a date"),
]  # fmt: skip


@pytest.mark.parametrize(("log", "extra", "model", "message"), FIT_CASES)
def test_fit_on_a_log_it_cannot_learn_from_exits_2_saying_what_was_expected(
    tmp_path, capsys, log: str, extra: list[str], model: str, message: str
) -> None:
    data = write_log(tmp_path / "events.csv", LOGS[log]())
    argv = ["decay", "fit", "--data", data, "--model", model, "--out", str(tmp_path / "m"), *extra]
    assert run([*argv, "--max-epochs", "1", "--hidden-size", "4"]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


EVAL_CASES = [
    (
        "every purchase on one day",
        [],
        "the 30 users seen before 2021-02-01 make no 'purchase' in the holdout",
    ),
    ("nobody repeats", [], "make no 'purchase' in the holdout"),
    ("regular", ["--calibration-end", "2021-03-01"], "the holdout has 0 weeks: no event falls on or after"),
    ("regular", ["--calibration-end", "2021-01-11"], "the calibration window has 1 week"),
    ("two users", [], "0 to validate on"),
]


@pytest.mark.parametrize(("log", "extra", "message"), EVAL_CASES)
def test_eval_on_a_log_it_cannot_score_exits_2_saying_what_was_expected(
    tmp_path, capsys, log: str, extra: list[str], message: str
) -> None:
    data = write_log(tmp_path / "events.csv", LOGS[log]())
    argv = ["decay", "eval", "--data", data, "--models", "bgnbd,lstm", "--out", str(tmp_path / "e"), *extra]
    assert run([*argv, "--max-epochs", "1", "--hidden-size", "4", "--draws", "2"]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


@pytest.mark.parametrize("calibration_end", ["2021-01-18", "2021-02-22"])
def test_the_smallest_splits_allowed_fit_and_evaluate(tmp_path, calibration_end: str) -> None:
    """Two calibration weeks, or a single holdout week, are enough."""
    data = write_log(tmp_path / "events.csv", LOGS["regular"]())
    argv = ["decay", "eval", "--data", data, "--models", "exponential,recurrence", "--out", str(tmp_path)]
    assert run([*argv, "--calibration-end", calibration_end, "--draws", "2"]) == 0
    meta = json.loads((tmp_path / "metrics.json").read_text())["meta"]
    assert meta["calibration_periods"] + meta["holdout_periods"] == 8
    assert min(meta["calibration_periods"], meta["holdout_periods"]) in (1, 2)


# ------------------------------------------------------------------------------------ daily periods
def test_daily_fit_and_eval_end_to_end(tmp_path) -> None:
    data = write_log(tmp_path / "events.csv", buyers(80, 42, rate=0.1))
    small = ["--max-epochs", "1", "--hidden-size", "4", "--period", "day"]
    assert run(["decay", "fit", "--data", data, "--out", str(tmp_path / "lstm"), *small]) == 0
    fitted = load_model(tmp_path / "lstm")
    assert fitted.spec.period == "day" and fitted.spec.n_periods == 42
    out = tmp_path / "eval"
    argv = ["decay", "eval", "--data", data, "--models", "bgnbd,lstm", "--out", str(out), "--draws", "2"]
    assert run([*argv, *small, "--calibration-end", "2021-01-25"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["period"] == "day" and metrics["meta"]["holdout_periods"] == 21
    assert np.isfinite(metrics["models"]["lstm"]["weekly_mape"])
    assert load_model(out / "models" / "bgnbd").spec.period == "day"
    report = (out / "report.md").read_text()
    assert "Series are per day; the weekly MAPE sums them into weeks" in report
    assert "less than a year: the model cannot see a season" in report


def test_an_lstm_of_other_periods_is_refused(tmp_path, capsys) -> None:
    data = write_log(tmp_path / "events.csv", buyers(60, 56))
    small = ["--max-epochs", "1", "--hidden-size", "4"]
    assert run(["decay", "fit", "--data", data, "--out", str(tmp_path / "lstm"), *small]) == 0
    argv = ["decay", "eval", "--data", data, "--models", "lstm", "--lstm", str(tmp_path / "lstm")]
    assert run([*argv, "--out", str(tmp_path / "e"), "--period", "day", "--draws", "2"]) == 2
    assert "was fitted on week periods but the data are cut into day periods" in capsys.readouterr().err


def test_an_unknown_period_exits_2(tmp_path, capsys) -> None:
    argv = ["decay", "fit", "--data", "cdnow-sample", "--out", str(tmp_path), "--period", "month"]
    assert run(argv) == 2
    assert "month" in capsys.readouterr().err


def test_eval_report_states_the_calendar_choice_and_both_losses(tmp_path) -> None:
    data = write_log(tmp_path / "events.csv", buyers(60, 7 * 56, rate=0.05))
    argv = ["decay", "eval", "--data", data, "--models", "lstm", "--out", str(tmp_path), "--draws", "2"]
    assert run([*argv, "--max-epochs", "1", "--hidden-size", "4", "--calibration-end", "2022-01-03"]) == 0
    choice = load_model(tmp_path / "models" / "lstm").calendar_choice
    assert choice is not None and choice.how == "validation" and choice.window_days == 364
    report = " ".join((tmp_path / "report.md").read_text().split())
    losses = choice.val_loss
    assert (
        f"validation loss {losses['calendar']:.5f} with the calendar, {losses['no_calendar']:.5f} without"
        in report
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["notes"]["lstm"] == [choice.describe()]
