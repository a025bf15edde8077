"""Helpers shared by tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TINY = """\
[sweep]
name = "{name}"
model = "resnet20"
dataset = "synthetic"
seeds = [0]
budgets = {budgets}
limit = 48
workdir = "{workdir}"

[stage1]
epochs = {epochs}
batch_size = 16

[stage2]
epochs = {epochs}
batch_size = 16

[stage3]
epochs = {epochs}
batch_size = 16
tau = {taus}

[resources]
cpus = 1
max_concurrent = 2
retries = {retries}
"""


def write_sweep(
    path: Path,
    workdir: Path,
    name: str = "tiny",
    budgets: list[int] | None = None,
    taus: list[float] | None = None,
    epochs: int = 1,
    retries: int = 0,
) -> Path:
    """A sweep of resnet20 on 48 synthetic 16x16 images: seconds per stage on a CPU."""
    path.write_text(
        TINY.format(
            name=name,
            budgets=budgets or [3000, 6000],
            taus=taus or [2.0, 4.0],
            epochs=epochs,
            retries=retries,
            workdir=workdir,
        )
    )
    return path


OPTUNA = """\
[sweep]
name = "{name}"
model = "resnet20"
dataset = "synthetic"
budgets = {budgets}
limit = 48
workdir = "{workdir}"

[stage1]
epochs = 1
batch_size = 16

[stage2]
epochs = 1
batch_size = 16

[stage3]
epochs = {epochs}
batch_size = 16

[search]
mode = "{mode}"
trials = {trials}
seed = 3
{search_extra}

[search.space]
tau = {{low = 1.0, high = 8.0, log = true}}
beta = {{choices = [0.0, 1000.0]}}
{space_extra}

[resources]
max_concurrent = 2
retries = 0
"""


def write_optuna_sweep(
    path: Path,
    workdir: Path,
    name: str = "opt",
    mode: str = "optuna",
    trials: int = 3,
    budgets: list[int] | None = None,
    epochs: int = 2,
    search_extra: str = "",
    space_extra: str = "",
) -> Path:
    """A tiny Optuna sweep (per-budget, or Pareto with a sampled budget)."""
    path.write_text(
        OPTUNA.format(
            name=name,
            mode=mode,
            trials=trials,
            budgets=budgets if budgets is not None else [3000, 6000],
            workdir=workdir,
            epochs=epochs,
            search_extra=search_extra,
            space_extra=space_extra,
        )
    )
    return path


T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def write_test_record(workdir: Path, sweep: str, stage: int, key: str, **kw: object) -> None:
    """One hand-made Parquet record (no Ray, no training): a completed resnet18/cifar100 run
    started at T0 unless `kw` says otherwise."""
    from orchestrator.records.write import write_record

    row = {
        "schema_version": 1,
        "key": key,
        "model": "resnet18",
        "dataset": "cifar100",
        "seed": 0,
        "allocation": "sensitivity",
        "status": "completed",
        "started_at": T0,
        "finished_at": T0 + dt.timedelta(minutes=5),
    } | kw
    write_record(workdir, sweep, stage, row)


def write_two_sweeps(tmp_path: Path) -> Path:
    """Records of two sweeps under tmp_path/work; budget 50k of sweep `a` has a trap: the best
    test_acc is not the best val."""
    w = tmp_path / "work"
    write_test_record(w, "a", 1, "a1", val_acc=0.80, test_acc=0.79)
    write_test_record(w, "a", 2, "a2", budget=50000, relu_count=50000, val_acc=0.60, test_acc=0.59)
    stage3 = [
        # key, budget, relu_count, val, test, tau, status
        ("a3x", 50000, 49000, 0.70, 0.99, 2.0, "completed"),  # best test, not best val
        ("a3y", 50000, 49500, 0.72, 0.70, 4.0, "completed"),
        ("a3z", 50000, 48000, 0.72, 0.71, 8.0, "reused"),  # same val, fewer ReLUs: wins
        ("a3w", 100000, 99000, 0.76, 0.75, 4.0, "completed"),
        ("a3f", 100000, None, None, None, 16.0, "failed"),
        ("a3s", 50000, 47000, 0.90, 0.90, 1.0, "stopped"),  # ASHA-stopped: never ranked
    ]
    for key, budget, count, val, test, tau, status in stage3:
        write_test_record(
            w,
            "a",
            3,
            key,
            budget=budget,
            relu_count=count,
            val_acc=val,
            test_acc=test,
            tau=tau,
            gamma=0.1,
            alpha=0.9,
            beta=1000.0,
            status=status,
            relu_per_layer=None if count is None else [count // 2, count - count // 2],
        )
    write_test_record(
        w,
        "b",
        3,
        "b3a",
        budget=50000,
        relu_count=50000,
        val_acc=0.65,
        test_acc=0.64,
        tau=4.0,
        allocation="uniform",
    )
    return w


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `senet` subprocess, read when it starts (never at import): an
    in-process `ray.init` of an earlier test turns Ray 2.60's token auth on by setting
    RAY_AUTH_MODE=token in os.environ, and a Ray cluster a test starts after that expects the
    token; a subprocess given an older copy of the environment cannot join it."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


def wait_while_running(
    what: str,
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    limit: float,
    poll: float = 0.05,
) -> None:
    """Poll `ready()` until true while the subprocess `proc` (a Popen writing to `log`) runs;
    fails at once if it ends first. The deadline only guards against a hang."""
    import pytest

    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the command ended before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {limit:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(poll)


def tune_reports(work: Path, key: str) -> list[tuple[int, int]]:
    """(pid, epoch) of every per-epoch result Tune logged for the trial of `key`, in order:
    which process ran which epoch, across a retry."""
    import json

    rows = []
    for path in sorted((work / "tune").rglob("result.json")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("key") == key and "epoch" in row and not row.get("stage_done"):
                rows.append((int(row["pid"]), int(row["epoch"])))
    return rows


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Callable[[str], None]]:
    """A tmpfs of `size` at `folder`, unmounted afterwards; yields a function that resizes
    it. Skips (saying why) where this machine cannot mount one."""
    folder.mkdir(parents=True)
    got = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {got.stderr.strip()}")

    def resize(new: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new}", str(folder)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", str(folder)], check=True)
