"""Writing records: <workdir>/results/sweep=<name>/stage=<n>/<key>.parquet (hive partitions;
`sweep` and `stage` come from the path, not the file). The file name is the content key and
each write is a temp file + rename, so a retried or resumed run overwrites instead of
duplicating, and reconciling after a crash is idempotent. A record file that does not read
as Parquet is quarantined (<workdir>/store/quarantine/) and rebuilt from the store's metadata.

A partition may also hold `compacted.parquet`, many records in one file (compact.py), with
its keys listed in `_compacted.keys` (which pyarrow and DuckDB globs skip) so that a damaged
one can be rebuilt too. A single file always wins over the compacted row of its key: it is
either a later write (a rerun) or, while compaction removes the singles it folded in, the
same record.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.records.schema import SCHEMA, row_from_meta, row_without_artifact
from stages.artifacts import atomic_write_bytes
from stages.store import Store, quarantine


class StageExecution(Protocol):
    """What reconciling needs of a plan node (orchestrator.plan.plan.Node): records stay
    below the plan and never import it."""

    @property
    def stage(self) -> int: ...

    @property
    def key(self) -> str: ...


COMPACTED = "compacted.parquet"  # a content key is 16 hex digits, so never "compacted"
COMPACTED_KEYS = "_compacted.keys"  # '_': pyarrow's discovery skips it, and it is no *.parquet
_KEY = re.compile(r"[A-Za-z0-9_-]+")


def results_dir(workdir: Path) -> Path:
    return Path(workdir) / "results"


def partition_dir(workdir: Path, sweep: str, stage: int) -> Path:
    return results_dir(workdir) / f"sweep={sweep}" / f"stage={stage}"


def record_path(workdir: Path, sweep: str, stage: int, key: str) -> Path:
    return partition_dir(workdir, sweep, stage) / f"{key}.parquet"


def single_records(folder: Path) -> list[Path]:
    """A partition's one-record files (every *.parquet but the compacted file), sorted."""
    return sorted(p for p in Path(folder).glob("*.parquet") if p.name != COMPACTED)


