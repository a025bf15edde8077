"""`senet results` on hand-made records: no Ray, no training, a second or two in all."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
from pathlib import Path

import pytest
from support import T0

from orchestrator.analysis import results as R
from orchestrator.analysis.reference import REFERENCES
from orchestrator.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["results", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_default_table_shows_every_stage(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(work))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == list(R.TABLE_COLUMNS)
    assert lines[-1] == "9 records"
    assert {line.split()[1] for line in lines[1:-2]} == {"1", "2", "3"}


def test_csv_parses_back_with_the_right_rows(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, str(work), "--best-per-budget", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(R.ALL_COLUMNS)  # csv holds every column by default
    assert [r["key"] for r in rows] == ["a3z", "a3w", "b3a"]
    assert float(rows[0]["val_acc"]) == 0.72 and rows[0]["status"] == "reused"
    assert json.loads(rows[0]["relu_per_layer"]) == [24000, 24000]
    assert dt.datetime.fromisoformat(rows[0]["started_at"]) == T0


def test_json_parses_back_with_lists_and_iso_times(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, str(work), "--sweep", "a", "--pareto", "--format", "json", "--where", "tau<=8"
    )
    assert code == 0
    rows = json.loads(out)
    # a3z (48k, .72) and a3w (99k, .76) make the front; a3x and a3y lose to a3z.
    assert [r["key"] for r in rows] == ["a3z", "a3w"]
    assert rows[0]["relu_per_layer"] == [24000, 24000]
    assert rows[0]["started_at"] == T0.isoformat() and rows[0]["stage"] == 3


def test_columns_override_and_unknown_column(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, str(work), "--stage", "2", "--columns", "key,relu_count")
    assert code == 0 and out.splitlines()[:2] == ["key  relu_count", "a2        50000"]
    code, _, err = _run(capsys, str(work), "--columns", "key,nope")
    assert code == 2 and "'nope'" in err and len(err.splitlines()) == 1


def test_where_errors_exit_2_with_one_line(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(work), "--where", "colour=red")
    assert code == 2 and out == ""
    assert err.startswith("senet results: error: unknown column 'colour'")
    assert len(err.splitlines()) == 1


def test_empty_results_say_so_and_exit_0(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(work), "--where", "budget>1000000")
    assert code == 0 and "no records match" in out and "budget>1000000" in out
    code, out, _ = _run(capsys, str(work), "--sweep", "nope")
    assert code == 0 and "sweeps present: a, b" in out
    code, out, err = _run(capsys, str(work), "--sweep", "nope", "--format", "json")
    assert code == 0 and json.loads(out) == [] and "no records match" in err
    code, out, _ = _run(capsys, str(work), "--sweep", "nope", "--format", "csv")
    assert code == 0 and next(csv.reader(io.StringIO(out))) == list(R.ALL_COLUMNS)


def test_missing_results_folder_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, str(tmp_path / "nowhere"))
    assert code == 2
    assert f"no records under {tmp_path / 'nowhere' / 'results'}; run `senet run SWEEP`" in err


def test_reference_errors(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, str(work), "--plot", str(tmp_path / "x.png"), "--reference", "x")
    assert code == 2 and "unknown --reference 'x'" in err
    assert all(name in err for name in REFERENCES)
    code, _, err = _run(capsys, str(work), "--reference", "cifar100-resnet18")
    assert code == 2 and "--plot" in err
    code, _, err = _run(capsys, str(work), "--plot", str(tmp_path / "plot.txt"))
    assert code == 2 and "name the file .png" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("budget=999999999999999999999999999", "is out of budget's range"),
        ("budget>-99999999999999999999", "is out of budget's range"),
        ("val_acc<" + "9" * 400, "is too large for val_acc"),
    ],
)
def test_where_value_out_of_the_columns_range_is_one_line(
    work: Path, capsys: pytest.CaptureFixture[str], where: str, problem: str
) -> None:
    code, out, err = _run(capsys, str(work), "--where", where)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("senet results: error: --where ") and problem in err


def test_a_plot_path_that_cannot_be_written_is_one_line_before_any_record_is_read(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--plot` under a file, or on a read-only disk, gave a traceback after the work."""
    from support import tmpfs

    plain = tmp_path / "plain"
    plain.write_text("x")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    for path, problem in (
        (plain / "front.png", f"{plain} is a file, not a folder"),
        (plain / "sub" / "front.png", f"{plain} is a file, not a folder"),
        (folder, f"{folder} is a folder, not a file"),
    ):
        code, out, err = _run(capsys, str(work), "--plot", str(path))
        assert (code, out) == (2, "")
        assert err == f"senet results: error: --plot: {problem}\n"
    with tmpfs(tmp_path / "ro", "1m") as _:
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "ro")], check=True)
        code, out, err = _run(capsys, str(work), "--plot", str(tmp_path / "ro" / "f.png"))
        assert (
            err
            == f"senet results: error: --plot: cannot write in {tmp_path / 'ro'}: read-only file system\n"
        )
        assert code == 2
