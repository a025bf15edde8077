"""`senet export`'s refusals, each one line with exit status 2 and nothing written (its happy
path, on a real sweep, is tests/orchestrator/analysis/test_export.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.main import main


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("senet export: error: ") and "\n" not in err
    return err


def test_export_needs_to_be_told_what(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--best-per-budget, or --key" in _refused(
        ["export", str(work), str(tmp_path / "o")], capsys
    )


def test_a_folder_without_a_store_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["export", str(tmp_path), str(tmp_path / "o"), "--best-per-budget"], capsys)
    assert "no store/ here" in err


def test_records_whose_models_are_not_in_the_store_are_refused(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "store").mkdir()  # hand-made records (conftest's `work`): no artifact behind them
    err = _refused(["export", str(work), str(tmp_path / "o"), "--best-per-budget"], capsys)
    assert (
        "cannot export stage 3 a3z" in err
    )  # the first best: sweep a, 50k and "not finished" in err
    assert not (tmp_path / "o").exists()


def test_an_out_that_is_a_file_or_in_a_symlink_loop_is_refused_before_any_work(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`senet export WORKDIR OUT` with OUT an existing file gave a traceback."""
    (work / "store").mkdir()
    plain = tmp_path / "plain"
    plain.write_text("x")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for out, problem in (
        (plain, f"{plain} is a file, not a folder"),
        (plain / "sub", f"{plain} is a file, not a folder"),
        (loop / "o", f"{loop / 'o'} is in a loop of symbolic links"),
    ):
        err = _refused(["export", str(work), str(out), "--best-per-budget"], capsys)
        assert err == f"senet export: error: OUT: {problem}"
    assert plain.read_text() == "x"