def write_record(workdir: Path, sweep: str, stage: int, row: dict[str, Any]) -> Path:
    """Write (or atomically replace) the record of one stage execution."""
    table = pa.Table.from_pylist([{name: row.get(name) for name in SCHEMA.names}], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = record_path(workdir, sweep, stage, row["key"])
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_committed(
    workdir: Path, sweep: str, stage: int, meta: dict[str, Any], artifact: Path | str
) -> Path:
    """The record of a committed stage execution, from its meta.json: the one way such a
    record is written (the trial, reconciling, bench/fidelity.py)."""
    return write_record(workdir, sweep, stage, row_from_meta(meta, sweep, artifact))


def write_uncommitted(
    workdir: Path,
    sweep: str,
    node: dict[str, Any],
    model: str,
    dataset: str,
    status: str,
    provenance: dict[str, Any],
    error: str | None = None,
    last: dict[str, Any] | None = None,
    error_log: str | None = None,
) -> Path:
    """The record of a stage execution that left no artifact (`failed`, or `stopped` early by
    ASHA), from its plan node (Node.to_dict()): the one way such a record is written."""
    row = row_without_artifact(node, model, dataset, status, provenance, error, last, error_log)
    return write_record(workdir, sweep, int(node["stage"]), row)


def has_record(workdir: Path, sweep: str, stage: int, key: str) -> bool:
    path = record_path(workdir, sweep, stage, key)
    return path.exists() or key in compacted_keys(workdir, path.parent)


def compacted_keys(workdir: Path, folder: Path) -> set[str]:
    """The keys a partition's compacted file holds (none without one). A damaged one is
    quarantined and its records rebuilt as single files first (heal_record)."""
    path = Path(folder) / COMPACTED
    if not path.exists():
        return set()
    if problem := record_problem(path):
        heal_record(workdir, path, problem)
        return set()
    try:
        return set(pq.read_table(path, columns=["key"])["key"].to_pylist())
    except FileNotFoundError:  # replaced by a compaction between the two looks
        return compacted_keys(workdir, folder)


def reconcile_records(
    workdir: Path, sweep: str, store: Path, nodes: Iterable[StageExecution]
) -> int:
    """Write the record of every finished node this sweep has none of (a crash between commit
    and record, or work another sweep did): idempotent, so safe at every start and end. A
    record may be a single file or a row of its partition's compacted file."""
    written = 0
    st = Store(store)
    nodes = list(nodes)
    compacted = {
        stage: compacted_keys(workdir, partition_dir(workdir, sweep, stage))
        for stage in {n.stage for n in nodes}
    }
    for node in nodes:
        path = record_path(workdir, sweep, node.stage, node.key)
        if path.exists():
            if record_problem(path) is None:
                continue
            _set_aside(path, st)
        elif node.key in compacted[node.stage]:
            continue
        meta = st.meta(node.stage, node.key)
        if meta is not None:
            folder = st.folder(node.stage, node.key)
            write_committed(workdir, sweep, node.stage, meta, folder)
            written += 1
    return written


def record_problem(path: Path) -> str | None:
    """Why a record file is not a readable record (None: it is). Reads the footer only (magic
    bytes, metadata, a `key` column, every column of SCHEMA's it has at SCHEMA's type; one of
    another type made every reader fail): cheap enough for every file at every read. Columns
    a file lacks read as null (records written before they were added)."""
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        return f"not a readable Parquet file ({' '.join(str(e).split())[:160]})"
    if "key" not in schema.names:
        return "a Parquet file without the records' `key` column"
    wrong = [
        f"{f.name} is {f.type}, not {SCHEMA.field(f.name).type}"
        for f in schema
        if f.name in SCHEMA.names and f.type != SCHEMA.field(f.name).type
    ]
    if wrong:
        more = f"; and {len(wrong) - 2} more" if len(wrong) > 2 else ""
        return f"not the records' schema ({'; '.join(wrong[:2])}{more})"
    return None


def _set_aside(path: Path, store: Store, problem: str | None = None) -> None:
    sweep, stage = path.parent.parent.name, path.parent.name
    reason = f"{path}: {problem or record_problem(path)}; it is rebuilt from the store"
    try:
        quarantine(path, reason, store.quarantine_dir, f"{sweep}-{stage}-{path.name}")
    except FileNotFoundError:
        pass  # another reader moved it first


def heal_record(workdir: Path, path: Path, problem: str | None = None) -> bool:
    """Quarantine the damaged record file `path` (under `workdir`) and rebuild it from its
    artifact's metadata, its sweep, stage and key read from the path (a compacted file: each
    key its `_compacted.keys` lists, as single files). False when the store holds no artifact
    to rebuild a record from (a failed or stopped run's: a rerun writes it again)."""
    store = Store.of_workdir(workdir)
    keys = _listed_keys(path.parent) if path.name == COMPACTED else [path.stem]
    _set_aside(path, store, problem)
    sweep = path.parent.parent.name.removeprefix("sweep=")
    stage = int(path.parent.name.removeprefix("stage="))
    whole = path.name != COMPACTED or bool(keys)  # no key list: nothing known to rebuild
    for key in keys:
        if path.name == COMPACTED and record_path(workdir, sweep, stage, key).exists():
            continue  # a later single record: it wins over the compacted row anyway
        meta = store.meta(stage, key)
        if meta is None:
            whole = False
            continue
        write_committed(workdir, sweep, stage, meta, store.folder(stage, key))
    return whole


def _listed_keys(folder: Path) -> list[str]:
    """The keys `_compacted.keys` lists (a superset of the compacted file's: it is written
    first), or none if it is missing or not such a list."""
    try:
        keys = (Path(folder) / COMPACTED_KEYS).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return []
    return keys if all(_KEY.fullmatch(k) for k in keys) else []
