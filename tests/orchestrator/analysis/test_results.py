"""Querying records: `--where` parsed into typed pyarrow expressions, no eval; one-line
errors that quote the bad clause."""

from __future__ import annotations

import pyarrow as pa
import pytest
from support import T0

from orchestrator.analysis import results as R
from orchestrator.errors import UserError


def _table() -> pa.Table:
    rows = [
        {"sweep": "a", "budget": 20000, "tau": 2.0, "status": "completed", "key": "0123"},
        {"sweep": "a", "budget": 50000, "tau": 4.0, "status": "failed", "key": "k2"},
        {"sweep": "b", "budget": 90000, "tau": 8.0, "status": "completed", "key": "k3"},
        {"sweep": "b", "budget": None, "tau": None, "status": "completed", "key": "k4"},
    ]
    schema = pa.schema([(n, R._TYPES[n]) for n in rows[0]])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.parametrize(
    ("where", "keys"),
    [
        ("budget<=50000", ["0123", "k2"]),
        ("budget < 50000", ["0123"]),
        ("tau>2", ["k2", "k3"]),
        ("tau>=2.0", ["0123", "k2", "k3"]),
        ("status=completed", ["0123", "k3", "k4"]),
        ('status=="failed"', ["k2"]),
        ("sweep!='a'", ["k3", "k4"]),
        ("budget<=50000 and status=completed", ["0123"]),
        ("budget>1 AND tau<8 and sweep=a", ["0123", "k2"]),
        ("key=0123", ["0123"]),  # a string column compares strings: no 123 == 0123
        ("budget=50000.0", ["k2"]),
    ],
)
def test_where_filters(where: str, keys: list[str]) -> None:
    assert R.filter_table(_table(), where)["key"].to_pylist() == keys


def test_where_unknown_column_is_one_line_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(UserError) as e:
        R.parse_where("budget<5 and bugdet>3")
    msg = str(e.value)
    assert "'bugdet'" in msg and "valid columns:" in msg and "val_acc" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("where", "quoted"),
    [
        ("budget<<5", "'budget<<5'"),
        ("tau>2 and budget", "'budget'"),
        ("tau>2 or tau<1", "'or tau<1'"),
        ("tau 2", "'tau 2'"),
        ("tau>2 and", "ends with 'and'"),
        ("", "empty"),
        ("budget<=abc", "not a number"),
        ("relu_per_layer=3", "list column"),
        ("started_at>yesterday", "ISO"),
    ],
)
def test_where_malformed_clause_is_quoted(where: str, quoted: str) -> None:
    with pytest.raises(UserError, match="--where") as e:
        R.parse_where(where)
    assert quoted in str(e.value) and "\n" not in str(e.value)


def test_where_compares_timestamps() -> None:
    rows = [{"key": "old", "started_at": T0}, {"key": "new", "started_at": T0.replace(day=9)}]
    schema = pa.schema([("key", pa.string()), ("started_at", R._TYPES["started_at"])])
    table = pa.Table.from_pylist(rows, schema=schema)
    assert R.filter_table(table, "started_at>=2025-03-05")["key"].to_pylist() == ["new"]
