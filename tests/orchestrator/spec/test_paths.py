"""The path rules every command asks before it starts (orchestrator/spec/paths.py): each
problem is named in words that say which path and why; a missing path is no problem."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import tmpfs

from orchestrator.spec.paths import path_problem, regular_file_problem, writable_problem


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "folder", "problem"),
    [
        ("missing/deeper", True, None),
        ("dir", True, None),
        ("dir", False, "{t}/dir is a folder, not a file"),
        ("dir/new.png", False, None),
        ("file", True, "{t}/file is a file, not a folder"),
        ("file", False, None),
        ("file", None, None),
        ("file/under/x", None, "{t}/file is a file, not a folder"),
        ("loop/w", True, "{t}/loop/w is in a loop of symbolic links"),
    ],
)
def test_path_problem(tree: Path, name: str, folder: bool | None, problem: str | None) -> None:
    want = problem.format(t=tree) if problem else None
    assert path_problem(tree / name, folder) == want


def test_regular_file_problem(tree: Path) -> None:
    assert regular_file_problem(tree / "file") is None
    assert regular_file_problem(tree / "missing") is None  # the reader says it, by name
    assert regular_file_problem(tree / "dir") == "a folder, not a sweep file"
    assert "not a regular file" in (regular_file_problem(tree / "fifo") or "")


def test_writable_problem_names_a_read_only_disk(tmp_path: Path) -> None:
    assert writable_problem(tmp_path / "new" / "f.png") is None
    with tmpfs(tmp_path / "ro", "1m"):
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "ro")], check=True)
        assert writable_problem(tmp_path / "ro" / "a" / "f.png") == (
            f"cannot write in {tmp_path / 'ro'}: read-only file system"
        )
