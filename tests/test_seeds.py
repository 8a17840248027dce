"""Several seeds' runs side by side (``winback.agents.seeds``) and loading the selected one."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tiny import TRAINING

from winback.agents.sb3 import SEEDS_FILE, SB3Policy, selected_run
from winback.agents.seeds import train_seeds
from winback.agents.training import IMITATION_FILE, TrainConfig, train
from winback.agents.training.callbacks import validation_users
from winback.cli import app
from winback.errors import ArtifactError, ConfigError
from winback.export.exporter import export_policy
from winback.export.policy import load_policy_dir
from winback.export.runtime.card import CARD_FILE
from winback.simulator.features import observe


def curve(run: Path) -> list[list[str]]:
    with open(run / "learning_curve.csv", newline="") as file:
        return [row[::2] for row in csv.reader(file)]  # timesteps and value (wall times differ)


def test_seeds_train_in_processes_each_as_alone_and_the_best_on_validation_stands_for_them(
    tmp_path, tiny_run, scenario
) -> None:
    config = TrainConfig(algo="maskable_ppo", **{**TRAINING, "seed": 7})
    result = train_seeds(config, [0, 1], tmp_path, workers=2, progress=False)
    record = json.loads((tmp_path / SEEDS_FILE).read_text())
    values = {run["seed"]: run["best_validation_net_value"] for run in record["runs"]}
    assert record["seeds"] == [0, 1] and "seed" not in record["config"]
    assert record["selected"] == f"seed-{max(values, key=values.get)}" == result.selected.run
    assert (tmp_path / "learning_curve.png").is_file()
    assert curve(tmp_path / "seed-0") == curve(tiny_run)  # the seed's run is the run of that seed alone
    assert curve(tmp_path / "seed-0") != curve(tmp_path / "seed-1")
    assert selected_run(tmp_path) == tmp_path / record["selected"]
    users = validation_users(scenario, 40)
    simulator = scenario.simulator_for(0)
    features, masks = observe(simulator, users), simulator.action_masks(users)
    expected = SB3Policy.load(tmp_path / record["selected"]).scores(features, masks, 0)
    export_policy(tmp_path, tmp_path / "export", seeds=1, eval_users=20)
    for loaded in (load_policy_dir(tmp_path), SB3Policy.load(tmp_path), load_policy_dir(tmp_path / "export")):
        np.testing.assert_allclose(loaded.scores(features, masks, 0), expected, rtol=1e-5, atol=1e-5)
    card = json.loads((tmp_path / "export" / CARD_FILE).read_text())
    assert card["policy"]["run_dir"] == str((tmp_path / record["selected"]).resolve())
    assert card["training"]["seed_selection"]["runs"] == record["runs"]


def test_seeds_resume_to_a_new_total_and_refuse_other_seeds_or_a_second_start(tmp_path) -> None:
    config = TrainConfig(algo="ppo", **{**TRAINING, "total_timesteps": 256})
    train_seeds(config, [0, 1], tmp_path, workers=1, progress=False)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_seeds(config, [0, 1], tmp_path, workers=1, progress=False)
    with pytest.raises(ConfigError, match=r"seeds \[0, 2\] and starts \[''\]: its runs are of seeds"):
        train_seeds(config, [0, 2], tmp_path, workers=1, resume=True, progress=False)
    record = json.loads((tmp_path / SEEDS_FILE).read_text())
    del record["starts"]  # as recorded before runs had starts: every seed from the config's start
    (tmp_path / SEEDS_FILE).write_text(json.dumps(record))
    longer = TrainConfig(algo="ppo", **{**TRAINING, "total_timesteps": 512})
    result = train_seeds(longer, [0, 1], tmp_path, workers=1, resume=True, progress=False)
    assert [run.timesteps for run in result.runs] == [512, 512]
    for seed in (0, 1):
        assert [row[0] for row in curve(tmp_path / f"seed-{seed}")[1:]] == ["0", "256", "512"]
    for seeds, workers in [([3], 1), ([3, 3], 1), ([0, 1], 0)]:
        with pytest.raises(ConfigError, match=r"seeds|workers"):
            train_seeds(config, seeds, tmp_path / "other", workers=workers, progress=False)


def test_runs_from_each_start_are_trained_and_selected_together_and_resume_only_with_their_starts(
    tmp_path,
) -> None:
    quick_rule = {"imitation_users": 100, "imitation_quick": True}
    config = TrainConfig(algo="ppo", **TRAINING, **quick_rule)
    starts = ["", "fixed_cadence"]
    result = train_seeds(config, [3], tmp_path, starts=starts, workers=1, progress=False)
    record = json.loads((tmp_path / SEEDS_FILE).read_text())
    assert record["seeds"] == [3] and record["starts"] == starts and "imitate" not in record["config"]
    assert [(run["run"], run["start"]) for run in record["runs"]] == [
        ("seed-3", ""),
        ("seed-3-fixed_cadence", "fixed_cadence"),
    ]
    values = {run["run"]: run["best_validation_net_value"] for run in record["runs"]}
    assert record["selected"] == max(values, key=values.get) == result.selected.run
    assert not (tmp_path / "seed-3" / IMITATION_FILE).exists()
    cloned = json.loads((tmp_path / "seed-3-fixed_cadence" / "train.json").read_text())
    assert cloned["imitation"]["rule"] == "fixed_cadence"
    alone = replace(config, seed=3, imitate="fixed_cadence")
    train(alone, tmp_path / "alone", progress=False)
    assert curve(tmp_path / "seed-3-fixed_cadence") == curve(tmp_path / "alone")
    with pytest.raises(ConfigError, match=r"starts \['fixed_cadence', ''\]: its runs are of seeds"):
        train_seeds(config, [3], tmp_path, starts=starts[::-1], workers=1, resume=True, progress=False)
    for seeds, bad in [([3], [""]), ([3], ["", ""]), ([3], []), ([3, 4], ["uplift"])]:
        with pytest.raises(ConfigError, match=r"runs|starts|imitate"):
            train_seeds(config, seeds, tmp_path / "other", starts=bad, workers=1, progress=False)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"selected": null}', "did not finish"),
        ('{"selected": "../elsewhere"}', "is not the directory of a seed's run"),
        ('{"selected": "seed-9"}', "is not the directory of a seed's run"),
        ("[1, 2]", "is not the directory of a seed's run"),
    ],
)
def test_a_broken_seeds_record_is_refused_naming_the_file(tmp_path, record, message) -> None:
    (tmp_path / SEEDS_FILE).write_text(record)
    with pytest.raises(ArtifactError, match=message) as error:
        selected_run(tmp_path)
    assert str(tmp_path / SEEDS_FILE) in str(error.value)


def test_cli_trains_several_seeds_and_resumes_them(tmp_path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        "\n".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TRAINING.items())
    )
    out = tmp_path / "seeds"
    argv = ["train", "--algo", "ppo", "--config", str(config), "--out", str(out), "--timesteps", "256"]
    for extra, code in [
        (["--seed", "0", "--seed", "1", "--workers", "1"], 0),
        (["--seed", "2", "--seed", "2"], 2),
    ]:
        with pytest.raises(SystemExit) as stop:
            app([*argv, *extra, "--no-progress"])
        assert int(stop.value.code or 0) == code
    assert "(selected)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        app(["train", "--out", str(out), "--resume", "--seed", "1", "--timesteps", "512", "--no-progress"])
    assert stop.value.code == 2
    assert f"resumes on its own as {out / 'seed-1'}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        app(["train", "--out", str(out), "--resume", "--timesteps", "512", "--workers", "1", "--no-progress"])
    assert stop.value.code in (0, None)
    record = json.loads((out / SEEDS_FILE).read_text())
    assert [run["timesteps"] for run in record["runs"]] == [512, 512]
    assert record["config"]["algo"] == "ppo"


def test_cli_trains_a_run_per_start_with_none_for_random_weights(tmp_path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    fields = {**TRAINING, "imitation_users": 100, "imitation_quick": True}
    config.write_text(
        "\n".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in fields.items())
    )
    out = tmp_path / "starts"
    argv = ["train", "--algo", "ppo", "--config", str(config), "--workers", "1", "--no-progress"]
    for starts, code in [(["none", "fixed_cadence"], 0), (["none", "uplift"], 2)]:
        with pytest.raises(SystemExit) as stop:
            app([*argv, "--out", str(out / starts[-1]), *[a for s in starts for a in ("--imitate", s)]])
        assert int(stop.value.code or 0) == code
    record = json.loads((out / "fixed_cadence" / SEEDS_FILE).read_text())
    assert record["starts"] == ["", "fixed_cadence"] and record["seeds"] == [0]
    printed = capsys.readouterr()
    assert "from random weights" in printed.out and "from fixed_cadence" in printed.out
    assert "imitate" in printed.err and not (out / "uplift").exists()
