"""Event-log reading: canonical form, every error kind, presets, TOML mappings, round trips, summaries."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winback.data.io import read_event_log, write_event_log
from winback.data.mapping import PRESETS, ColumnMapping, load_mapping
from winback.data.schema import CANONICAL_COLUMNS, INTERVENTIONS
from winback.data.summary import summarize
from winback.errors import DataError

HEADER = "user_id,timestamp,event_type,value,quantity,intervention,arm"


def write_csv(tmp_path: Path, *rows: str, header: str | None = HEADER, name: str = "events.csv") -> Path:
    path = tmp_path / name
    lines = ([header] if header is not None else []) + list(rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def assert_names(message: str, path: Path, rows: str | None, column: str | None) -> None:
    """The message names the file, the rows (e.g. ``rows 2, 4``) and the column."""
    assert str(path) in message
    if rows is not None:
        assert rows in message
    if column is not None:
        assert f"column '{column}'" in message


# --- canonical form ------------------------------------------------------------------------------------


def test_reads_a_canonical_csv_into_exact_dtypes_sorted(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "b,2024-01-02 10:00:00,purchase,12.5,2,,arm-a",
        "a,2024-01-03,view,,,push_new_items,",
        " a ,2024-01-01T08:30:00,cart,,,,",
        "c,2024-01-01,,,,coupon,arm-b",
    )
    log = read_event_log(path)
    events = log.events
    assert list(events.columns) == list(CANONICAL_COLUMNS)
    assert events["user_id"].dtype == "str"
    assert events["timestamp"].dtype == "datetime64[ns]"
    assert events["event_type"].dtype == "str"
    assert events["value"].dtype == np.float64 and events["quantity"].dtype == np.float64
    assert list(events["intervention"].cat.categories) == list(INTERVENTIONS)
    assert events["arm"].dtype == "str"
    assert isinstance(events.index, pd.RangeIndex)
    assert events["user_id"].tolist() == ["a", "a", "b", "c"]
    assert (
        events["timestamp"].tolist()
        == pd.to_datetime(
            ["2024-01-01 08:30", "2024-01-03", "2024-01-02 10:00", "2024-01-01"], format="ISO8601"
        ).tolist()
    )
    assert events["event_type"].tolist() == ["cart", "view", "purchase", ""]
    assert events["value"].tolist() == [0, 0, 12.5, 0]
    assert events["quantity"].tolist() == [0, 0, 2, 0]
    assert events["intervention"].tolist() == ["none", "push_new_items", "none", "coupon"]
    assert events["arm"].tolist() == ["", "", "arm-a", "arm-b"]
    assert log.event_types == ("cart", "view", "purchase")
    assert log.report.rows_read == 4 and log.report.source == str(path)


def test_only_required_columns_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(b"event_type,user_id,timestamp\npurchase,u1,2024-05-01\n"))
    events = read_event_log(path).events
    assert events[["user_id", "event_type", "value", "intervention", "arm"]].values.tolist() == [
        ["u1", "purchase", 0.0, "none", ""]
    ]


def test_timezones_become_naive_utc(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "u,2024-01-01T10:00:00+02:00,view,,,,",
        "u,2024-01-01 09:00:00 UTC,view,,,,",
        "u,2024-01-01T10:30:00Z,view,,,,",
        "u,2024-01-01 11:00:00,view,,,,",
    )
    assert read_event_log(path).events["timestamp"].dt.strftime("%H:%M").tolist() == [
        "08:00",
        "09:00",
        "10:30",
        "11:00",
    ]


def test_blank_lines_are_skipped_and_noted(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "", "u,2024-01-01,purchase,,,,", "")
    log = read_event_log(path)
    assert len(log.events) == 1
    assert "2 blank rows skipped (rows 1, 3)" in log.report.notes


def test_counts_duplicates_and_out_of_order_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "u1,2024-01-03,view,,,,",  # 1
        "u1,2024-01-01,view,,,,",  # 2: out of order (below u1/01-03)
        "u2,2024-01-01,view,,,,",  # 3
        "u1,2024-01-05,view,,,,",  # 4: out of order (below u2/01-01)
        "u2,2024-01-01,view,,,,",  # 5: exact duplicate of 3, dropped
        "u2,2024-01-01,cart,,,,",  # 6: same key as 3, not a duplicate, keeps file order
        "u2,2024-01-02,view,,,,",  # 7
    )
    log = read_event_log(path)
    assert log.report.rows_read == 7
    assert log.report.duplicate_rows_dropped == 1
    assert log.report.out_of_order_rows == 2
    events = log.events
    assert list(zip(events["user_id"], events["timestamp"].dt.day, events["event_type"], strict=True)) == [
        ("u1", 1, "view"),
        ("u1", 3, "view"),
        ("u1", 5, "view"),
        ("u2", 1, "view"),
        ("u2", 1, "cart"),
        ("u2", 2, "view"),
    ]


def test_declared_event_types(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "u,2024-01-01,view,,,,", "u,2024-01-02,buy,,,,")
    log = read_event_log(path, purchase_event="buy", event_types=["view", "buy", "cart"])
    assert log.event_types == ("cart", "view", "buy")
    with pytest.raises(DataError) as err:
        read_event_log(path, event_types=["view", "buy"])
    assert "purchase event 'purchase' is not among the declared event types" in str(err.value)


# --- one test per error kind ---------------------------------------------------------------------------

ROW_ERRORS = {
    "unparseable timestamp": (
        ["u,2024-01-01,view,,,,", "u,yesterday,view,,,,", "u,2024-01-03,view,,,,", "u,2024-13-45,view,,,,"],
        "rows 2, 4",
        "timestamp",
        "unparseable timestamp 'yesterday'",
    ),
    "timestamp out of range": (
        ["u,2300-01-01,view,,,,"],
        "row 1",
        "timestamp",
        "outside the representable range",
    ),
    "negative value": (["u,2024-01-01,purchase,5,,,", "u,2024-01-02,purchase,-3,,,"], "row 2", "value", "-3"),
    "non-numeric value": (["u,2024-01-01,purchase,12$,,,"], "row 1", "value", "not a number: '12$'"),
    "non-finite value": (["u,2024-01-01,purchase,inf,,,"], "row 1", "value", "not a finite number"),
    "negative quantity": (["u,2024-01-01,purchase,,-1,,"], "row 1", "quantity", "negative quantity"),
    "non-numeric quantity": (["u,2024-01-01,purchase,,two,,"], "row 1", "quantity", "not a number: 'two'"),
    "empty user id": (
        ["u,2024-01-01,view,,,,", "  ,2024-01-01,view,,,,"],
        "row 2",
        "user_id",
        "empty user id",
    ),
    "empty event type": (
        ["u,2024-01-01,,,,coupon,", "u,2024-01-01,,,,,", "v,2024-01-01,,,,,"],
        "rows 2, 3",
        "event_type",
        "empty event type on a row without an intervention",
    ),
    "unknown intervention": (
        ["u,2024-01-01,view,,,sms,"],
        "row 1",
        "intervention",
        "unknown intervention 'sms' (expected one of ['none', 'push_new_items', 'coupon', 'care_message']",
    ),
    "wrong number of fields": (
        ["u,2024-01-01,view,,,,", "u,2024-01-01,view,,,", "u,2024-01-01,view,,,,,"],
        "rows 2, 3",
        None,
        "wrong number of fields (found 6, 8) (expected 7 fields per row",
    ),
}


@pytest.mark.parametrize("kind", list(ROW_ERRORS))
def test_row_errors_name_file_rows_and_column(tmp_path: Path, kind: str) -> None:
    rows, shown_rows, column, problem = ROW_ERRORS[kind]
    path = write_csv(tmp_path, *rows)
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert_names(str(err.value), path, shown_rows, column)
    assert problem in str(err.value)


def test_many_bad_rows_show_the_first_few_and_the_total(tmp_path: Path) -> None:
    path = write_csv(tmp_path, *[f"u{i},not a date,view,,,," for i in range(12)])
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert "rows 1, 2, 3, 4, 5 and 7 more" in str(err.value)


def test_undeclared_event_type(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "u,2024-01-01,view,,,,", "u,2024-01-02,click,,,,")
    with pytest.raises(DataError) as err:
        read_event_log(path, event_types=["view", "purchase"])
    assert_names(str(err.value), path, "row 2", "event_type")
    assert "undeclared event type 'click'" in str(err.value)


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(f"{HEADER}\nu,2024-01-01,view,,,,\nu,2024-01-01,vi\xffew,,,,\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert_names(str(err.value), path, "row 2", "event_type")
    assert "not valid UTF-8" in str(err.value)


def test_missing_required_column_lists_columns_and_hints_mapping(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "u,2024-01-01,view", header="visitor,timestamp,event_type")
    with pytest.raises(DataError) as err:
        read_event_log(path)
    message = str(err.value)
    assert_names(message, path, None, "user_id")
    assert "missing required column" in message
    assert "['visitor', 'timestamp', 'event_type']" in message
    assert "--mapping" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty \\(0 bytes\\)") as err:
        read_event_log(path)
    assert str(path) in str(err.value)


def test_header_without_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    with pytest.raises(DataError, match="no data rows") as err:
        read_event_log(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "'\\t'")])
def test_wrong_delimiter_says_which_to_pass(tmp_path: Path, delimiter: str, shown: str) -> None:
    path = write_csv(
        tmp_path,
        delimiter.join(["u", "2024-01-01", "purchase", "1.5", "", "", ""]),
        header=HEADER.replace(",", delimiter),
    )
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert str(path) in str(err.value)
    assert f"--delimiter {shown}" in str(err.value)
    events = read_event_log(path, delimiter=delimiter).events
    assert events["event_type"].tolist() == ["purchase"]


def test_epoch_numbers_need_a_unit(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "u,1700000000,view,,,,")
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert_names(str(err.value), path, "row 1", "timestamp")
    assert "timestamp_unit" in str(err.value)
    log = read_event_log(path, mapping=ColumnMapping(timestamp_unit="s"))
    assert log.events["timestamp"].tolist() == [pd.Timestamp("2023-11-14 22:13:20")]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("events.txt", b"x", "unknown file type"),
        ("events.csv.gz", b"not gzip at all", "cannot read the file"),
        ("events.parquet", b"not parquet at all", "not a readable Parquet file"),
        ("events.parquet", b"", r"empty \(0 bytes\)"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem) as err:
        read_event_log(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_event_log(tmp_path / "absent.csv")


# --- Parquet -------------------------------------------------------------------------------------------


def test_parquet_round_trip_through_write_event_log(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "b,2024-01-02 10:00:00.123456789,purchase,12.5,2,,arm-a",
        "a,2024-01-03,view,,,push_new_items,",
        "c,2024-01-01,,,,coupon,arm-b",
        "a,2024-01-03,view,,,push_new_items,",
    )
    log = read_event_log(path)
    for name in ("copy.parquet", "copy.pq", "copy.csv", "copy.csv.gz"):
        write_event_log(log, tmp_path / name)
        again = read_event_log(tmp_path / name)
        pd.testing.assert_frame_equal(again.events, log.events)
        assert again.report.duplicate_rows_dropped == 0 and again.report.out_of_order_rows == 0


def test_parquet_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "user_id": pa.array([7, 3], pa.int64()),
            "timestamp": pa.array(
                [1_700_000_000_000, 1_600_000_000_000], pa.timestamp("ms", tz="Europe/Paris")
            ),
            "event_type": pa.array(["view", "purchase"]).dictionary_encode(),
            "value": pa.array([None, 4], pa.int32()),
        }
    )
    pq.write_table(table, path)
    events = read_event_log(path).events
    assert events["user_id"].tolist() == ["3", "7"]
    assert events["timestamp"].tolist() == [
        pd.Timestamp(1_600_000_000, unit="s"),
        pd.Timestamp(1_700_000_000, unit="s"),
    ]
    assert events["value"].tolist() == [4.0, 0.0]


@pytest.mark.parametrize(
    ("column", "array", "expected"),
    [
        ("value", pa.array([True, False]), "column 'value': column has type bool (expected numbers)"),
        (
            "user_id",
            pa.array([1.5, 2.5]),
            "column 'user_id': column has type double (expected text or integers)",
        ),
        ("timestamp", pa.array([True, False]), "column 'timestamp': column has type bool"),
        (
            "timestamp",
            pa.array([1, 2]),
            "column 'timestamp': column has type int64 (expected dates or datetimes",
        ),
    ],
)
def test_parquet_wrong_column_types(tmp_path: Path, column: str, array: pa.Array, expected: str) -> None:
    columns = {
        "user_id": pa.array(["a", "b"]),
        "timestamp": pa.array([0, 1], pa.timestamp("s")),
        "event_type": pa.array(["view", "view"]),
    }
    columns[column] = array
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_parquet_row_errors_name_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "user_id": ["a", "b", "c"],
            "timestamp": ["2024-01-01", "2024-01-02", None],
            "event_type": ["view", "view", "view"],
        }
    )
    pq.write_table(table, path)
    with pytest.raises(DataError) as err:
        read_event_log(path)
    assert_names(str(err.value), path, "row 3", "timestamp")
    assert "missing timestamp" in str(err.value)


# --- mappings ------------------------------------------------------------------------------------------


def test_retailrocket_preset(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "1433221332117,257597,view,355908,",
        "1433224214164,992329,view,248676,",
        "1433221999827,257597,addtocart,355908,",
        "1433222276276,257597,transaction,355908,4000",
        header="timestamp,visitorid,event,itemid,transactionid",
    )
    log = read_event_log(path, mapping="retailrocket")
    events = log.events
    assert events["user_id"].tolist() == ["257597", "257597", "257597", "992329"]
    assert events["event_type"].tolist() == ["view", "cart", "purchase", "view"]
    assert events["timestamp"].iloc[0] == pd.Timestamp(1433221332117, unit="ms")
    assert log.event_types == ("cart", "view", "purchase")


def test_rees46_preset_takes_value_from_price_on_purchases_only(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde",
        "2019-10-01 00:05:00 UTC,cart,3900821,2053013552,appliances.heater,aqua,33.20,554748717,9333",
        "2019-10-01 00:07:30 UTC,purchase,3900821,2053013552,appliances.heater,aqua,33.20,554748717,9333",
        header="event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
    )
    log = read_event_log(path, mapping=PRESETS["rees46"])
    events = log.events
    assert events["user_id"].tolist() == ["541312140", "554748717", "554748717"]
    assert events["event_type"].tolist() == ["view", "cart", "purchase"]
    assert events["value"].tolist() == [0.0, 0.0, 33.2]
    assert (
        events["timestamp"].tolist()
        == pd.to_datetime(["2019-10-01 00:00:00", "2019-10-01 00:05:00", "2019-10-01 00:07:30"]).tolist()
    )


def test_taobao_preset_reads_a_headerless_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "1,2268318,2520377,pv,1511544070",
        "1,2333346,2520771,buy,1511561733",
        "2,2576651,149192,cart,1511572885",
        "2,3830808,4181361,fav,1511593493",
        header=None,
    )
    log = read_event_log(path, mapping="taobao")
    events = log.events
    assert events["event_type"].tolist() == ["view", "purchase", "cart", "fav"]
    assert events["timestamp"].iloc[1] == pd.Timestamp(1511561733, unit="s")
    assert log.report.rows_read == 4


def test_mapping_errors_name_the_source_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "1433221332117,257597,view,355908,", header="timestamp,visitor,event,itemid,tid"
    )
    with pytest.raises(DataError) as err:
        read_event_log(path, mapping="retailrocket")
    assert_names(str(err.value), path, None, "visitorid")
    assert "mapping 'retailrocket' reads 'user_id' from 'visitorid'" in str(err.value)


def test_toml_mapping(tmp_path: Path) -> None:
    mapping_path = tmp_path / "shop.toml"
    mapping_path.write_text(
        'timestamp_unit = "s"\n'
        "[columns]\n"
        'user_id = "customer"\n'
        'timestamp = "when"\n'
        'event_type = "what"\n'
        'value = "amount"\n'
        "[event_renames]\n"
        'order = "purchase"\n'
    )
    mapping = load_mapping(mapping_path)
    assert mapping.name == "shop" and mapping.source("user_id") == "customer"
    path = write_csv(
        tmp_path, "c1,1700000000,order,9.5", "c1,1700000100,view,", header="customer,when,what,amount"
    )
    events = read_event_log(path, mapping=str(mapping_path)).events
    assert events["event_type"].tolist() == ["purchase", "view"]
    assert events["value"].tolist() == [9.5, 0.0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('delimiter = ";"\n', "unknown key 'delimiter'"),
        ("timestamp_unit = 5\n", "key 'timestamp_unit' has a int value (expected one of ['s', 'ms'])"),
        ('timestamp_unit = "days"\n', "key 'timestamp_unit' is 'days'"),
        ('columns = "user_id"\n', "key 'columns' has a str value"),
        ("[columns]\nuser_id = 3\n", "key 'columns.user_id' has a int value (expected a string)"),
        ('[columns]\nvisitor = "user_id"\n', "key 'columns.visitor' is not a canonical column"),
        ('header = ["a", 2]\n', "key 'header' holds a non-string name"),
        ('header = ["a", "b"]\n', "header ['a', 'b'] lacks required column 'user_id'"),
        ("[columns\n", "not valid TOML"),
    ],
)
def test_toml_mapping_errors_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_mapping(path)
    assert str(path) in str(err.value)
    assert problem in str(err.value)


def test_unknown_mapping_name() -> None:
    with pytest.raises(DataError, match=r"unknown mapping 'retail'.*retailrocket"):
        load_mapping("retail")


# --- summary -------------------------------------------------------------------------------------------


def test_summary_of_a_hand_made_log(tmp_path: Path) -> None:
    rows = [
        "a,2024-01-01,view,,,,",
        *(f"a,2024-01-0{day},purchase,10,1,," for day in (2, 3, 4)),
        "b,2024-01-05,view,,,,",
        "b,2024-01-06,view,,,,",
        "c,2024-01-03,purchase,5,1,,",
        "c,2024-01-04,,,,coupon,",
        *(f"d,2024-02-0{day},purchase,1,1,push_new_items," for day in range(1, 8)),
        "d,2024-02-01,purchase,1,1,push_new_items,",  # duplicate
    ]
    summary = summarize(read_event_log(write_csv(tmp_path, *rows)))
    assert summary.rows == 15 and summary.users == 4
    assert (summary.first_date, summary.last_date) == ("2024-01-01", "2024-02-07")
    assert summary.events_per_type == {"view": 3, "purchase": 11}
    assert summary.intervention_only_rows == 1
    assert summary.contacts_per_intervention == {"push_new_items": 7, "coupon": 1, "care_message": 0}
    distribution = summary.purchases_per_user  # purchases per user: a 3, b 0, c 1, d 7
    assert distribution.mean == pytest.approx(2.75)
    assert distribution.quantiles["p50"] == pytest.approx(2.0)
    assert distribution.max == 7
    assert distribution.histogram == {"0": 1, "1": 1, "2": 0, "3-5": 1, "6-10": 1, "11+": 0}
    assert summary.rows_read == 16 and summary.duplicate_rows_dropped == 1
    assert summary.to_dict()["purchases_per_user"]["histogram"]["3-5"] == 1
    markdown = summary.to_markdown()
    assert "| users | 4 |" in markdown and "| 6-10 | 1 |" in markdown
