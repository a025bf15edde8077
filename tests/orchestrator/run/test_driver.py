"""Sweeps on a real Ray: each stage runs once, reruns run nothing, extensions run only what is
new, a failing stage becomes a failed record, and the records read back in pyarrow, pandas and
DuckDB."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from support import write_sweep

from orchestrator.cli.main import main
from orchestrator.plan.plan import build_plan
from orchestrator.records.read import read_records
from orchestrator.records.write import results_dir
from orchestrator.run.driver import run_sweep
from orchestrator.spec.sweep import load_sweep
from stages.artifacts import FILES, META, WEIGHTS, artifact_dir, read_meta, save_artifact

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _quiet(_line: str) -> None:
    pass


def _by_stage(workdir: Path, sweep: str) -> dict[int, list[dict]]:
    rows = read_records(workdir, sweep=sweep).to_pylist()
    return {s: [r for r in rows if r["stage"] == s] for s in (1, 2, 3)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-budget x 2-temperature sweep run once to completion."""
    tmp = tmp_path_factory.mktemp("grid")
    path = write_sweep(tmp / "grid.toml", tmp / "work", name="grid")
    summary = run_sweep(load_sweep(path), printer=_quiet)
    assert summary.ok, summary
    assert summary.executed == {1: 1, 2: 2, 3: 4}
    return path, tmp / "work"


def test_each_stage_runs_once_per_dependency(finished: tuple[Path, Path]) -> None:
    _, work = finished
    records = _by_stage(work, "grid")
    assert [len(records[s]) for s in (1, 2, 3)] == [1, 2, 4]
    assert all(r["status"] == "completed" for rows in records.values() for r in rows)
    stage1 = records[1][0]["key"]
    assert {r["parent_key"] for r in records[2]} == {stage1}
    assert {r["parent_key"] for r in records[3]} == {r["key"] for r in records[2]}
    for r in records[3]:
        assert r["relu_count"] == r["budget"]  # exactly the budget, per the record
        assert sum(r["relu_per_layer"]) == r["relu_count"]
        assert r["ray_trial_id"] and r["hostname"] and r["code_version"]
        assert 0.0 <= r["val_acc"] <= 1.0
    assert {(r["budget"], r["tau"]) for r in records[3]} == {
        (3000, 2.0),
        (3000, 4.0),
        (6000, 2.0),
        (6000, 4.0),
    }


def test_rerun_executes_nothing_and_rewrites_no_record(finished: tuple[Path, Path]) -> None:
    path, work = finished
    before = {p: p.stat().st_mtime_ns for p in results_dir(work).rglob("*.parquet")}
    summary = run_sweep(load_sweep(path), printer=_quiet)
    assert summary.executed == {1: 0, 2: 0, 3: 0}
    after = {p: p.stat().st_mtime_ns for p in results_dir(work).rglob("*.parquet")}
    assert after == before


