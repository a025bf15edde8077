"""Query, rank, export and plot the Parquet records of finished sweeps (`senet results`).

Everything here is a plain function of rows or tables so that it can be tested without Ray
or a sweep: orchestrator/cli/results_cmd.py only parses arguments and wires these together.
Choosing models (best per budget, Pareto front) is selection.py's.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.errors import UserError
from orchestrator.records.read import read_records
from orchestrator.records.schema import PARTITIONS, SCHEMA
from orchestrator.records.write import results_dir

Row = dict[str, Any]

# Partition columns first: they name where a record comes from.
ALL_COLUMNS: tuple[str, ...] = tuple(PARTITIONS.names) + tuple(SCHEMA.names)
TABLE_COLUMNS: tuple[str, ...] = (
    "sweep",
    "stage",
    "budget",
    "relu_count",
    "val_acc",
    "test_acc",
    "tau",
    "gamma",
    "alpha",
    "beta",
    "allocation",
    "status",
    "key",
)
FINISHED = ("completed", "reused")
_TYPES: dict[str, pa.DataType] = {f.name: f.type for f in pa.unify_schemas([SCHEMA, PARTITIONS])}


# --- loading ---------------------------------------------------------------------------


def load(workdir: Path, sweep: str | None = None, stage: int | None = None) -> pa.Table:
    """The records of a workdir; a missing results folder means the user pointed at the
    wrong place (or ran nothing yet), which an empty table would hide."""
    if not results_dir(workdir).is_dir():
        raise UserError(
            f"no records under {Path(workdir) / 'results'}; run `senet run SWEEP` first"
        )
    return read_records(workdir, sweep=sweep, stage=stage)


def sweeps_present(workdir: Path) -> list[str]:
    """Sweep names that have records, from the partition folders (no Parquet read)."""
    return sorted(p.name.removeprefix("sweep=") for p in results_dir(workdir).glob("sweep=*"))


# --- --where ---------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<col>[A-Za-z_]\w*)\s*(?P<op>==|!=|<=|>=|=|<|>)\s*"""
    r"""(?P<val>"[^"]*"|'[^']*'|[^\s"'=<>!]+)\s*"""
)
_AND = re.compile(r"and(?:\s+|$)", re.IGNORECASE)
_SPLIT_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def parse_where(text: str, columns: Sequence[str] = ALL_COLUMNS) -> pc.Expression:
    """`budget<=50000 and status=completed` as a pyarrow expression (no eval: each clause is
    COLUMN OP VALUE, matched by a regular expression, and the value converted to the
    column's type, so `tau>2` compares numbers and `key=0123` compares strings)."""
    expr: pc.Expression | None = None
    pos = 0
    while True:
        m = _CLAUSE.match(text, pos)
        if m is None:
            _malformed(text, pos)
        clause = _clause(m["col"], m["op"], _unquote(m["val"]), m.group(0).strip(), columns)
        expr = clause if expr is None else expr & clause
        pos = m.end()
        if pos == len(text):
            return expr
        joined = _AND.match(text, pos)
        if joined is None or not text[pos - 1].isspace():
            _malformed(text, pos)
        pos = joined.end()


