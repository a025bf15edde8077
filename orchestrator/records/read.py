"""Reading records back: every record under a workdir as one pyarrow dataset (partition
columns included), optionally one sweep and/or stage. pandas and DuckDB read the same files
directly (hive partitioning)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads

from orchestrator.records.schema import PARTITIONS, SCHEMA
from orchestrator.records.write import results_dir


def dataset(workdir: Path) -> pads.Dataset:
    """All records under a workdir as one pyarrow dataset (partition columns included)."""
    root = results_dir(workdir)
    files = sorted(str(p) for p in root.glob("sweep=*/stage=*/*.parquet"))
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
