"""Fuzzing ``read_event_log``: whatever the bytes or Parquet types, a valid log or a DataError."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winback.data.io import read_event_log
from winback.data.schema import CANONICAL_COLUMNS, INTERVENTIONS, EventLog
from winback.errors import DataError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALUES: dict[str, list[str]] = {
    "user_id": ["u1", "u2", "007", " u3 ", '"u,4"'],
    "timestamp": ["2024-01-01", "2024-01-01 10:00:00", "2024-01-02T08:00:00Z", "2023-12-31T23:00:00+02:00"],
    "event_type": ["view", "cart", "purchase", ""],
    "value": ["", "0", "12.5", "3"],
    "quantity": ["", "1", "2"],
    "intervention": ["", "none", "coupon", "push_new_items", "care_message"],
    "arm": ["", "a", "b"],
}
DELIMITERS = [",", ";", "\t", "|"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_valid(log: EventLog) -> None:
    """The invariants every loaded log satisfies (see :class:`EventLog`)."""
    events = log.events
    assert list(events.columns) == list(CANONICAL_COLUMNS)
    assert isinstance(events.index, pd.RangeIndex) and events.index.start == 0
    for column in ("user_id", "event_type", "arm"):
        assert events[column].dtype == "str" and not events[column].isna().any()
    assert events["timestamp"].dtype == "datetime64[ns]" and not events["timestamp"].isna().any()
    for column in ("value", "quantity"):
        values = events[column].to_numpy()
        assert values.dtype == np.float64 and np.isfinite(values).all() and (values >= 0).all()
    assert list(events["intervention"].cat.categories) == list(INTERVENTIONS)
    assert not events["intervention"].isna().any()
    assert (events["user_id"] != "").all()
    assert ((events["event_type"] != "") | (events["intervention"] != "none")).all()
    order = events.sort_values(["user_id", "timestamp"], kind="stable").index
    assert (order == events.index).all()
    report = log.report
    assert report.rows_read >= len(events) + report.duplicate_rows_dropped
    assert 0 <= report.out_of_order_rows < max(len(events), 1)
    duplicated = events.duplicated()
    if report.order_lines or report.cancelled_lines:  # a transaction log: equal sales are all sales
        duplicated &= events["event_type"] == ""
    assert not duplicated.any()


def load_or_data_error(path: Path, **options: object) -> EventLog | None:
    try:
        log = read_event_log(path, **options)
    except DataError as err:
        assert str(err)
        return None
    assert_valid(log)
    return log


@st.composite
def csv_texts(draw: st.DrawFn) -> tuple[str, list[str], list[list[str]]]:
    """A valid CSV event log with a random subset and order of columns."""
    optional = draw(st.lists(st.sampled_from(CANONICAL_COLUMNS[3:]), unique=True))
    columns = draw(st.permutations([*CANONICAL_COLUMNS[:3], *optional]))
    rows = draw(
        st.lists(
            st.fixed_dictionaries({c: st.sampled_from(VALUES[c]) for c in columns}), min_size=1, max_size=8
        )
    )
    for row in rows:
        if row["event_type"] == "" and row.get("intervention", "") in ("", "none"):
            row["event_type"] = "view"
    table = [[row[c] for c in columns] for row in rows]
    text = "".join(",".join(fields) + "\n" for fields in [columns, *table])
    return text, columns, table


MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 8)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=6)),
        st.tuples(st.just("replace"), st.floats(0, 1), st.binary(min_size=1, max_size=1)),
        st.tuples(st.just("unicode"), st.floats(0, 1), st.text(min_size=1, max_size=4)),
        st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
        st.tuples(st.just("delimiter"), st.sampled_from(DELIMITERS), st.sampled_from(DELIMITERS)),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    for kind, where, what in mutations:
        if kind == "delimiter":
            data = data.replace(where.encode(), what.encode())
            continue
        at = int(where * len(data))
        if kind == "delete":
            data = data[:at] + data[at + what :]
        elif kind == "insert":
            data = data[:at] + what + data[at:]
        elif kind == "replace":
            data = data[:at] + what + data[at + 1 :]
        elif kind == "unicode":
            data = data[:at] + what.encode("utf-8", "surrogatepass") + data[at:]
        else:
            data = data[:at]
    return data


@FUZZ
@given(csv=csv_texts(), mutations=MUTATIONS, gzipped=st.booleans())
def test_mutated_csv_loads_or_raises_data_error(
    workdir: Path, csv: tuple[str, list[str], list[list[str]]], mutations: list[tuple], gzipped: bool
) -> None:
    data = mutate(csv[0].encode(), mutations)
    path = workdir / ("mutated.csv.gz" if gzipped else "mutated.csv")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    load_or_data_error(path)


@FUZZ
@given(csv=csv_texts(), delimiter=st.sampled_from(DELIMITERS))
def test_valid_csv_loads_whatever_the_column_order(
    workdir: Path, csv: tuple[str, list[str], list[list[str]]], delimiter: str
) -> None:
    text, columns, table = csv
    path = workdir / "valid.csv"
    path.write_text(text.replace(",", delimiter) if delimiter != "," else text, encoding="utf-8")
    if delimiter != "," and any(delimiter in field or "," in field for row in table for field in row):
        return  # quoting written for ',' only
    log = load_or_data_error(path, delimiter=delimiter)
    assert log is not None
    canonical = workdir / "canonical.csv"
    order = [c for c in CANONICAL_COLUMNS if c in columns]
    rows = [[row[columns.index(c)] for c in order] for row in table]
    canonical.write_text("".join(",".join(f) + "\n" for f in [order, *rows]), encoding="utf-8")
    pd.testing.assert_frame_equal(log.events, read_event_log(canonical).events)


@FUZZ
@given(data=st.binary(max_size=200), headerless=st.booleans())
def test_arbitrary_bytes_load_or_raise_data_error(workdir: Path, data: bytes, headerless: bool) -> None:
    path = workdir / "bytes.csv"
    path.write_bytes(data)
    load_or_data_error(path, mapping="taobao" if headerless else None)


def arrow_arrays(n: int) -> st.SearchStrategy[pa.Array]:
    """Arrays of many Arrow types, valid and not, with nulls."""
    text = st.lists(
        st.one_of(st.none(), st.sampled_from(["", "u1", "view", "coupon", "2024-01-01", "-1", "x"]))
    )
    return st.one_of(
        text.map(lambda v: pa.array((v * n)[:n] or [None] * n, pa.string())),
        text.map(lambda v: pa.array((v * n)[:n] or [None] * n, pa.string()).dictionary_encode()),
        st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.int64())
        ),
        st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.float64())
        ),
        st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n).map(pa.array),
        st.builds(
            lambda values, unit, tz: pa.array(values, pa.timestamp(unit, tz=tz)),
            st.lists(st.one_of(st.none(), st.integers(-(2**52), 2**52)), min_size=n, max_size=n),
            st.sampled_from(["s", "ms", "us", "ns"]),
            st.sampled_from([None, "UTC", "Asia/Tokyo"]),
        ),
        st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.date32())
        ),
        st.just(pa.nulls(n)),
        st.just(pa.array([b"\xff"] * n, pa.binary())),
        st.just(pa.array([[1]] * n, pa.list_(pa.int64()))),
    )


@FUZZ
@given(data=st.data(), n=st.integers(1, 6))
def test_random_parquet_tables_load_or_raise_data_error(workdir: Path, data: st.DataObject, n: int) -> None:
    columns = data.draw(st.lists(st.sampled_from(CANONICAL_COLUMNS), unique=True, min_size=1))
    table = pa.table({column: data.draw(arrow_arrays(n), label=column) for column in columns})
    path = workdir / "random.parquet"
    pq.write_table(table, path)
    load_or_data_error(path)
