"""Fuzzing the transaction and contacts readers against a plain-Python reference: random small tables
read into a valid log whose purchases match the reference, or raise a DataError exactly when the
reference finds the table invalid; mutated bytes give a valid log or a DataError, nothing else."""

from __future__ import annotations

import dataclasses
import gzip
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_data_fuzz import FUZZ, MUTATIONS, assert_valid, mutate

from winback.data.io import _net_of_cancellations, read_event_log
from winback.data.mapping import CANCELLATION_EVENT, PRESETS, ColumnMapping, ContactsFile, TransactionRules
from winback.data.schema import CONTACTS, EventLog
from winback.errors import DataError

BAD = object()
"""A value the reader must reject."""
USERS = ["u1", "u2", " u1 ", "7", ""]
ORDERS = ["A1", "A2", " A1", "A3", "C1"]
TIMES: dict[str, object] = {
    "2024-01-01": pd.Timestamp("2024-01-01"),
    "2024-01-01 10:00:00": pd.Timestamp("2024-01-01 10:00"),
    "2024-01-02T08:00:00": pd.Timestamp("2024-01-02 08:00"),
    "2024-01-03": pd.Timestamp("2024-01-03"),
    "soon": BAD,
    "": BAD,
}
QUANTITIES: dict[str, object] = {
    "1": 1.0,
    "2": 2.0,
    "0": 0.0,
    "-1": -1.0,
    "-0": -0.0,
    "2.5": 2.5,
    " 3 ": 3.0,
    "x": BAD,
    "": BAD,
}
PRICES: dict[str, object] = {
    "1": 1.0,
    "0.5": 0.5,
    "0": 0.0,
    "3.25": 3.25,
    "-2": BAD,
    "abc": BAD,
    "": BAD,
    "1e308": 1e308,
}
RENAMES = {"email_promo": "push_new_items", "voucher": "coupon"}
KINDS = ["email_promo", "voucher", "care_message", "coupon"]
LINE_FIELDS = ("Invoice", "Quantity", "InvoiceDate", "Price", "Customer ID")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes-fuzz")


