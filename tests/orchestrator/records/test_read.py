"""Reading records: a workdir with none is an empty table with the full schema, and the
sweep and stage filters come from the hive partitions."""

from __future__ import annotations

from pathlib import Path

from support import write_test_record

from orchestrator.records.read import read_records
from orchestrator.records.schema import PARTITIONS, SCHEMA


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
