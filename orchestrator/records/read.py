"""Reading records back: every record under a workdir as one Arrow table (partition columns
included), optionally one sweep and/or stage; a damaged record file is healed first.
pandas and DuckDB read the same files directly (hive partitioning).

A partition holds single-record files and maybe one compacted file (compact.py). Each key is
read once: a single file wins over the compacted row of its key (a rerun's record, or the
same record while compaction removes the singles it folded in), and a single file that
vanishes between listing and reading (compaction removed it) makes the reader list again.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from orchestrator.records.schema import PARTITIONS, SCHEMA
from orchestrator.records.write import COMPACTED, heal_record, record_problem, results_dir

FULL = pa.unify_schemas([SCHEMA, PARTITIONS])
ATTEMPTS = 20  # listings a read may take; each retry means a compaction made progress


def record_files(workdir: Path) -> list[Path]:
    """Every record file under a workdir (single and compacted), healed first: one that does
    not read as Parquet is quarantined and rebuilt from the store (write.heal_record), so a
    damaged record never stops a reader and is never silently dropped while the store can
    rebuild it. A file that vanished meanwhile (compacted) is not damage."""
    root = results_dir(workdir)
    files = sorted(root.glob("sweep=*/stage=*/*.parquet"))
    damaged = [p for p in files if record_problem(p) is not None and p.exists()]
    for path in damaged:
        heal_record(workdir, path)
    return sorted(root.glob("sweep=*/stage=*/*.parquet")) if damaged else files


def dataset(workdir: Path) -> pads.Dataset:
    """All records under a workdir as one pyarrow dataset (partition columns included)."""
    return pads.dataset(read_records(workdir))


def read_records(workdir: Path, sweep: str | None = None, stage: int | None = None) -> pa.Table:
    """Records as an Arrow table sorted by (sweep, stage, key), each key once, optionally
    one sweep and/or stage."""
    if not results_dir(workdir).exists():
        return FULL.empty_table()
    for attempt in range(ATTEMPTS):
        files = [p for p in record_files(workdir) if _wanted(p, sweep, stage)]
        try:
            return _read(results_dir(workdir), files)
        except OSError:
            if attempt == ATTEMPTS - 1 or all(p.exists() for p in files):
                raise
    raise AssertionError("unreachable")


def _wanted(path: Path, sweep: str | None, stage: int | None) -> bool:
    return (sweep is None or path.parent.parent.name == f"sweep={sweep}") and (
        stage is None or path.parent.name == f"stage={stage}"
    )


def _read(root: Path, files: list[Path]) -> pa.Table:
    singles = [p for p in files if p.name != COMPACTED]
    compacted = [p for p in files if p.name == COMPACTED]
    table = _table(root, singles)
    if compacted:
        rows = _table(root, compacted)
        covered = pa.array([_where(p.parent, p.stem) for p in singles], pa.string())
        where = pc.binary_join_element_wise(
            rows["sweep"], pc.cast(rows["stage"], pa.string()), rows["key"], "/"
        )
        table = pa.concat_tables([table, rows.filter(pc.invert(pc.is_in(where, covered)))])
    return table.sort_by([("sweep", "ascending"), ("stage", "ascending"), ("key", "ascending")])


def _where(folder: Path, key: str) -> str:
    """`sweep/stage/key`: what names a record across partitions."""
    sweep = folder.parent.name.removeprefix("sweep=")
    return f"{sweep}/{folder.name.removeprefix('stage=')}/{key}"


def _table(root: Path, files: list[Path]) -> pa.Table:
    return pads.dataset(
        [str(p) for p in files],
        schema=FULL,
        partitioning=pads.partitioning(PARTITIONS, flavor="hive"),
        partition_base_dir=str(root),
        format="parquet",
    ).to_table()
