"""``winback whatif``: every built-in scenario runs, and the report shows what operations did."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from winback.benchmarks.suite import BenchConfig
from winback.benchmarks.whatif import PLOTS, run_whatif
from winback.cli import app
from winback.scenarios.scenario import BUILT_IN
from winback.simulator.response import CARE


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_every_built_in_scenario_runs_in_quick_mode(name: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = BenchConfig(
        scenario=name,
        policies=("no_contact", "fixed_cadence"),
        seeds=1,
        tuning_seeds=1,
        tuning_users=40,
        eval_users=60,
        quick=True,
    )
    report = run_whatif(config, tmp_path, progress=False)
    assert f"# What if: scenario `{name}`" in report.read_text()
    for plot in (*PLOTS, "net_value.png", "retention.png"):
        assert (tmp_path / plot).stat().st_size > 0


def test_the_cli_report_shows_the_care_team_dropping_messages(tmp_path: Path) -> None:
    args = ["whatif", "care_team_limited", "--out", str(tmp_path), "--quick", "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        app([*args, "--policies", "no_contact,fixed_cadence"])
    assert exit_info.value.code == 0
    operations = pd.read_csv(tmp_path / "operations.csv").set_index(["policy", "kind"])
    care = operations.loc[("fixed_cadence", CARE)]
    # Two agents write at most 100 messages a week; the tuned cadence asks for more in some weeks.
    assert care["served"] <= 100 and care["served"] < care["requested"]
    assert care["dropped_deadline"] > 0 and care["served_share"] < 1
    text = (tmp_path / "whatif.md").read_text()
    limits = "care team: 2 agents, 0.02 periods per message (about 100 messages per period), a message"
    assert f"{limits} waits at most 1 period after" in text


def test_the_cli_names_a_bad_scenario_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[operations]\ncare_capacity = -1\n")
    with pytest.raises(SystemExit) as exit_info:
        app(["whatif", str(bad), "--out", str(tmp_path / "out"), "--quick"])
    assert exit_info.value.code == 2
    assert "operations.care_capacity = -1" in capsys.readouterr().err