def write_table(path: Path, header: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    path.write_text(
        "".join(",".join(line) + "\n" for line in [header, *([r[c] for c in header] for r in rows)])
    )
    return path


def read_or_none(path: Path, mapping: ColumnMapping) -> EventLog | None:
    try:
        log = read_event_log(path, mapping=mapping)
    except DataError as err:
        assert str(err)
        return None
    assert_valid(log)
    return log


@dataclasses.dataclass
class Order:
    user: str
    cancel: bool
    time: pd.Timestamp
    value: float = 0.0
    quantity: float = 0.0


def reference(
    rows: list[dict[str, str]], mode: str, prefix: str | None, header: tuple[str, ...]
) -> dict | None:
    """What reading should give, computed line by line; ``None`` where the reader must fail."""
    orders: dict[tuple, Order] = {}
    without_user = lines = cancelled_lines = 0
    cancelled_value = total = 0.0
    for index, row in enumerate(rows):
        if all(row[c] == "" for c in header):
            continue  # a blank row
        user = row["Customer ID"].strip()
        if not user:
            without_user += 1
            continue
        order_id = row["Invoice"].strip() if "Invoice" in header else ""
        time, quantity, price = TIMES[row["InvoiceDate"]], QUANTITIES[row["Quantity"]], PRICES[row["Price"]]
        if BAD in (time, quantity, price) or ("Invoice" in header and not order_id):
            return None
        amount = quantity * price
        if abs(amount) == float("inf"):
            return None
        cancel = amount < 0 or quantity < 0 or (prefix is not None and order_id.startswith(prefix))
        key = (user, order_id if "Invoice" in header else index, cancel)
        order = orders.setdefault(key, Order(user, cancel, time))
        order.time = min(order.time, time)
        order.value += abs(amount)
        order.quantity += abs(quantity)
        lines += not cancel
        cancelled_lines += cancel
        cancelled_value += abs(amount) if cancel else 0.0
        total += abs(amount)
    if total == float("inf"):
        return None  # every sum the reader forms (an order's, the cancelled value) stays finite
    if not orders or (mode != "event" and all(order.cancel for order in orders.values())):
        return None
    unmatched = net_by_stack(list(orders.values())) if mode == "net" else 0.0
    kept = [o for o in orders.values() if mode == "event" or not o.cancel]
    events = sorted(kept, key=lambda o: (o.user, o.time))  # stable: ties in order of first line
    return {
        "events": [
            (o.user, o.time, CANCELLATION_EVENT if o.cancel else "purchase", o.value, o.quantity)
            for o in events
        ],
        "rows_without_user": without_user,
        "order_lines": lines,
        "orders": sum(not o.cancel for o in orders.values()),
        "cancelled_lines": cancelled_lines,
        "cancelled_orders": sum(o.cancel for o in orders.values()),
        "cancelled_value": cancelled_value,
        "cancelled_value_unmatched": unmatched,
    }


def net_by_stack(orders: list[Order]) -> float:
    """Take each cancellation off the same user's earlier purchases, most recent first, in place;
    return the cancelled value left over."""
    by_user: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        by_user[order.user].append(order)
    unmatched = 0.0
    for history in by_user.values():
        stack: list[Order] = []
        for order in sorted(history, key=lambda o: (o.time, o.cancel)):
            if not order.cancel:
                stack.append(order)
                continue
            left = order.value
            while left > 0 and stack:
                taken = min(left, stack[-1].value)
                stack[-1].value -= taken
                left -= taken
                if stack[-1].value <= 0:
                    stack.pop()
            unmatched += left
    return unmatched


def assert_matches(log: EventLog, expected: dict) -> None:
    events = log.events
    got = list(zip(events["user_id"], events["timestamp"], events["event_type"], strict=True))
    assert got == [(user, time, kind) for user, time, kind, _, _ in expected["events"]]
    assert events["value"].tolist() == pytest.approx([e[3] for e in expected["events"]], rel=1e-9, abs=1e-9)
    assert events["quantity"].tolist() == pytest.approx([e[4] for e in expected["events"]], rel=1e-9)
    report = dataclasses.asdict(log.report)
    figures = {key: value for key, value in expected.items() if key != "events"}
    assert {key: report[key] for key in figures} == pytest.approx(figures, rel=1e-9, abs=1e-9)


def values(pool: dict[str, object], bad: bool, rare: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Texts of ``pool``: valid ones only, or ten times as likely as bad or ``rare`` ones."""
    good = [text for text, value in pool.items() if value is not BAD and text not in rare]
    return st.sampled_from(good * 10 + [text for text in pool if text not in good] if bad else good)


def lines(bad: bool) -> st.SearchStrategy[list[dict[str, str]]]:
    """Order lines of Online Retail II's columns, with bad values (and a missing order id) if ``bad``."""
    line = {
        "Invoice": st.sampled_from(ORDERS * 5 + [""] if bad else ORDERS),
        "Quantity": values(QUANTITIES, bad),
        "InvoiceDate": values(TIMES, bad),
        "Price": values(PRICES, bad, rare=("1e308",)),
        "Customer ID": st.sampled_from(USERS if bad else USERS[:3]),  # long histories to net
    }
    return st.lists(st.fixed_dictionaries(line), min_size=1, max_size=10)


LINES = lines(bad=True)


@FUZZ
@given(
    rows=LINES,
    mode=st.sampled_from(["drop", "net", "event"]),
    prefix=st.sampled_from(["C", None]),
    with_order=st.booleans(),
)
def test_transaction_logs_raise_data_error_exactly_when_the_reference_finds_them_invalid(
    workdir: Path, rows: list[dict[str, str]], mode: str, prefix: str | None, with_order: bool
) -> None:
    check_against_reference(workdir, rows, mode, prefix, with_order)


@FUZZ
@given(rows=lines(bad=False), mode=st.sampled_from(["drop", "net", "event"]), with_order=st.booleans())
def test_valid_transaction_logs_match_a_line_by_line_reference(
    workdir: Path, rows: list[dict[str, str]], mode: str, with_order: bool
) -> None:
    check_against_reference(workdir, rows, mode, "C", with_order)


def check_against_reference(
    workdir: Path, rows: list[dict[str, str]], mode: str, prefix: str | None, with_order: bool
) -> None:
    header = LINE_FIELDS if with_order else LINE_FIELDS[1:]
    prefix = prefix if with_order else None
    mapping = dataclasses.replace(PRESETS["online-retail"], transactions=TransactionRules(mode, prefix))
    log = read_or_none(write_table(workdir / "lines.csv", header, rows), mapping)
    expected = reference(rows, mode, prefix, header)
    assert (log is None) == (expected is None)
    if log is not None:
        assert_matches(log, expected)


@FUZZ
@given(rows=LINES, mutations=MUTATIONS, gzipped=st.booleans(), mode=st.sampled_from(["drop", "net", "event"]))
def test_mutated_transaction_logs_load_or_raise_data_error(
    workdir: Path, rows: list[dict[str, str]], mutations: list[tuple], gzipped: bool, mode: str
) -> None:
    data = mutate(write_table(workdir / "clean.csv", LINE_FIELDS, rows).read_bytes(), mutations)
    path = workdir / ("mutated.csv.gz" if gzipped else "mutated.csv")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    mapping = dataclasses.replace(PRESETS["online-retail"], transactions=TransactionRules(mode, "C"))
    read_or_none(path, mapping)


CONTACT_FIELDS = ("customer", "sent_at", "campaign_type", "variant")
CONTACT_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "customer": st.sampled_from(["u1", "u2", " u2 ", "u9", ""]),
            "sent_at": values(TIMES, bad=True),
            "campaign_type": st.sampled_from(KINDS * 5 + ["sms", ""]),
            "variant": st.sampled_from(["", "A", "B"]),
        }
    ),
    min_size=1,
    max_size=8,
)


