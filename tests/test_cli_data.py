"""``winback data validate`` and ``winback data summary``: success output, and exit code 2 with a message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from winback.cli import EXIT_BAD_INPUT, app

HEADER = "user_id,timestamp,event_type,value,quantity,intervention,arm"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        app(argv)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def write_log(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return write_log(
        tmp_path,
        f"{HEADER}\n"
        "u2,2024-01-02,view,,,,\n"
        "u1,2024-01-01,purchase,9.5,1,,\n"
        "u1,2024-01-01,purchase,9.5,1,,\n"
        "u1,2024-01-03,view,,,coupon,\n",
    )


def test_validate_reports_counts(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["data", "validate", str(log_path)], capsys)
    assert code == 0
    assert out.startswith(f"OK: {log_path}: 3 rows (4 read), 2 users, event types view, purchase")
    assert "1 exact duplicate rows dropped, 2 out-of-order rows sorted" in out


def test_validate_failure_exits_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_log(tmp_path, "visitor,timestamp,event_type\nu,2024-01-01,view\n")
    code, _, err = run(["data", "validate", str(path)], capsys)
    assert code == EXIT_BAD_INPUT
    assert str(path) in err and "column 'user_id'" in err and "--mapping" in err
    assert "Traceback" not in err


def test_validate_row_error_names_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(tmp_path, f"{HEADER}\nu,2024-01-01,view,,,,\nu,2024-01-02,purchase,-4,,,\n")
    code, _, err = run(["data", "validate", str(path)], capsys)
    assert code == EXIT_BAD_INPUT
    assert "row 2" in err and "column 'value'" in err and "negative value" in err
    assert "Traceback" not in err


def test_validate_with_delimiter_and_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(tmp_path, "1;10;20;pv;1511544070\n1;11;20;buy;1511561733\n")
    code, _, err = run(["data", "validate", str(path), "--mapping", "taobao"], capsys)
    assert code == EXIT_BAD_INPUT and "--delimiter ';'" in err
    code, out, _ = run(["data", "validate", str(path), "--mapping", "taobao", "--delimiter", ";"], capsys)
    assert code == 0 and "2 rows" in out and "event types view, purchase" in out


def test_validate_tab_delimiter_and_declared_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_log(tmp_path, "user_id\ttimestamp\tevent_type\nu\t2024-01-01\tclick\n")
    code, _, err = run(
        ["data", "validate", str(path), "--delimiter", "tab", "--event-types", "view,purchase"], capsys
    )
    assert code == EXIT_BAD_INPUT and "undeclared event type 'click'" in err and "row 1" in err
    code, out, _ = run(["data", "validate", str(path), "--delimiter", "\\t"], capsys)
    assert code == 0 and "Note: no 'purchase' rows" in out


def test_summary_json(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["data", "summary", str(log_path), "--json"], capsys)
    assert code == 0
    figures = json.loads(out)
    assert figures["users"] == 2 and figures["rows"] == 3
    assert figures["events_per_type"] == {"view": 2, "purchase": 1}
    assert figures["contacts_per_intervention"]["coupon"] == 1
    assert figures["purchases_per_user"]["histogram"]["0"] == 1
    assert figures["duplicate_rows_dropped"] == 1 and figures["out_of_order_rows"] == 2


def test_summary_cdnow_sample(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["data", "summary", "cdnow-sample", "--json"], capsys)
    assert code == 0
    figures = json.loads(out)
    assert figures["users"] == 2357
    assert figures["rows_read"] == 6919 and figures["same_day_rows_merged"] == 223 and figures["rows"] == 6696
    assert (figures["first_date"], figures["last_date"]) == ("1997-01-01", "1998-06-30")
    assert figures["purchases_per_user"]["histogram"]["1"] == 1218
    code, out, _ = run(["data", "summary", "cdnow-sample"], capsys)
    assert code == 0 and "| users | 2,357 |" in out


def test_summary_failures_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["data", "summary", "cdnow-sample", "--mapping", "taobao"], capsys)
    assert code == EXIT_BAD_INPUT and "takes no loading options" in err
    empty = write_log(tmp_path, "")
    code, _, err = run(["data", "summary", str(empty)], capsys)
    assert code == EXIT_BAD_INPUT and str(empty) in err and "empty" in err and "Traceback" not in err
    code, _, err = run(["data", "summary", str(tmp_path / "events.xlsx")], capsys)
    assert code == EXIT_BAD_INPUT and "unknown file type" in err


RETAIL_MAPPING = """shape = "transactions"
[columns]
user_id = "Customer ID"
timestamp = "InvoiceDate"
order_id = "Invoice"
quantity = "Quantity"
price = "Price"
[transactions]
cancellations = "net"
cancellation_prefix = "C"
[contacts]
path = "crm.csv"
[contacts.columns]
user_id = "customer"
timestamp = "sent_at"
kind = "channel"
"""


def test_summary_of_a_transaction_log_with_contacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = write_log(tmp_path, RETAIL_MAPPING, "retail.toml")
    write_log(tmp_path, "customer,sent_at,channel\n1,2024-01-01,coupon\n9,2024-01-01,coupon\n", "crm.csv")
    path = write_log(
        tmp_path,
        "Invoice,Quantity,InvoiceDate,Price,Customer ID\n"
        "A1,2,2024-01-02,5,1\nA1,1,2024-01-02,2.5,1\nA2,1,2024-01-02,4,\nC1,-1,2024-01-03,5,1\n",
        "retail.csv",
    )
    code, out, _ = run(["data", "summary", str(path), "--mapping", str(mapping), "--json"], capsys)
    assert code == 0
    figures = json.loads(out)
    assert figures["events_per_type"] == {"purchase": 1} and figures["intervention_only_rows"] == 1
    assert (figures["order_lines"], figures["orders"], figures["rows_without_user"]) == (2, 1, 1)
    assert (figures["cancelled_lines"], figures["cancelled_value"]) == (1, 5.0)
    assert (figures["contact_rows"], figures["contacts_of_unknown_users"]) == (2, 1)
    code, out, _ = run(["data", "summary", str(path), "--mapping", str(mapping)], capsys)
    assert code == 0 and "| order lines into orders | 2 into 1 |" in out
    assert "| cancellation lines (orders, value) | 1 (1, 5.00) |" in out
    code, out, _ = run(["data", "validate", str(path), "--mapping", str(mapping)], capsys)
    assert code == 0 and "contacts of users not in the log: 1" in out


def test_a_malformed_transaction_log_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(
        tmp_path,
        "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
        "A1,1,x,1,2024-01-02,5,1,UK\nA2,1,x,one,2024-01-02,5,1,UK\n",
    )
    code, _, err = run(["data", "summary", str(path), "--mapping", "online-retail"], capsys)
    assert code == EXIT_BAD_INPUT and "Traceback" not in err
    assert str(path) in err and "row 2" in err and "column 'Quantity'" in err and "not a number: 'one'" in err


def test_each_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["data", "--help"], capsys)
    assert code == 0
    assert "Check an event log" in out and "Summarise an event log" in out


def test_panel_writes_shards_and_refuses_bad_input(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from winback.data.shards import open_panel

    argv = ["data", "panel", str(log_path), str(tmp_path / "panel"), "--shards", "2", "--period", "day"]
    code, out, _ = run([*argv, "--no-progress"], capsys)
    assert code == 0
    assert "2 users x 3 days from 2024-01-01" in out and "1 exact duplicate rows dropped" in out
    assert "2 out-of-order rows sorted" in out  # as `data validate` counts them
    assert open_panel(tmp_path / "panel").load().counts.sum() == 3
    bad = write_log(tmp_path, f"{HEADER}\nu1,2024-01-01,view,-3,,,\n", "bad.csv")
    code, _, err = run(["data", "panel", str(bad), str(tmp_path / "bad"), "--no-progress"], capsys)
    assert code == EXIT_BAD_INPUT
    assert "bad.csv, row 1, column 'value': negative value" in err
