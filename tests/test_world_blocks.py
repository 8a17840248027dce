"""A ground-truth world's log written a block of users at a time (``winback.data.synthetic.blocks``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.cli import EXIT_BAD_INPUT, app
from winback.data.io import read_event_log
from winback.data.schema import CANONICAL_COLUMNS
from winback.data.synthetic import GroundTruthWorld, WorldConfig
from winback.data.synthetic.blocks import write_world_log
from winback.errors import ConfigError

CONFIG = WorldConfig(n_users=130, birth_weeks=6, seed=3)


def events(path: Path) -> pd.DataFrame:
    frame = read_event_log(path).events[list(CANONICAL_COLUMNS)]
    return frame.astype({"intervention": str}).reset_index(drop=True)


def world_events(config: WorldConfig, seed: int) -> pd.DataFrame:
    world = GroundTruthWorld(config)
    log = world.write_log(world.start(), 6, 0.2, seed=seed).log.events[list(CANONICAL_COLUMNS)]
    return log.astype({"intervention": str}).reset_index(drop=True)


@pytest.mark.parametrize("suffix", [".parquet", ".csv.gz"])
def test_one_block_is_the_worlds_own_log(tmp_path: Path, suffix: str) -> None:
    written = write_world_log(tmp_path / f"log{suffix}", CONFIG, 6, 0.2, seed=9, block_users=200)
    assert written.blocks == 1
    pd.testing.assert_frame_equal(events(written.path), world_events(CONFIG, 9))


def test_blocks_are_independent_worlds_under_the_logs_user_ids(tmp_path: Path) -> None:
    written = write_world_log(tmp_path / "log.parquet", CONFIG, 6, 0.2, seed=9, block_users=50)
    again = write_world_log(tmp_path / "again.parquet", CONFIG, 6, 0.2, seed=9, block_users=50)
    assert written.blocks == 3 and written.path.read_bytes() == again.path.read_bytes()
    log = events(written.path)
    assert written.n_events == len(log)
    users = log["user_id"].unique()
    assert len(users) == written.n_users > 120 and list(users) == sorted(users)  # in the log's user order
    assert set(users) <= {f"u{i:03d}" for i in range(130)}
    seeds = np.random.SeedSequence([9, 1]).generate_state(2)
    second = world_events(replace(CONFIG, n_users=50, seed=int(seeds[0])), int(seeds[1]))
    in_second = log[log["user_id"].between("u050", "u099")].reset_index(drop=True)
    second["user_id"] = [f"u{int(u[1:]) + 50:03d}" for u in second["user_id"]]
    pd.testing.assert_frame_equal(in_second, second)
    first = log[log["user_id"] < "u050"]
    assert not np.array_equal(first["timestamp"].to_numpy()[:20], in_second["timestamp"].to_numpy()[:20])
    with pytest.raises(ConfigError, match="block_users"):
        write_world_log(tmp_path / "none.parquet", CONFIG, 6, 0.2, seed=9, block_users=0)


def test_cli_generates_a_log_in_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shop.csv"
    argv = ["data", "generate", str(out), "--users", "120", "--weeks", "5", "--no-progress"]
    for extra, code in [(["--block-users", "50"], 0), (["--block-users", "0"], EXIT_BAD_INPUT)]:
        with pytest.raises(SystemExit) as stop:
            app([*argv, *extra])
        assert int(stop.value.code or 0) == code
    captured = capsys.readouterr()
    users = read_event_log(out).n_users
    assert f"of {users} users (3 block(s))" in captured.out and "block_users" in captured.err
