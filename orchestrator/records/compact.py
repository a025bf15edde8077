"""Compaction: a partition's one-record files folded into one `compacted.parquet`, so that a
sweep of 10,000 stage executions is one file per (sweep, stage) for an analyst to open.

The steps are ordered so that a reader (read.py) never sees a record twice or misses one:
1. `_compacted.keys` lists every key of the new file (written atomically, first, so that it
   always covers the compacted file a damaged one would be rebuilt from);
2. the new compacted file (the old one's rows, each replaced by its single file where there
   is one, plus the other single files) replaces the old one atomically;
3. the single files folded in are removed, each only while it is still the file that was
   read: one written since (a rerun) stays, and wins.
Between 2 and 3 a key is both a single file and a compacted row, and readers take the single
(the same record); a reader that listed a single file step 3 then removed lists again.
Compaction runs under the workdir's lock (`senet run`, `senet compact`), as do the writers;
readers take none.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.records.schema import SCHEMA
from orchestrator.records.write import (
    COMPACTED,
    COMPACTED_KEYS,
    compacted_keys,
    heal_record,
    record_problem,
    results_dir,
    single_records,
)
from stages.artifacts import atomic_write_bytes

RUN_THRESHOLD = 64  # `senet run` compacts a partition from this many single files on


def compact_workdir(
    workdir: Path, sweep: str | None = None, min_singles: int = 1
) -> dict[tuple[str, int], int]:
    """Compact every partition (of `sweep`, or all) holding at least `min_singles` single
    files, or any single file beside an existing compacted file (so a rerun's record does not
    stay beside the row it replaces). Returns {(sweep, stage): single files folded in}."""
    folded = {}
    pattern = f"sweep={sweep}/stage=*" if sweep is not None else "sweep=*/stage=*"
    for folder in sorted(results_dir(workdir).glob(pattern)):
        if not folder.is_dir():
            continue
        n = compact_partition(workdir, folder, min_singles)
        if n:
            name = folder.parent.name.removeprefix("sweep=")
            folded[name, int(folder.name.removeprefix("stage="))] = n
    return folded


def compact_partition(
    workdir: Path,
    folder: Path,
    min_singles: int = 1,
    between: Callable[[], None] | None = None,
) -> int:
    """Fold one partition's single files into its compacted file; returns how many.
    Damaged files are healed first (write.heal_record). `between` runs after the new
    compacted file is in place and before the single files go (a test looks there)."""
    compacted_keys(workdir, folder)  # heals a damaged compacted file into single files
    singles = single_records(folder)
    damaged = [p for p in singles if record_problem(p) is not None and p.exists()]
    for path in damaged:
        heal_record(workdir, path)
    if damaged:
        singles = single_records(folder)
    target = folder / COMPACTED
    if not singles or (len(singles) < min_singles and not target.exists()):
        return 0
    seen = {p: _identity(p) for p in singles}  # before reading: a later write shows as changed
    merged = _merge(target, singles)
    keys = merged["key"].to_pylist()
    atomic_write_bytes(folder / COMPACTED_KEYS, "".join(f"{k}\n" for k in keys).encode())
    buf = io.BytesIO()
    pq.write_table(merged, buf)
    atomic_write_bytes(target, buf.getvalue())
    if between is not None:
        between()
    for path, identity in seen.items():
        _remove_if_unchanged(path, identity)
    return len(singles)


def _merge(target: Path, singles: list[Path]) -> pa.Table:
    """The old compacted rows whose key has no single file, and every single file's rows,
    sorted by key; columns are the records' schema plus any a newer file has (kept)."""
    fresh = pa.concat_tables(
        [SCHEMA.empty_table(), *(pq.read_table(p) for p in singles)], promote_options="default"
    )
    if not target.exists():
        return fresh.sort_by("key")
    old = pq.read_table(target)
    old = old.filter(pc.invert(pc.is_in(old["key"], value_set=fresh["key"].combine_chunks())))
    return pa.concat_tables([fresh, old], promote_options="default").sort_by("key")


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _remove_if_unchanged(path: Path, identity: tuple[int, int, int]) -> None:
    """Remove a folded-in single file unless it was replaced since it was read. It is renamed
    aside first (atomic, and no reader's glob matches the new name), so the check and the
    removal see the same file; a replacement is put back unless an even newer one is there."""
    aside = path.with_name(f".{path.name}.compacted")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _identity(aside) != identity:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink()
