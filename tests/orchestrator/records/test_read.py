"""Reading records: a workdir with none is an empty table with the full schema, and the
sweep and stage filters come from the hive partitions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import write_test_record

from orchestrator.cli.main import main
from orchestrator.records.read import read_records
from orchestrator.records.schema import PARTITIONS, SCHEMA
from orchestrator.records.write import reconcile_records, record_path
from stages.artifacts import save_artifact
from stages.store import Store


@dataclass(frozen=True)
class _Node:
    stage: int
    key: str


def test_no_records_is_an_empty_table_with_every_column(tmp_path: Path) -> None:
    table = read_records(tmp_path / "nothing")
    assert table.num_rows == 0
    assert set(table.column_names) == set(SCHEMA.names) | set(PARTITIONS.names)


def test_sweep_and_stage_filters(tmp_path: Path) -> None:
    for sweep, stage, key in (("a", 1, "k1"), ("a", 3, "k2"), ("b", 3, "k3")):
        write_test_record(tmp_path, sweep, stage, key)
    assert sorted(read_records(tmp_path)["key"].to_pylist()) == ["k1", "k2", "k3"]
    assert read_records(tmp_path, sweep="a", stage=3)["key"].to_pylist() == ["k2"]
    assert sorted(read_records(tmp_path, stage=3)["key"].to_pylist()) == ["k2", "k3"]


def test_a_garbage_record_is_quarantined_and_rebuilt_from_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A torn record file no longer stops a reader: it is set aside (one warning naming it)
    and rewritten from its artifact's metadata; a record with no artifact behind it (a failed
    run's) is set aside and the rest still reads."""
    work = tmp_path / "work"
    store = Store.of_workdir(work)
    meta = {"key": "k2", "model": "resnet20", "dataset": "digits", "budget": 3000}
    save_artifact(store.folder(2, "k2"), {}, meta | {"val_acc": 0.5, "provenance": {"sweep": "s"}})
    reconcile_records(work, "s", store.root, [_Node(2, "k2")])
    write_test_record(work, "s", 3, "failed3", status="failed")
    good = read_records(work).to_pylist()
    for key, stage in (("k2", 2), ("failed3", 3)):
        record_path(work, "s", stage, key).write_bytes(b"PAR1 torn")

    rows = read_records(work).to_pylist()
    assert rows == [r for r in good if r["key"] == "k2"]  # rebuilt, equal to the original
    assert pq.read_table(record_path(work, "s", 2, "k2")).num_rows == 1
    assert not record_path(work, "s", 3, "failed3").exists()
    assert len(list(store.quarantine_dir.iterdir())) == 2  # both kept, neither lost
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2 and str(record_path(work, "s", 2, "k2")) in lines[0]
    assert main(["results", str(work), "--format", "csv"]) == 0  # `senet results` works
    assert "k2" in capsys.readouterr().out


def test_a_record_of_the_wrong_schema_is_quarantined_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Parquet record with the right `key` column but columns of other types passed the
    footer check, and `senet results` and `senet run` failed on it every time."""
    import pyarrow as pa

    work = tmp_path / "work"
    store = Store.of_workdir(work)
    meta = {"key": "k2", "model": "resnet20", "dataset": "digits", "budget": 3000}
    save_artifact(store.folder(2, "k2"), {}, meta | {"val_acc": 0.5, "provenance": {"sweep": "s"}})
    reconcile_records(work, "s", store.root, [_Node(2, "k2")])
    good = read_records(work).to_pylist()
    path = record_path(work, "s", 2, "k2")
    pq.write_table(pa.table({"key": ["k2"], "val_acc": ["high"], "budget": [[1, 2]]}), path)

    assert read_records(work).to_pylist() == good  # rebuilt from the store
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{path}: not the records' schema (val_acc is string, not double" in line
    assert len(list(store.quarantine_dir.iterdir())) == 1
    assert main(["results", str(work), "--format", "csv"]) == 0
    assert "k2" in capsys.readouterr().out
