"""``winback decay`` from the command line: success paths and exit code 2 on bad input."""

from __future__ import annotations

import json

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