def contacts_reference(rows: list[dict[str, str]], unknown_users: str) -> dict | None:
    """The contact rows reading should merge, and its counts; ``None`` where the reader must fail."""
    read = [row for row in rows if any(row[c] != "" for c in CONTACT_FIELDS)]
    merged = []
    for row in read:
        user, time = row["customer"].strip(), TIMES[row["sent_at"]]
        kind = RENAMES.get(row["campaign_type"], row["campaign_type"])
        if not user or time is BAD or kind not in CONTACTS:
            return None
        if user in ("u1", "u2") or unknown_users == "keep":
            merged.append((user, time, kind, row["variant"]))
    if not read:
        return None
    return {
        "contacts": sorted(set(merged)),
        "contact_rows": len(read),
        "contacts_of_unknown_users": sum(row["customer"].strip() not in ("u1", "u2") for row in read),
        "duplicate_rows_dropped": len(merged) - len(set(merged)),
    }


@FUZZ
@given(
    rows=CONTACT_ROWS,
    unknown_users=st.sampled_from(["drop", "keep"]),
    shape=st.sampled_from(["events", "transactions"]),
)
def test_contacts_files_match_a_row_by_row_reference_or_raise_data_error(
    workdir: Path, rows: list[dict[str, str]], unknown_users: str, shape: str
) -> None:
    crm = write_table(workdir / "crm.csv", CONTACT_FIELDS, rows)
    contacts = ContactsFile(
        path=crm,
        columns={"user_id": "customer", "timestamp": "sent_at", "kind": "campaign_type", "arm": "variant"},
        kind_renames=RENAMES,
        unknown_users=unknown_users,
    )
    main = workdir / "main.csv"
    if shape == "events":
        main.write_text("user_id,timestamp,event_type\nu1,2024-01-02,view\nu2,2024-01-02,purchase\n")
        mapping = ColumnMapping(contacts=contacts)
    else:
        main.write_text("c,t,value\nu1,2024-01-02,3\nu2,2024-01-02,4\nu2,2024-01-02,4\n")
        mapping = ColumnMapping(
            shape="transactions", columns={"user_id": "c", "timestamp": "t"}, contacts=contacts
        )
    log = read_or_none(main, mapping)
    expected = contacts_reference(rows, unknown_users)
    assert (log is None) == (expected is None)
    if log is None:
        return
    events = log.events
    only = events[events["event_type"] == ""]
    got = list(
        zip(only["user_id"], only["timestamp"], only["intervention"].astype(str), only["arm"], strict=True)
    )
    assert sorted(got) == expected.pop("contacts")
    assert len(events) - len(only) == (2 if shape == "events" else 3)
    report = dataclasses.asdict(log.report)
    assert {key: report[key] for key in expected} == expected


@FUZZ
@given(
    orders=st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", "u3"]),
            st.integers(0, 4),
            st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.0, 0.1, 0.2]),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_netting_takes_cancellations_off_a_stack_of_each_users_purchases(
    orders: list[tuple[str, int, float, bool]],
) -> None:
    codes = {"u1": 0, "u2": 1, "u3": 2}
    net, unmatched = _net_of_cancellations(
        np.array([codes[user] for user, _, _, _ in orders]),
        np.array([time for _, time, _, _ in orders], dtype=np.int64),
        np.array([value for _, _, value, _ in orders]),
        np.array([cancel for _, _, _, cancel in orders]),
    )
    expected = [
        Order(user, cancel, pd.Timestamp(time, unit="D"), value) for user, time, value, cancel in orders
    ]
    expected_unmatched = net_by_stack(expected)
    assert net.tolist() == pytest.approx([0.0 if o.cancel else o.value for o in expected], abs=1e-12)
    assert unmatched == pytest.approx(expected_unmatched, abs=1e-12)
    assert (net >= 0).all()
