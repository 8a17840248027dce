"""Transaction (order-line) logs and contacts files, declared in the mapping: grouping, cancellations,
users without an id, contacts merged, errors naming file, row and column, and the documented examples."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_data_fuzz import assert_valid

from winback.cli import app
from winback.data.io import read_event_log
from winback.data.mapping import (
    CANCELLATION_EVENT,
    PRESETS,
    ColumnMapping,
    ContactsFile,
    TransactionRules,
    load_mapping,
)
from winback.data.panel import build_panel
from winback.data.schema import CONTACTS, EventLog
from winback.data.summary import summarize
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.artifact import load_model
from winback.errors import DataError

RETAIL_HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"
GUIDE = Path(__file__).parent.parent / "docs" / "guide.md"


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def retail(tmp_path: Path, *lines: str) -> Path:
    """An Online Retail II file of ``invoice,quantity,date,price,customer`` lines."""
    rows = []
    for line in lines:
        invoice, quantity, date, price, customer = line.split(",")
        rows.append(f"{invoice},SKU,item,{quantity},{date},{price},{customer},UK")
    return write(tmp_path, "retail.csv", RETAIL_HEADER, *rows)


def with_rules(cancellations: str, prefix: str | None = "C") -> ColumnMapping:
    return dataclasses.replace(
        PRESETS["online-retail"], transactions=TransactionRules(cancellations, cancellation_prefix=prefix)
    )


def rows_of(log: EventLog) -> list[tuple[str, str, str, float, float]]:
    events = log.events
    return [
        (user, str(time), kind, value, quantity)
        for user, time, kind, value, quantity in zip(
            events["user_id"],
            events["timestamp"],
            events["event_type"],
            events["value"].round(9),
            events["quantity"],
            strict=True,
        )
    ]


# --- transaction logs ---------------------------------------------------------------------------------


def test_lines_of_one_order_form_one_purchase_at_its_first_line(tmp_path: Path) -> None:
    path = retail(
        tmp_path,
        "A1,1,2024-01-02 08:00:00,4,u2",
        "A1,2,2024-01-01 10:00:00,1.50,u1",  # same order id, another customer: another order
        "A2,1,2024-01-03 09:00:00,10,u1",
        "A1,3,2024-01-01 09:59:00,2.00,u1",  # a later line of u1's A1, earlier in time
    )
    log = read_event_log(path, mapping="online-retail")
    assert_valid(log)
    assert rows_of(log) == [
        ("u1", "2024-01-01 09:59:00", "purchase", 9.0, 5.0),
        ("u1", "2024-01-03 09:00:00", "purchase", 10.0, 1.0),
        ("u2", "2024-01-02 08:00:00", "purchase", 4.0, 1.0),
    ]
    report = log.report
    assert (report.rows_read, report.order_lines, report.orders) == (4, 4, 3)
    assert report.out_of_order_rows == 2  # u1's orders come after u2's in the file
    assert report.duplicate_rows_dropped == 0 and report.cancelled_lines == 0


def test_identical_lines_are_all_sales(tmp_path: Path) -> None:
    path = write(
        tmp_path, "t.csv", "customer_id,date,monetary_value", *["0,2014-05-21,29.33"] * 2, "1,2014-03-28,5"
    )
    mapping = ColumnMapping(
        name="lifetimes",
        shape="transactions",
        columns={"user_id": "customer_id", "timestamp": "date", "value": "monetary_value"},
    )
    log = read_event_log(path, mapping=mapping)
    assert log.events["value"].tolist() == [29.33, 29.33, 5.0]
    assert log.events["quantity"].tolist() == [0.0, 0.0, 0.0]
    assert (log.report.orders, log.report.duplicate_rows_dropped) == (3, 0)


def test_lines_without_a_customer_id_are_counted_and_left_out(tmp_path: Path) -> None:
    path = retail(tmp_path, "A1,1,2024-01-01,2,u1", "A2,1,2024-01-01,-5,", "A3,x,2024-01-02,1,")
    log = read_event_log(path, mapping="online-retail")
    assert log.report.rows_without_user == 2
    assert rows_of(log) == [("u1", "2024-01-01 00:00:00", "purchase", 2.0, 1.0)]
    assert "2 rows without a user id ('Customer ID' empty) left out" in log.report.notes
    strict = dataclasses.replace(PRESETS["online-retail"], missing_user="error")
    with pytest.raises(DataError) as err:
        read_event_log(path, mapping=strict)
    assert f"{path}, rows 2, 3, column 'Customer ID': empty user id" in str(err.value)


def test_event_logs_skip_rows_without_a_user_only_when_the_mapping_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", "user_id,timestamp,event_type", "u,2024-01-01,view", ",2024-01-02,view")
    with pytest.raises(DataError, match=r"row 2, column 'user_id': empty user id.*missing_user = 'skip'"):
        read_event_log(path)
    log = read_event_log(path, mapping=ColumnMapping(missing_user="skip"))
    assert len(log.events) == 1 and log.report.rows_without_user == 1
    assert "| rows without a user id, left out | 1 |" in summarize(log).to_markdown()


CANCELLING = (
    "C0,-1,2024-01-01 08:00:00,3,u1",  # before any purchase of u1: nothing to net
    "A1,2,2024-01-01 10:00:00,5,u1",  # 10
    "A2,1,2024-01-02 10:00:00,4,u1",  # 4
    "C1,-1,2024-01-03 10:00:00,6,u1",  # 6
    "C1,-1,2024-01-03 10:00:00,1,u1",  # same cancelled order: 7 in all, takes A2's 4 and 3 of A1
    "A3,1,2024-01-04 10:00:00,8,u1",  # after the cancellation: untouched
    "A4,1,2024-01-05 10:00:00,2,u2",
    "A4,-1,2024-01-05 10:00:00,2,u2",  # a return line inside an order, no prefix: at the same time
)


@pytest.mark.parametrize(
    ("mode", "expected", "unmatched"),
    [
        (
            "drop",
            [
                ("u1", "01", "purchase", 10.0, 2.0),
                ("u1", "02", "purchase", 4.0, 1.0),
                ("u1", "04", "purchase", 8.0, 1.0),
                ("u2", "05", "purchase", 2.0, 1.0),
            ],
            0.0,
        ),
        (
            "net",
            [
                ("u1", "01", "purchase", 7.0, 2.0),
                ("u1", "02", "purchase", 0.0, 1.0),
                ("u1", "04", "purchase", 8.0, 1.0),
                ("u2", "05", "purchase", 0.0, 1.0),
            ],
            3.0,
        ),
        (
            "event",
            [
                ("u1", "01", CANCELLATION_EVENT, 3.0, 1.0),
                ("u1", "01", "purchase", 10.0, 2.0),
                ("u1", "02", "purchase", 4.0, 1.0),
                ("u1", "03", CANCELLATION_EVENT, 7.0, 2.0),
                ("u1", "04", "purchase", 8.0, 1.0),
                ("u2", "05", "purchase", 2.0, 1.0),
                ("u2", "05", CANCELLATION_EVENT, 2.0, 1.0),
            ],
            0.0,
        ),
    ],
)
def test_cancellations_per_mode_with_their_counts(
    tmp_path: Path, mode: str, expected: list[tuple], unmatched: float
) -> None:
    log = read_event_log(retail(tmp_path, *CANCELLING), mapping=with_rules(mode))
    assert_valid(log)
    assert [(u, t[8:10], kind, v, q) for u, t, kind, v, q in rows_of(log)] == expected
    report = log.report
    assert (report.order_lines, report.orders) == (4, 4)
    assert (report.cancelled_lines, report.cancelled_orders) == (4, 3)
    assert report.cancelled_value == pytest.approx(3 + 7 + 2)
    assert report.cancelled_value_unmatched == pytest.approx(unmatched)


def test_without_a_prefix_only_negative_quantities_cancel(tmp_path: Path) -> None:
    log = read_event_log(retail(tmp_path, *CANCELLING), mapping=with_rules("drop", prefix=None))
    # C0 and C1 have negative quantities anyway: the same cancellations.
    assert (log.report.cancelled_lines, log.report.orders) == (4, 4)
    positive = retail(tmp_path, "C9,2,2024-01-01,3,u1", "A1,1,2024-01-02,1,u1")
    assert read_event_log(positive, mapping=with_rules("drop", prefix=None)).report.cancelled_lines == 0
    assert read_event_log(positive, mapping=with_rules("drop")).report.cancelled_lines == 1


def test_net_never_takes_value_across_customers(tmp_path: Path) -> None:
    path = retail(tmp_path, "A1,1,2024-01-01,5,u1", "C1,-1,2024-01-02,9,u2", "A2,1,2024-01-01,1,u2")
    log = read_event_log(path, mapping=with_rules("net"))
    assert log.events["value"].tolist() == [5.0, 0.0]
    assert log.report.cancelled_value_unmatched == pytest.approx(8.0)


def test_a_transaction_log_builds_a_panel_whose_spend_is_the_purchases(tmp_path: Path) -> None:
    log = read_event_log(retail(tmp_path, *CANCELLING), mapping=with_rules("net"))
    panel = build_panel(log, period="day")
    assert panel.spend.sum() == pytest.approx(log.events["value"].sum())


def test_parquet_transactions_with_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "Customer ID": pa.array([13085, 13085, None], pa.int64()),
            "InvoiceDate": pa.array(pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"])),
            "Invoice": pa.array([5, 5, 6], pa.int64()),
            "Quantity": pa.array([2, 1, 1], pa.int64()),
            "Price": pa.array([1.25, 2.5, 9.0]),
        }
    )
    pq.write_table(table, path)
    log = read_event_log(path, mapping="online-retail")
    assert rows_of(log) == [("13085", "2024-01-01 00:00:00", "purchase", 5.0, 3.0)]
    assert log.report.rows_without_user == 1


@pytest.mark.parametrize(
    ("line", "rows", "column", "problem"),
    [
        ("A2,1,2024-01-02,-3,u2", "row 2", "Price", "negative price '-3'"),
        ("A2,two,2024-01-02,3,u2", "row 2", "Quantity", "not a number: 'two'"),
        ("A2,,2024-01-02,3,u2", "row 2", "Quantity", "missing quantity"),
        ("A2,1,2024-01-02,,u2", "row 2", "Price", "missing price"),
        ("A2,1,yesterday,3,u2", "row 2", "InvoiceDate", "unparseable timestamp 'yesterday'"),
        (",1,2024-01-02,3,u2", "row 2", "Invoice", "missing order id"),
        ("A2,1e200,2024-01-02,1e200,u2", "row 2", "Price", "quantity x price is not a finite number"),
    ],
)
def test_malformed_lines_name_file_row_and_column(
    tmp_path: Path, line: str, rows: str, column: str, problem: str
) -> None:
    path = retail(tmp_path, "A1,1,2024-01-01,1,u1", line)
    with pytest.raises(DataError) as err:
        read_event_log(path, mapping="online-retail")
    assert f"{path}, {rows}, column '{column}': {problem}" in str(err.value)


@pytest.mark.parametrize(
    ("header", "columns", "rules", "problem"),
    [
        (
            "c,t,p,v",
            {"user_id": "c", "timestamp": "t", "price": "p"},
            TransactionRules(),
            "without a quantity column",
        ),
        (
            "c,t,q,p,value",
            {"user_id": "c", "timestamp": "t", "quantity": "q", "price": "p"},
            TransactionRules(),
            "both a price column 'p' and a value column 'value'",
        ),
        (
            "c,t,q",
            {"user_id": "c", "timestamp": "t", "quantity": "q"},
            TransactionRules(cancellation_prefix="C"),
            "no order id column",
        ),
        (
            "c,q",
            {"user_id": "c", "timestamp": "t", "quantity": "q"},
            TransactionRules(),
            "missing required column",
        ),
    ],
)
def test_inconsistent_columns_are_named(
    tmp_path: Path, header: str, columns: dict[str, str], rules: TransactionRules, problem: str
) -> None:
    path = write(
        tmp_path, "t.csv", header, ",".join(["u", "2024-01-01", "1", "1", "1"][: header.count(",") + 1])
    )
    mapping = ColumnMapping(name="t", shape="transactions", columns=columns, transactions=rules)
    with pytest.raises(DataError, match=re.escape(problem)) as err:
        read_event_log(path, mapping=mapping)
    assert str(path) in str(err.value)


def test_a_log_of_cancellations_only_is_an_error(tmp_path: Path) -> None:
    path = retail(tmp_path, "C1,-1,2024-01-01,1,u1", "A1,1,2024-01-01,1,")
    with pytest.raises(DataError, match="every line with a user id is a cancellation"):
        read_event_log(path, mapping="online-retail")
    log = read_event_log(path, mapping=with_rules("event"))
    assert log.events["event_type"].tolist() == [CANCELLATION_EVENT]


def test_cancellation_events_must_be_declared_when_types_are(tmp_path: Path) -> None:
    path = retail(tmp_path, "A1,1,2024-01-01,1,u1")
    with pytest.raises(DataError, match="'cancellation' events, not among the declared event types"):
        read_event_log(path, mapping=with_rules("event"), event_types=["purchase"])
    log = read_event_log(path, mapping=with_rules("event"), event_types=["purchase", CANCELLATION_EVENT])
    assert log.event_types == (CANCELLATION_EVENT, "purchase")


# --- contacts files -----------------------------------------------------------------------------------


def contacts_mapping(crm: Path, **options: object) -> ContactsFile:
    return ContactsFile(
        path=crm,
        columns={"user_id": "customer", "timestamp": "sent_at", "kind": "campaign_type"},
        kind_renames={"email_promo": "push_new_items", "voucher": "coupon"},
        **options,
    )


def test_contacts_merge_into_an_event_log_as_intervention_only_rows(tmp_path: Path) -> None:
    log_path = write(
        tmp_path, "e.csv", "user_id,timestamp,event_type", "a,2024-01-02,view", "b,2024-01-03,purchase"
    )
    crm = write(
        tmp_path,
        "crm.csv",
        "customer,sent_at,campaign_type,arm",
        "b,2024-01-01,voucher,x",
        "a,2024-01-01,email_promo,",
        "a,2024-01-01,email_promo,",  # duplicate
        "zz,2024-01-01,care_message,",  # no row in the log
    )
    mapping = ColumnMapping(contacts=contacts_mapping(crm))
    log = read_event_log(log_path, mapping=mapping)
    assert_valid(log)
    events = log.events
    assert events[["user_id", "event_type", "intervention", "arm"]].values.tolist() == [
        ["a", "", "push_new_items", ""],
        ["a", "view", "none", ""],
        ["b", "", "coupon", "x"],
        ["b", "purchase", "none", ""],
    ]
    report = log.report
    assert (report.rows_read, report.contact_rows, report.contacts_of_unknown_users) == (6, 4, 1)
    assert report.duplicate_rows_dropped == 1
    assert any(
        "1 of 4 contacts are of users with no row in the log, left out" in note for note in report.notes
    )
    summary = summarize(log)
    assert summary.contacts_per_intervention == {"push_new_items": 1, "coupon": 1, "care_message": 0}
    keep = ColumnMapping(contacts=contacts_mapping(crm, unknown_users="keep"))
    kept = read_event_log(log_path, mapping=keep)
    assert kept.n_users == 3 and kept.report.contacts_of_unknown_users == 1


def test_contacts_come_with_a_transaction_log_from_the_toml_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mappings"
    folder.mkdir()
    write(folder, "crm.csv", "customer,sent_at,campaign_type", "u1,2023-12-31,voucher")
    toml = write(
        folder,
        "m.toml",
        'shape = "transactions"',
        "[columns]",
        'user_id = "Customer ID"',
        'timestamp = "InvoiceDate"',
        'order_id = "Invoice"',
        'quantity = "Quantity"',
        'price = "Price"',
        "[contacts]",
        'path = "crm.csv"',
        "[contacts.columns]",
        'user_id = "customer"',
        'timestamp = "sent_at"',
        'kind = "campaign_type"',
        "[contacts.kind_renames]",
        'voucher = "coupon"',
    )
    log = read_event_log(retail(tmp_path, "A1,1,2024-01-01,2,u1"), mapping=str(toml))
    assert rows_of(log) == [
        ("u1", "2023-12-31 00:00:00", "", 0.0, 0.0),
        ("u1", "2024-01-01 00:00:00", "purchase", 2.0, 1.0),
    ]
    assert log.events["intervention"].tolist() == ["coupon", "none"]


@pytest.mark.parametrize(
    ("line", "column", "problem"),
    [
        ("a,2024-01-01,sms", "campaign_type", "unknown contact kind 'sms'"),
        ("a,2024-01-01,", "campaign_type", "missing contact kind"),
        (",2024-01-01,voucher", "customer", "empty user id"),
        ("a,someday,voucher", "sent_at", "unparseable timestamp 'someday'"),
    ],
)
def test_contacts_errors_name_the_contacts_file_row_and_column(
    tmp_path: Path, line: str, column: str, problem: str
) -> None:
    log_path = write(tmp_path, "e.csv", "user_id,timestamp,event_type", "a,2024-01-02,view")
    crm = write(tmp_path, "crm.csv", "customer,sent_at,campaign_type", "a,2024-01-01,voucher", line)
    with pytest.raises(DataError) as err:
        read_event_log(log_path, mapping=ColumnMapping(contacts=contacts_mapping(crm)))
    assert f"{crm}, row 2, column '{column}': {problem}" in str(err.value)


def test_a_missing_contacts_file_or_column_is_named(tmp_path: Path) -> None:
    log_path = write(tmp_path, "e.csv", "user_id,timestamp,event_type", "a,2024-01-02,view")
    absent = tmp_path / "absent.csv"
    with pytest.raises(DataError, match=f"{re.escape(str(absent))}: file not found"):
        read_event_log(log_path, mapping=ColumnMapping(contacts=contacts_mapping(absent)))
    crm = write(tmp_path, "crm.csv", "customer,sent_at,type", "a,2024-01-01,voucher")
    with pytest.raises(
        DataError, match=r"column 'campaign_type': missing required column.*\[contacts.columns\]"
    ):
        read_event_log(log_path, mapping=ColumnMapping(contacts=contacts_mapping(crm)))


# --- TOML ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('shape = "orders"\n', "key 'shape' is 'orders'"),
        (
            'shape = "transactions"\n[columns]\nevent_type = "e"\n',
            "key 'columns.event_type' is not a transaction-log field",
        ),
        ('shape = "transactions"\n[event_renames]\na = "b"\n', "has event renames or value_only_on_purchase"),
        ('[transactions]\ncancellations = "net"\n', "of shape 'events' has transaction rules"),
        (
            'shape = "transactions"\n[transactions]\ncancellations = "keep"\n',
            "key 'transactions.cancellations' is 'keep'",
        ),
        ('shape = "transactions"\n[transactions]\nprefix = "C"\n', "unknown key 'transactions.prefix'"),
        (
            'shape = "transactions"\n[transactions]\ncancellation_prefix = " "\n',
            "the cancellation prefix is empty",
        ),
        ('missing_user = "ignore"\n', "key 'missing_user' is 'ignore'"),
        ("[contacts]\n", "table 'contacts' has no key 'path'"),
        (
            '[contacts]\npath = "c.csv"\n[contacts.columns]\nchannel = "c"\n',
            "key 'contacts.columns.channel' is not a contacts field",
        ),
        ('[contacts]\npath = "c.csv"\n[contacts.kind_renames]\nsms = "text"\n', "renames a kind to 'text'"),
        ('[contacts]\npath = "c.csv"\nunknown_users = "maybe"\n', "key 'contacts.unknown_users' is 'maybe'"),
        ("[contacts]\npath = 3\n", "key 'contacts.path' has a int value"),
    ],
)
def test_toml_shape_errors_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_mapping(path)
    assert str(path) in str(err.value)
    assert problem in str(err.value)


# --- documented examples ------------------------------------------------------------------------------

EXAMPLE_READS = {
    "events.toml": ("events.csv", {"rows": 4, "users": 2}),
    "online-retail.toml": (
        "online-retail.csv",
        {"rows": 2, "orders": 2, "cancelled_lines": 1, "rows_without_user": 1},
    ),
    "lifetimes.toml": ("lifetimes.csv", {"rows": 4, "orders": 4}),
    "online-retail-crm.toml": (
        "online-retail.csv",
        {"rows": 4, "contact_rows": 3, "contacts_of_unknown_users": 1},
    ),
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_READS))
def test_documented_examples_read_and_appear_verbatim_in_the_guide(name: str) -> None:
    data, figures = EXAMPLE_READS[name]
    log = read_event_log(EXAMPLES / data, mapping=str(EXAMPLES / name))
    assert_valid(log)
    summary = summarize(log).to_dict()
    assert {key: summary[key] for key in figures} == figures
    guide = GUIDE.read_text(encoding="utf-8")
    for example in (name, data):
        assert f"# docs/examples/{example}\n{(EXAMPLES / example).read_text(encoding='utf-8')}```" in guide


def test_every_example_file_is_exercised() -> None:
    used = set(EXAMPLE_READS) | {data for data, _ in EXAMPLE_READS.values()} | {"crm.csv"}
    assert {path.name for path in EXAMPLES.iterdir()} == used


def test_the_online_retail_preset_equals_the_documented_drop_mapping() -> None:
    documented = load_mapping(EXAMPLES / "online-retail.toml")
    assert documented == PRESETS["online-retail"]
    assert set(CONTACTS) >= set(
        load_mapping(EXAMPLES / "online-retail-crm.toml").contacts.kind_renames.values()
    )


def test_rows_without_a_user_are_skipped_by_default_in_transaction_logs_only() -> None:
    assert not any(PRESETS[name].skips_missing_users for name in ("retailrocket", "rees46", "taobao"))
    assert PRESETS["online-retail"].skips_missing_users
    assert not ColumnMapping(shape="transactions", missing_user="error").skips_missing_users


# --- downstream ---------------------------------------------------------------------------------------


def test_decay_fit_runs_on_a_transaction_log_with_a_crm_file(tmp_path: Path) -> None:
    events = generate_synthetic_log(SyntheticConfig(n_users=120, n_periods=16, seed=3)).log.events
    purchases = events[events["event_type"] == "purchase"]
    lines = pd.DataFrame(
        {
            "Invoice": [f"I{i}" for i in range(len(purchases))],
            "Quantity": 1,
            "InvoiceDate": purchases["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(),
            "Price": purchases["value"].round(2).to_numpy(),
            "Customer ID": purchases["user_id"].to_numpy(),
        }
    )
    lines.to_csv(tmp_path / "retail.csv", index=False)
    contacts = events[events["event_type"] == ""]
    crm = pd.DataFrame(
        {"customer": contacts["user_id"], "sent_at": contacts["timestamp"], "kind": contacts["intervention"]}
    )
    crm.to_csv(tmp_path / "crm.csv", index=False)
    toml = (
        (EXAMPLES / "online-retail.toml").read_text()
        + '[contacts]\npath = "crm.csv"\n[contacts.columns]\nuser_id = "customer"\ntimestamp = "sent_at"\n'
    )
    (tmp_path / "retail.toml").write_text(toml)
    log = read_event_log(tmp_path / "retail.csv", mapping=str(tmp_path / "retail.toml"))
    assert log.report.orders == len(purchases)
    assert log.report.contact_rows == len(contacts)
    assert (
        log.events["intervention"].value_counts().drop("none").sum()
        == len(contacts) - log.report.contacts_of_unknown_users
    )
    argv = [
        "decay",
        "fit",
        "--data",
        str(tmp_path / "retail.csv"),
        "--mapping",
        str(tmp_path / "retail.toml"),
    ]
    with pytest.raises(SystemExit) as stop:
        app([*argv, "--model", "exponential", "--out", str(tmp_path / "model")])
    assert stop.value.code in (0, None)
    assert load_model(tmp_path / "model").spec.purchase_event == "purchase"
