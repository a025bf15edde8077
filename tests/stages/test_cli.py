"""The `senet` command line as a user runs it: a subprocess, its exit status, its last line,
and one-line errors that come before any training."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def senet(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`senet ARGS` through the interpreter running the tests (no reliance on PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "total"),
    [
        ((), 557_056),
        (("--no-stem",), 491_520),
        (("--input-size", "64"), 2_228_224),
    ],
)
def test_relu_count_resnet18(args: tuple[str, ...], total: int) -> None:
    out = senet("relu-count", "resnet18", *args)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == f"total {total}"
    assert len(lines) == 1 + (16 if "--no-stem" in args else 17) + 1  # header, layers, total


def test_relu_count_unknown_model_is_one_line_exit_2() -> None:
    out = senet("relu-count", "resnet999")
    assert out.returncode == 2 and out.stdout == ""
    err = out.stderr.strip()
    assert "\n" not in err and "resnet999" in err and "resnet18" in err  # names the choices


def test_pipeline_budget_too_large_fails_before_training(tmp_path: Path) -> None:
    start = time.perf_counter()
    out = senet(
        "pipeline", "--budget", "10000000", "--epochs", "1", "--workdir", str(tmp_path / "w")
    )
    assert out.returncode == 2
    err = out.stderr.strip()
    assert "\n" not in err and "budget" in err and "10000000" in err
    assert "epoch" not in out.stdout and not (tmp_path / "w").exists()  # nothing trained
    assert time.perf_counter() - start < 60


def test_pipeline_missing_cifar_says_where_the_files_go(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    out = senet(
        "pipeline",
        "--dataset",
        "cifar10",
        "--data-root",
        str(missing),
        "--budget",
        "0.1",
        "--epochs",
        "1",
        "--workdir",
        str(tmp_path / "w"),
    )
    assert out.returncode == 2
    err = out.stderr.strip()
    assert "\n" not in err, err
    assert str(missing) in err and "cifar-10-python.tar.gz" in err
    assert not list((tmp_path / "w").rglob("meta.json"))
