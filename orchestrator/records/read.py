"""Reading records back: every record under a workdir as one pyarrow dataset (partition
columns included), optionally one sweep and/or stage; a damaged record file is healed first.
pandas and DuckDB read the same files directly (hive partitioning)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads

from orchestrator.records.schema import PARTITIONS, SCHEMA
from orchestrator.records.write import heal_record, record_problem, results_dir


def record_files(workdir: Path) -> list[Path]:
    """Every record file under a workdir, healed first: one that does not read as Parquet is
    quarantined and rebuilt from the store (write.heal_record), so a damaged record never
    stops a reader and is never silently dropped while the store can rebuild it."""
    root = results_dir(workdir)
    files = sorted(root.glob("sweep=*/stage=*/*.parquet"))
    damaged = [p for p in files if record_problem(p) is not None]
    for path in damaged:
        heal_record(workdir, path)
    return sorted(root.glob("sweep=*/stage=*/*.parquet")) if damaged else files


def dataset(workdir: Path) -> pads.Dataset:
    """All records under a workdir as one pyarrow dataset (partition columns included)."""
    root = results_dir(workdir)
    files = [str(p) for p in record_files(workdir)]
    return pads.dataset(
        files,
        schema=pa.unify_schemas([SCHEMA, PARTITIONS]),
        partitioning=pads.partitioning(PARTITIONS, flavor="hive"),
        partition_base_dir=str(root),
        format="parquet",
    )


def read_records(workdir: Path, sweep: str | None = None, stage: int | None = None) -> pa.Table:
    """Records as an Arrow table, optionally one sweep and/or stage."""
    if not results_dir(workdir).exists():
        return pa.unify_schemas([SCHEMA, PARTITIONS]).empty_table()
    expr = None
    if sweep is not None:
        expr = pads.field("sweep") == sweep
    if stage is not None:
        cond = pads.field("stage") == stage
        expr = cond if expr is None else expr & cond
    return dataset(workdir).to_table(filter=expr)
