"""Compaction: one file per (sweep, stage) that reads exactly as the single files did, at every
moment (in the window between its two steps, and under a reader looping in another thread);
a rerun's later record wins over the compacted row; a damaged compacted file is quarantined
and rebuilt from the store. Real Parquet files, read back by pyarrow, pandas and DuckDB."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support import write_test_record

from orchestrator.cli.main import main
from orchestrator.records.compact import compact_partition, compact_workdir
from orchestrator.records.read import read_records
from orchestrator.records.write import (
    COMPACTED,
    COMPACTED_KEYS,
    has_record,
    partition_dir,
    reconcile_records,
    record_path,
    results_dir,
)
from stages.artifacts import save_artifact
from stages.store import Store

DEDUPED = """
SELECT * EXCLUDE (filename) FROM read_parquet('{glob}', hive_partitioning = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY sweep, stage, key
                           ORDER BY filename LIKE '%/compacted.parquet') = 1
"""


@dataclass(frozen=True)
class _Node:
    stage: int
    key: str


def _records(work: Path, n: int = 12) -> None:
    for i in range(n):
        write_test_record(work, "a", 3, f"k{i:03d}", val_acc=i / 100, budget=1000 * i)
    write_test_record(work, "a", 1, "t0")
    write_test_record(work, "b", 3, "other")


def _glob(work: Path) -> str:
    return str(results_dir(work) / "**" / "*.parquet")


def _keys(work: Path) -> Counter[tuple[str, int, str]]:
    table = read_records(work)
    return Counter(
        zip(table["sweep"].to_pylist(), table["stage"].to_pylist(), table["key"].to_pylist())
    )


def test_one_file_per_sweep_and_stage_reads_as_the_single_files_did(tmp_path: Path) -> None:
    _records(tmp_path)
    before = read_records(tmp_path)
    assert compact_workdir(tmp_path) == {("a", 1): 1, ("a", 3): 12, ("b", 3): 1}
    for sweep, stage in (("a", 1), ("a", 3), ("b", 3)):
        names = sorted(p.name for p in partition_dir(tmp_path, sweep, stage).iterdir())
        assert names == [COMPACTED_KEYS, COMPACTED]
    assert read_records(tmp_path).equals(before)
    assert read_records(tmp_path, sweep="a", stage=3)["key"].to_pylist() == [
        f"k{i:03d}" for i in range(12)
    ]
    con = duckdb.connect()
    plain = con.execute(
        f"SELECT count(*), count(DISTINCT key) FROM read_parquet('{_glob(tmp_path)}', "
        "hive_partitioning = true) WHERE stage = 3"
    ).fetchone()
    assert plain == (13, 13)
    assert len(pd.read_parquet(results_dir(tmp_path))) == 14  # pandas skips _compacted.keys
    assert compact_workdir(tmp_path) == {}  # nothing new: no file rewritten


def test_a_later_write_wins_over_the_compacted_row_and_is_folded_in_next(tmp_path: Path) -> None:
    _records(tmp_path)
    compact_workdir(tmp_path)
    write_test_record(tmp_path, "a", 3, "k005", val_acc=0.99, status="completed")  # a rerun
    rows = {r["key"]: r for r in read_records(tmp_path, sweep="a", stage=3).to_pylist()}
    assert len(rows) == 12 and rows["k005"]["val_acc"] == 0.99
    # The README's de-duplicating DuckDB query agrees while both files exist.
    got = (
        duckdb.connect()
        .execute(
            f"SELECT key, val_acc FROM ({DEDUPED.format(glob=_glob(tmp_path))}) WHERE stage = 3 AND sweep = 'a'"
        )
        .fetchall()
    )
    assert len(got) == 12 and dict(got)["k005"] == 0.99
    assert compact_workdir(tmp_path) == {("a", 3): 1}
    assert not record_path(tmp_path, "a", 3, "k005").exists()
    rows = {r["key"]: r for r in read_records(tmp_path, sweep="a", stage=3).to_pylist()}
    assert len(rows) == 12 and rows["k005"]["val_acc"] == 0.99


def test_in_the_window_between_the_steps_each_key_reads_once(tmp_path: Path) -> None:
    _records(tmp_path)
    folder = partition_dir(tmp_path, "a", 3)
    seen: list[Counter[tuple[str, int, str]]] = []

    def look() -> None:  # the new compacted file is in place, the single files still there
        assert (folder / COMPACTED).exists() and len(list(folder.glob("k*.parquet"))) == 12
        seen.append(_keys(tmp_path))

    assert compact_partition(tmp_path, folder, between=look) == 12
    assert len(seen) == 1 and set(seen[0].values()) == {1} and len(seen[0]) == 14


def test_a_record_rewritten_while_compacting_survives_and_wins(tmp_path: Path) -> None:
    _records(tmp_path)
    folder = partition_dir(tmp_path, "a", 3)

    def rerun() -> None:
        write_test_record(tmp_path, "a", 3, "k007", val_acc=0.77)

    compact_partition(tmp_path, folder, between=rerun)
    assert [p.name for p in folder.glob("k*.parquet")] == ["k007.parquet"]
    rows = {r["key"]: r for r in read_records(tmp_path, sweep="a", stage=3).to_pylist()}
    assert len(rows) == 12 and rows["k007"]["val_acc"] == 0.77


def test_a_reader_looping_during_compaction_sees_each_key_once(tmp_path: Path) -> None:
    """Rounds of reruns and compactions while another thread reads in a loop; each round's
    window waits until the reader has finished a read begun inside it."""
    _records(tmp_path, 60)
    expected = set(_keys(tmp_path))
    done, reads, bad = threading.Event(), [0], []
    tick = threading.Condition()

    def reader() -> None:
        while not done.is_set():
            got = _keys(tmp_path)
            if set(got) != expected or set(got.values()) != {1}:
                bad.append(got)
            with tick:
                reads[0] += 1
                tick.notify_all()

    def window() -> None:
        with tick:
            start = reads[0]
            assert tick.wait_for(lambda: reads[0] >= start + 2, timeout=120), "reader stalled"

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(4):
            for i in range(round_, 60, 7):  # reruns of some keys: single files again
                write_test_record(tmp_path, "a", 3, f"k{i:03d}", val_acc=round_ / 10)
            compact_partition(tmp_path, partition_dir(tmp_path, "a", 3), between=window)
    finally:
        done.set()
        thread.join()
    assert not bad, bad[0]
    assert reads[0] >= 8


def test_a_damaged_compacted_file_is_quarantined_and_rebuilt_from_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    store = Store.of_workdir(work)
    for key in ("c1", "c2"):
        meta = {"key": key, "model": "resnet20", "dataset": "digits", "budget": 3000}
        save_artifact(
            store.folder(3, key), {}, meta | {"val_acc": 0.5, "provenance": {"sweep": "s"}}
        )
    nodes = [_Node(3, "c1"), _Node(3, "c2")]
    reconcile_records(work, "s", store.root, nodes)
    write_test_record(work, "s", 3, "failed3", status="failed")
    good = read_records(work).to_pylist()
    compact_workdir(work)
    assert reconcile_records(work, "s", store.root, nodes) == 0  # the compacted rows count
    assert has_record(work, "s", 3, "c1") and not record_path(work, "s", 3, "c1").exists()
    (partition_dir(work, "s", 3) / COMPACTED).write_bytes(b"PAR1 torn")

    rows = read_records(work).to_pylist()
    assert rows == [r for r in good if r["key"] != "failed3"]  # rebuilt; a failed run's is not
    assert record_path(work, "s", 3, "c1").exists() and record_path(work, "s", 3, "c2").exists()
    assert len(list(store.quarantine_dir.iterdir())) == 1  # set aside, not deleted
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and COMPACTED in lines[0]


def test_a_run_compacts_only_from_its_threshold_or_beside_a_compacted_file(tmp_path: Path) -> None:
    _records(tmp_path)
    assert compact_workdir(tmp_path, "a", min_singles=13) == {}
    assert compact_workdir(tmp_path, "a", min_singles=12) == {("a", 3): 12}
    write_test_record(tmp_path, "a", 3, "k100")
    assert compact_workdir(tmp_path, "a", min_singles=12) == {("a", 3): 1}  # beside one
    assert record_path(tmp_path, "b", 3, "other").exists()  # another sweep's: untouched


def test_senet_compact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _records(tmp_path)
    assert main(["compact", str(tmp_path)]) == 0
    assert "compacted 14 record files in 3 partitions" in capsys.readouterr().out
    assert main(["compact", str(tmp_path / "nowhere")]) == 2
    assert "no such workdir" in capsys.readouterr().err
