"""Writing records: <workdir>/results/sweep=<name>/stage=<n>/<key>.parquet (hive partitions;
`sweep` and `stage` come from the path, not the file). The file name is the content key and
each write is a temp file + rename, so a retried or resumed run overwrites instead of
duplicating, and reconciling after a crash is idempotent.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.records.schema import SCHEMA, row_from_meta
from stages.artifacts import artifact_dir, atomic_write_bytes, read_meta


class StageExecution(Protocol):
    """What reconciling needs of a plan node (orchestrator.plan.plan.Node): records stay
    below the plan and never import it."""

    @property
    def stage(self) -> int: ...

    @property
    def key(self) -> str: ...


def results_dir(workdir: Path) -> Path:
    return Path(workdir) / "results"


def record_path(workdir: Path, sweep: str, stage: int, key: str) -> Path:
    return results_dir(workdir) / f"sweep={sweep}" / f"stage={stage}" / f"{key}.parquet"


def write_record(workdir: Path, sweep: str, stage: int, row: dict[str, Any]) -> Path:
    """Write (or atomically replace) the record of one stage execution."""
    table = pa.Table.from_pylist([{name: row.get(name) for name in SCHEMA.names}], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = record_path(workdir, sweep, stage, row["key"])
    atomic_write_bytes(path, buf.getvalue())
    return path


def has_record(workdir: Path, sweep: str, stage: int, key: str) -> bool:
    return record_path(workdir, sweep, stage, key).exists()


def reconcile_records(
    workdir: Path, sweep: str, store: Path, nodes: Iterable[StageExecution]
) -> int:
    """Write the record of every finished node this sweep has none of (a crash between commit
    and record, or work another sweep did): idempotent, so safe at every start and end."""
    written = 0
    for node in nodes:
        if has_record(workdir, sweep, node.stage, node.key):
            continue
        folder = artifact_dir(store, node.stage, node.key)
        meta = read_meta(folder)
        if meta is not None:
            write_record(workdir, sweep, node.stage, row_from_meta(meta, sweep, folder))
            written += 1
    return written