def test_verify_finds_nothing_damaged_in_what_a_run_leaves(
    finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Its checks (records' schema, progress files, checkpoints) accept every file a real run
    writes: damage is never cried where there is none."""
    _, work = finished
    assert (work / "progress" / "plan.json").exists()
    assert main(["verify", str(work), "--dry-run"]) == 0
    assert "0 damaged" in capsys.readouterr().out


def test_readers_agree(finished: tuple[Path, Path]) -> None:
    _, work = finished
    glob = str(results_dir(work) / "**" / "*.parquet")
    con = duckdb.connect()
    got = con.execute(
        f"select stage, count(*), min(relu_count) from read_parquet('{glob}', hive_partitioning=true) "
        "where sweep = 'grid' group by stage order by stage"
    ).fetchall()
    assert [(int(s), n) for s, n, _ in got] == [(1, 1), (2, 2), (3, 4)]
    frame = pd.read_parquet(results_dir(work))
    assert len(frame) == 7 and set(frame["stage"].astype(int)) == {1, 2, 3}
    layers = con.execute(
        f"select len(relu_per_layer) from read_parquet('{glob}', hive_partitioning=true) where stage = 3"
    ).fetchall()
    assert {n for (n,) in layers} == {19}  # resnet20 has 19 ReLU layers


def test_adding_a_temperature_runs_only_the_new_stage3(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    path, work = finished
    wider = write_sweep(tmp_path / "grid.toml", work, name="grid", taus=[2.0, 4.0, 8.0])
    sweep = load_sweep(wider)
    assert build_plan(sweep).summary()["stage3"] == {"total": 6, "done": 4}
    summary = run_sweep(sweep, printer=_quiet)
    assert summary.executed == {1: 0, 2: 0, 3: 2}
    assert len(_by_stage(work, "grid")[3]) == 6


def test_a_damaged_store_heals_on_rerun(
    finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated stage-1 model, a garbage stage-2 meta.json and a garbage record: `senet
    validate` does not crash, and the rerun quarantines the three, recomputes the two stages,
    rebuilds the record, and the new stage-3 runs that load them succeed. What counts as new
    is read from the plan, so the test holds whichever tests of this module ran before it."""
    _, work = finished
    path = write_sweep(tmp_path / "grid.toml", work, name="grid", taus=[2.0, 4.0, 8.0, 0.5])
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    before = plan.summary()["stage3"]
    [n1] = plan.stage(1)
    n2 = next(n for n in plan.stage(2) if n.labels["budget"] == 6000)
    weights = artifact_dir(plan.store, 1, n1.key) / WEIGHTS
    os.truncate(weights, weights.stat().st_size // 2)
    (artifact_dir(plan.store, 2, n2.key) / META).write_text('{"stage": 2, "key"')
    record = next(results_dir(work).glob("sweep=grid/stage=3/*.parquet"))
    garbled = pq.read_table(record).column("key")[0].as_py()
    record.write_bytes(b"PAR1")

    assert main(["validate", str(path), "--json"]) == 0  # no crash; damage reads as not done
    summary = json.loads(capsys.readouterr().out)
    assert summary["stage1"]["done"] == 0 and summary["stage2"]["done"] == 1
    result = run_sweep(sweep, printer=_quiet)
    assert result.ok, result
    assert result.executed == {1: 1, 2: 1, 3: before["total"] - before["done"]}
    assert len(list(plan.store.quarantine_dir.iterdir())) == 3  # set aside, not deleted
    records = _by_stage(work, "grid")
    assert [len(records[s]) for s in (1, 2)] == [1, 2]
    stage3 = {r["key"]: r for r in records[3]}
    assert {n.key for n in plan.stage(3)} <= stage3.keys() and garbled in stage3  # rebuilt
    assert {r["status"] for rows in records.values() for r in rows} == {"completed"}
    assert plan.summary()["stage3"] == {"total": 8, "done": 8}


def test_a_failing_stage_is_recorded_and_the_rest_completes(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    """A stage-2 artifact that is whole but whose weights do not fit its model (a bug, not
    damage: its size and sha256 match, so the store cannot heal it) fails its new stage-3
    run; the other budget's new run completes."""
    _, work = finished
    sweep = load_sweep(
        write_sweep(tmp_path / "grid.toml", work, name="grid", taus=[2.0, 4.0, 16.0])
    )
    plan = build_plan(sweep)
    bad = next(n for n in plan.stage(2) if n.labels["budget"] == 3000)
    folder = artifact_dir(plan.store, 2, bad.key)
    meta = {k: v for k, v in (read_meta(folder) or {}).items() if k != FILES}
    save_artifact(folder, {"bogus": torch.zeros(1)}, meta)
    summary = run_sweep(sweep, printer=_quiet)
    assert len(summary.failed) == 1 and summary.executed[3] == 1
    stage3 = {(r["budget"], r["tau"]): r for r in _by_stage(work, "grid")[3]}
    failed = stage3[(3000, 16.0)]
    assert failed["status"] == "failed" and failed["relu_count"] is None
    assert "bogus" in failed["error"] or "state_dict" in failed["error"]
    assert stage3[(6000, 16.0)]["status"] == "completed"


def test_a_diverged_stage_is_recorded_failed_with_the_reason(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    """Trained for real at a huge (finite) lr, stage 3's loss goes NaN while argmax still
    gives an accuracy in [0, 1]: the record says `failed` and why, never `completed`."""
    _, work = finished
    # budget 6000: the test before this one leaves budget 3000's stage 2 unloadable on purpose
    path = write_sweep(tmp_path / "nan.toml", work, name="nan", budgets=[6000], taus=[4.0])
    path.write_text(path.read_text().replace("[stage3]\n", "[stage3]\nlr = 1e30\n"))
    summary = run_sweep(load_sweep(path), printer=_quiet)
    assert len(summary.failed) == 1
    (row,) = _by_stage(work, "nan")[3]
    assert row["status"] == "failed" and row["val_acc"] is None
    assert "training diverged: epoch 1 loss is nan" in row["error"], row["error"]


def test_another_sweep_reusing_the_store_records_reuse(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    _, work = finished
    other = load_sweep(
        write_sweep(tmp_path / "other.toml", work, name="other", budgets=[6000], taus=[4.0])
    )
    summary = run_sweep(other, printer=_quiet)
    assert summary.executed == {1: 0, 2: 0, 3: 0}
    rows = read_records(work, sweep="other").to_pylist()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"reused"}


def test_snl_and_budget_zero_run_in_a_grid_sweep_and_are_recorded(tmp_path: Path) -> None:
    """SNL beside the default search, and the linearised network (budget 0): one stage-2 run
    per (budget, search), SNL's record saying `global`, budget 0 collapsed to one run."""
    path = write_sweep(tmp_path / "snl.toml", tmp_path / "work", name="snl", budgets=[0, 3000])
    text = path.read_text().replace(
        "[stage2]\n",
        '[stage2]\nmethod = ["activation-ema", "snl"]\nallocation = ["sensitivity", "uniform"]\n'
        "snl_alpha_lr = 0.05\n",
    )
    path.write_text(text.replace("tau = [2.0, 4.0]", "tau = 4.0"))
    summary = run_sweep(load_sweep(path), printer=_quiet)
    assert summary.ok, summary
    assert summary.executed == {1: 1, 2: 4, 3: 4}  # budget 0: 1; 3000: 2 allocations + SNL
    records = _by_stage(tmp_path / "work", "snl")
    for stage in (2, 3):
        got = sorted(
            (r["budget"], r["method"], r["allocation"], r["relu_count"]) for r in records[stage]
        )
        assert got == [
            (0, "taylor-ema", "uniform", 0),  # budget 0: the default search
            (3000, "activation-ema", "sensitivity", 3000),
            (3000, "activation-ema", "uniform", 3000),
            (3000, "snl", "global", 3000),
        ]
    assert all(r["status"] == "completed" for s in (2, 3) for r in records[s])
    assert {r["init"] for r in records[3] if r["method"] == "snl"} == {"teacher"}
