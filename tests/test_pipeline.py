"""``winback pipeline``: a ground-truth world's log to a benchmarked, exported policy, in quick mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from winback.cli import EXIT_BAD_INPUT, app
from winback.data.io import write_event_log
from winback.data.synthetic import GroundTruthWorld, WorldConfig
from winback.export.runtime.card import CARD_FILE
from winback.scenarios.scenario import read_scenario


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        app(list(args))
    return int(exit_info.value.code or 0)


def test_the_pipeline_runs_every_step_on_a_shops_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = GroundTruthWorld(WorldConfig(n_users=700, birth_weeks=40, seed=2))
    log = world.write_log(world.start(), 40, contact_rates=0.15, seed=0)
    shop = tmp_path / "shop.parquet"
    write_event_log(log.log, shop)
    out = tmp_path / "run"
    assert (
        run("pipeline", "--data", str(shop), "--out", str(out), "--horizon", "6", "--quick", "--no-progress")
        == 0
    )
    printed = capsys.readouterr().out
    assert "6/6 export" in printed and "no_contact" in printed, "the leaderboard is printed"
    for name in ("decay/report.md", "model/model.json", "scenario.toml", "bench/leaderboard.md"):
        assert (out / name).is_file(), name
    scenario = read_scenario(out / "scenario.toml")
    assert scenario.population_config.log == str(shop.resolve())
    assert scenario.population().n_users == log.log.n_users
    seeds = json.loads((out / "agent" / "seeds.json").read_text())
    assert seeds["starts"] == ["", "best_rule"], "by default a run from random weights and one from the rule"
    assert [run["run"] for run in seeds["runs"]] == ["seed-0", "seed-0-best_rule"]  # started in reverse
    card = json.loads((out / "export" / CARD_FILE).read_text())
    assert card["population"]["log_sha256"] == hashlib.sha256(shop.read_bytes()).hexdigest()
    model = json.loads((out / "model" / "model.json").read_text())
    assert card["decay_model"]["content_sha256"] == model["content_sha256"]
    assert run("pipeline", "--data", str(shop), "--out", str(out), "--quick") == EXIT_BAD_INPUT
    assert "exists" in capsys.readouterr().err

    settings = tmp_path / "shop-settings.toml"
    settings.write_text("[economics]\nmargin = 0.4\n[fatigue]\nannoyance = 0.5\n")
    again = tmp_path / "again"
    given = ("--model", str(out / "model"), "--settings", str(settings), "--horizon", "6")
    cloned = ("--imitate", "interest_threshold", "--quick", "--no-progress")
    assert run("pipeline", "--data", str(shop), "--out", str(again), *given, *cloned) == 0
    assert "skipped (--model)" in capsys.readouterr().out and not (again / "decay").exists()
    record = json.loads((again / "agent" / "train.json").read_text())
    assert record["imitation"]["rule"] == "interest_threshold"
    rerun = read_scenario(again / "scenario.toml")
    assert rerun.simulator.reward.margin == 0.4 and rerun.simulator.response.fatigue_annoyance == 0.5
    assert Path(rerun.model_config.artifact) == (out / "model").resolve()
    assert run("pipeline", "--data", str(shop), "--out", str(tmp_path / "y"), "--imitate", "ab_test") == 2
    assert "imitate" in capsys.readouterr().err and not (tmp_path / "y").exists()
    settings.write_text('[model]\nartifact = "packaged"\n')
    assert run("pipeline", "--data", str(shop), "--out", str(tmp_path / "x"), *given) == EXIT_BAD_INPUT
    assert "[model]" in capsys.readouterr().err


def test_a_log_no_model_can_learn_from_stops_the_pipeline_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = tmp_path / "one-day.csv"
    shop.write_text("user_id,timestamp,event_type,value\na,2024-01-01,purchase,5\nb,2024-01-01,purchase,7\n")
    assert run("pipeline", "--data", str(shop), "--out", str(tmp_path / "run"), "--quick") == EXIT_BAD_INPUT
    assert "calibration window" in capsys.readouterr().err
    assert not (tmp_path / "run" / "agent").exists()
