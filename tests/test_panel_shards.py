"""``ingest_log``: a log read in blocks and built as user shards is the in-memory panel, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winback.data.io import read_event_log
from winback.data.panel import USER_ARRAYS, PeriodPanel, build_panel
from winback.data.shards import MANIFEST, ingest_log, open_panel
from winback.errors import ArtifactError, DataError

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
ARRAYS = ("user_ids", *USER_ARRAYS)


def assert_same_panel(got: PeriodPanel, expected: PeriodPanel) -> None:
    assert got.spec == expected.spec
    for name in ARRAYS:
        a, b = getattr(got, name), getattr(expected, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a, b), name
    assert got.notes == expected.notes


def random_log(seed: int, n_rows: int, n_users: int) -> pd.DataFrame:
    """Rows in random order with exact duplicates, contacts-only rows and several event types."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, n_users, n_rows)],
            "timestamp": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 60 * 86_400, n_rows), unit="s"),
            "event_type": rng.choice(["view", "cart", "purchase"], n_rows),
            "value": np.round(rng.exponential(20, n_rows), 2),
            "intervention": rng.choice(["", "", "", "coupon", "care_message"], n_rows),
        }
    )
    rows.loc[rows["event_type"] != "purchase", "value"] = 0.0
    contact_only = (rows["intervention"] != "") & (rng.random(n_rows) < 0.5)
    rows.loc[contact_only, "event_type"] = ""
    repeated = rows.sample(n=max(1, n_rows // 10), random_state=seed)
    return pd.concat([rows, repeated]).sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)


def write(rows: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        rows.to_parquet(path, index=False)
    else:
        rows.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n_rows=st.integers(1, 300),
    n_users=st.integers(1, 40),
    block_rows=st.integers(1, 120),
    shards=st.integers(1, 5),
    suffix=st.sampled_from([".csv", ".parquet"]),
    period=st.sampled_from(["week", "day"]),
)
def test_shards_are_the_in_memory_panel(
    tmp_path: Path,
    seed: int,
    n_rows: int,
    n_users: int,
    block_rows: int,
    shards: int,
    suffix: str,
    period: str,
) -> None:
    path = write(random_log(seed, n_rows, n_users), tmp_path / f"log-{seed}{suffix}")
    expected_log = read_event_log(path)
    sharded = ingest_log(
        path, tmp_path / f"panel-{seed}", period=period, shards=shards, block_rows=block_rows
    )
    assert sharded.report == expected_log.report  # duplicates, out-of-order rows, notes: all the same
    assert_same_panel(open_panel(sharded.path).load(), build_panel(expected_log, period=period))
    assert sum(shard.n_users for shard in sharded) == sharded.n_users


def test_mapped_csv_with_blank_rows_and_rows_without_user(tmp_path: Path) -> None:
    text = (EXAMPLES / "events.csv").read_text().splitlines()
    text[3:3] = ["", ",2024-03-01 11:00:00,page_view,"]  # a blank row and a row without a visitor
    path = tmp_path / "events.csv"
    path.write_text("\n".join(text) + "\n")
    mapping = 'missing_user = "skip"\n' + (EXAMPLES / "events.toml").read_text()
    (tmp_path / "events.toml").write_text(mapping)
    expected = read_event_log(path, mapping=str(tmp_path / "events.toml"))
    sharded = ingest_log(
        path, tmp_path / "panel", mapping=str(tmp_path / "events.toml"), block_rows=2, shards=2
    )
    assert sharded.report == expected.report
    assert any("blank rows skipped" in note for note in sharded.report.notes)
    assert sharded.report.rows_without_user == 1
    assert_same_panel(sharded.load(), build_panel(expected))


def test_an_error_in_a_later_block_names_its_row(tmp_path: Path) -> None:
    rows = random_log(1, 200, 10)
    rows["value"] = rows["value"].astype(str)
    rows.loc[150, "value"] = "12,5"
    path = write(rows, tmp_path / "log.parquet")  # text values, blocks of exactly 64 rows
    with pytest.raises(DataError) as in_memory:
        read_event_log(path)
    with pytest.raises(DataError) as in_blocks:
        ingest_log(path, tmp_path / "panel", block_rows=64)
    assert in_memory.value.rows == in_blocks.value.rows == [151]
    assert in_blocks.value.column == "value"
    assert "rows 129-192, the block" in str(in_blocks.value)


def test_a_directory_of_parquet_files_is_one_log(tmp_path: Path) -> None:
    rows = random_log(3, 400, 30).sort_values(["user_id", "timestamp"], kind="stable")
    (tmp_path / "log").mkdir()
    first = rows["user_id"] < "u2"
    write(rows[first], tmp_path / "log" / "part-0.parquet")
    write(rows[~first], tmp_path / "log" / "part-1.parquet")
    whole = read_event_log(write(rows, tmp_path / "whole.parquet"))
    sharded = ingest_log(tmp_path / "log", tmp_path / "panel", shards=3, workers=2)
    assert sharded.report.rows_read == whole.report.rows_read
    assert sharded.report.duplicate_rows_dropped == whole.report.duplicate_rows_dropped
    assert_same_panel(sharded.load(), build_panel(whole))


def test_window_and_refusals(tmp_path: Path) -> None:
    path = write(random_log(5, 100, 8), tmp_path / "log.parquet")
    expected = build_panel(read_event_log(path), origin="2023-12-25", end="2024-03-04")
    assert_same_panel(
        ingest_log(path, tmp_path / "a", origin="2023-12-25", end="2024-03-04").load(), expected
    )
    with pytest.raises(DataError, match="outside the panel window"):
        ingest_log(path, tmp_path / "b", origin="2024-01-08")
    with pytest.raises(DataError, match="only event logs"):
        ingest_log(
            EXAMPLES / "online-retail.csv", tmp_path / "c", mapping=str(EXAMPLES / "online-retail.toml")
        )


def test_an_edited_manifest_or_a_missing_shard_is_refused(tmp_path: Path) -> None:
    path = write(random_log(7, 100, 8), tmp_path / "log.parquet")
    panel = ingest_log(path, tmp_path / "panel", shards=2)
    (panel.path / panel.shard_files[0]).unlink()
    with pytest.raises(DataError, match="cannot read the panel shard"):
        panel.load()
    manifest = json.loads((panel.path / MANIFEST).read_text())
    manifest["shards"][0]["users"] += 1
    (panel.path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        open_panel(panel.path)
