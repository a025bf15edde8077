"""Writing records: reconciling after a crash writes exactly the missing records of finished
work, marks another sweep's work `reused`, and rewrites nothing on a second pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.records.read import read_records
from orchestrator.records.write import reconcile_records, record_path
from stages.artifacts import artifact_dir, save_artifact


@dataclass(frozen=True)
class _Node:
    stage: int
    key: str


def _commit(store: Path, stage: int, key: str, sweep: str) -> None:
    meta = {"key": key, "model": "resnet20", "dataset": "digits", "budget": 3000, "val_acc": 0.5}
    save_artifact(artifact_dir(store, stage, key), {}, meta | {"provenance": {"sweep": sweep}})


def test_reconcile_writes_missing_records_once(tmp_path: Path) -> None:
    work, store = tmp_path / "work", tmp_path / "work" / "store"
    _commit(store, 2, "mine", sweep="s")
    _commit(store, 3, "theirs", sweep="other")  # computed by another sweep
    nodes = [_Node(2, "mine"), _Node(3, "theirs"), _Node(3, "unfinished")]
    assert reconcile_records(work, "s", store, nodes) == 2
    rows = {r["key"]: r for r in read_records(work, sweep="s").to_pylist()}
    assert set(rows) == {"mine", "theirs"}
    assert (rows["mine"]["status"], rows["theirs"]["status"]) == ("completed", "reused")
    assert rows["theirs"]["stage"] == 3 and rows["mine"]["val_acc"] == 0.5
    before = record_path(work, "s", 2, "mine").stat().st_mtime_ns
    assert reconcile_records(work, "s", store, nodes) == 0  # idempotent: nothing rewritten
    assert record_path(work, "s", 2, "mine").stat().st_mtime_ns == before


def test_reconcile_rewrites_a_garbage_record(tmp_path: Path) -> None:
    """A record that does not read as Parquet is quarantined and rewritten, not skipped
    because a file of that name exists."""
    work, store = tmp_path / "work", tmp_path / "work" / "store"
    _commit(store, 2, "mine", sweep="s")
    reconcile_records(work, "s", store, [_Node(2, "mine")])
    path = record_path(work, "s", 2, "mine")
    path.write_bytes(path.read_bytes()[:-20])  # torn: the footer is gone
    assert reconcile_records(work, "s", store, [_Node(2, "mine")]) == 1
    assert read_records(work, sweep="s")["key"].to_pylist() == ["mine"]
    [kept] = (store / "quarantine").iterdir()
    assert kept.name.startswith("sweep=s-stage=2-mine.parquet.")
