"""orchestrator.cli.target: the commands that read a workdir take the sweep file naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_sweep, write_test_record

from orchestrator.cli.main import main
from orchestrator.plan.plan import build_plan
from orchestrator.run.status import write_plan
from orchestrator.spec.sweep import load_sweep


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    """A sweep file whose workdir holds its plan and two records, and one of another sweep."""
    work = tmp_path / "work"
    path = write_sweep(tmp_path / "tiny.toml", work)
    plan = build_plan(load_sweep(path))
    write_plan(work, "tiny", "r1", plan.nodes.values(), 2)
    write_test_record(work, "tiny", 1, "t1", val_acc=0.5, test_acc=0.5)
    write_test_record(work, "other", 1, "o1", val_acc=0.6, test_acc=0.6)
    return path


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    got = capsys.readouterr()
    return code, got.out, got.err


def test_results_of_a_sweep_file_are_its_workdirs_records_of_that_sweep(
    sweep_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = sweep_file.parent / "work"
    code, by_file, _ = _out(capsys, "results", str(sweep_file), "--format", "csv")
    assert code == 0 and "t1" in by_file and "o1" not in by_file  # its sweep only
    code, by_dir, _ = _out(capsys, "results", str(work), "--format", "csv", "--sweep", "tiny")
    assert code == 0 and by_dir == by_file


def test_an_override_moves_the_workdir(
    sweep_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    code, _, err = _out(capsys, "results", str(sweep_file), f"sweep.workdir={elsewhere}")
    assert code == 2 and f"no records under {elsewhere}/results" in err
    write_test_record(elsewhere, "tiny", 1, "e1", val_acc=0.7, test_acc=0.7)
    code, out, _ = _out(capsys, "results", str(sweep_file), f"sweep.workdir={elsewhere}")
    assert code == 0 and "e1" in out and "t1" not in out


def test_status_verify_and_compact_take_the_sweep_file(
    sweep_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = (sweep_file.parent / "work").resolve()
    code, out, _ = _out(capsys, "status", str(sweep_file))
    assert code == 0 and f"sweep tiny in {work}" in out
    code, out, _ = _out(capsys, "compact", str(sweep_file))
    assert code == 0 and "sweep=tiny/stage=1: 1 record files folded" in out
    assert "sweep=other" not in out  # the file names its sweep
    code, _, err = _out(capsys, "verify", str(sweep_file), "--dry-run")
    assert code in (0, 1) and "error" not in err


def test_export_resolves_before_it_looks_for_the_store(
    sweep_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = (sweep_file.parent / "work").resolve()
    code, _, err = _out(capsys, "export", str(sweep_file), str(tmp_path / "out"), "--key", "t1")
    assert code == 2 and f"{work}: no store/ here" in err


def test_overrides_of_a_workdir_and_a_bad_sweep_file_are_one_line(
    sweep_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = sweep_file.parent / "work"
    code, _, err = _out(capsys, "results", str(work), "stage3.tau=2.0")
    assert code == 2 and "overrides apply to a sweep file, and this is a workdir" in err
    code, _, err = _out(capsys, "status", str(tmp_path / "missing.toml"))
    assert code == 2 and err.count("\n") == 1 and "missing.toml: no such sweep file" in err