def _malformed(text: str, pos: int) -> None:
    rest = text[pos:].strip()
    if not rest:
        raise UserError(f"--where {text!r} is empty or ends with 'and'")
    bad = _SPLIT_AND.split(rest, maxsplit=1)[0].strip()
    raise UserError(
        f"malformed --where clause {bad!r}: expected COLUMN OP VALUE with OP one of "
        "= == != < <= > >=, clauses joined by 'and'"
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _clause(col: str, op: str, value: str, clause: str, columns: Sequence[str]) -> pc.Expression:
    if col not in columns:
        raise UserError(f"unknown column {col!r} in --where; valid columns: {', '.join(columns)}")
    typed = _typed(col, value, clause)
    field = pc.field(col)
    if op in ("=", "=="):
        return field == typed
    if op == "!=":
        return field != typed
    if op == "<":
        return field < typed
    if op == "<=":
        return field <= typed
    if op == ">":
        return field > typed
    return field >= typed


def _typed(col: str, value: str, clause: str) -> Any:
    """The clause's value in the column's type: comparing an int64 with the string
    "50000" would fail inside Arrow with a message about kernels, not about the user."""
    kind = _TYPES[col]
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        number = _number(value)
        if number is None:
            raise UserError(f"--where {clause!r}: {col} is numeric and {value!r} is not a number")
        return _in_range(col, kind, number, clause)
    if pa.types.is_timestamp(kind):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise UserError(
                f"--where {clause!r}: {col} is a time; write it as ISO, e.g. 2025-01-31T12:00"
            ) from None
        return pa.scalar(when if when.tzinfo else when.replace(tzinfo=dt.UTC), kind)
    if pa.types.is_list(kind):
        raise UserError(f"--where {clause!r}: {col} is a list column and cannot be compared")
    return value


def _in_range(col: str, kind: pa.DataType, number: int | float, clause: str) -> int | float:
    """A number Arrow can hold in `col`'s type: an int64 cannot take 10**27, nor a float64
    10**400, and Arrow's own error would name neither the clause nor the column."""
    if isinstance(number, int) and pa.types.is_integer(kind):
        bits = kind.bit_width
        low, high = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if pa.types.is_signed_integer(kind)
            else (0, 2**bits - 1)
        )
        if not low <= number <= high:
            raise UserError(f"--where {clause!r}: {number} is out of {col}'s range [{low}, {high}]")
        return number
    try:
        return float(number) if isinstance(number, int) else number
    except OverflowError:
        raise UserError(f"--where {clause!r}: {number} is too large for {col}") from None


def _number(value: str) -> int | float | None:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def filter_table(table: pa.Table, where: str | None) -> pa.Table:
    """Rows matching `--where`; a null never matches (SQL semantics)."""
    if not where:
        return table
    return table.filter(parse_where(where, table.column_names))


def finished(table: pa.Table) -> pa.Table:
    """Records of models that exist and were scored: the only ones worth ranking."""
    mask = pc.and_(
        pc.is_in(table["status"], pa.array(FINISHED)),
        pc.and_(pc.is_valid(table["val_acc"]), pc.is_valid(table["relu_count"])),
    )
    return table.filter(mask)


# --- output ----------------------------------------------------------------------------


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    """Stable reading order: by sweep, stage, budget, ReLU count, key (missing last)."""

    def key(r: Row) -> tuple:
        return tuple(
            (r.get(c) is None, r.get(c) if r.get(c) is not None else 0)
            for c in ("sweep", "stage", "budget", "relu_count", "key")
        )

    return sorted(rows, key=key)


def parse_columns(text: str | None, default: Sequence[str]) -> list[str]:
    """`--columns a,b,c`, checked against the known columns."""
    if text is None:
        return list(default)
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise UserError("--columns is empty; give names separated by commas, e.g. budget,val_acc")
    unknown = [c for c in cols if c not in ALL_COLUMNS]
    if unknown:
        raise UserError(
            f"unknown column {unknown[0]!r} in --columns; valid columns: {', '.join(ALL_COLUMNS)}"
        )
    return cols


def _plain(v: Any) -> Any:
    """A JSON-ready value: ISO timestamps, no NaN (invalid JSON)."""
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _cell(col: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if col.endswith("_acc") else f"{v:g}"
    if isinstance(v, dt.datetime):
        return v.isoformat(timespec="seconds")
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def format_table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """Aligned text: numbers right, text left, '-' for missing."""
    cells = [[_cell(c, r.get(c)) for c in columns] for r in rows]
    numeric = [pa.types.is_integer(_TYPES[c]) or pa.types.is_floating(_TYPES[c]) for c in columns]
    widths = [max([len(c)] + [len(line[j]) for line in cells]) for j, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns)] + [line(c) for c in cells])


def format_csv(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """Header + rows; lists as JSON arrays, timestamps ISO, missing values empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        out = []
        for c in columns:
            v = _plain(r.get(c))
            out.append("" if v is None else json.dumps(v) if isinstance(v, list) else v)
        writer.writerow(out)
    return buf.getvalue()


def format_json(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """A list of objects, one per record."""
    return json.dumps([{c: _plain(r.get(c)) for c in columns} for r in rows], indent=2)


def render(rows: Sequence[Row], columns: Sequence[str], fmt: str) -> str:
    """The text `senet results` prints for one of table | csv | json."""
    if fmt == "table":
        return f"{format_table(rows, columns)}\n\n{len(rows)} record{'s' * (len(rows) != 1)}\n"
    if fmt == "csv":
        return format_csv(rows, columns)
    return format_json(rows, columns) + "\n"
