"""How much of a sweep is planned and done: in the Optuna modes, the studies' trial quota."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_optuna_sweep


def test_validate_counts_the_trial_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from orchestrator.cli.main import main

    path = write_optuna_sweep(tmp_path / "v.toml", tmp_path / "work", trials=5)
    assert main(["validate", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["stage2"] == {"total": 2, "done": 0}
    assert plan["stage3"] == {"total": 10, "done": 0}  # 5 trials x 2 budgets


def _progress_dir(work: Path) -> Path:
    """A run's progress files, damaged as a hand edit or a torn copy might leave them: one
    good node and five malformed ones; progress files of the wrong shape."""
    import json

    folder = work / "progress"
    folder.mkdir(parents=True)
    nodes = [
        {"key": "aa", "stage": 1, "parents": [], "epochs": 2, "labels": {}},
        {"key": "bb", "stage": "x"},
        {"key": 5, "stage": 2},
        {"key": "../../victim", "stage": 2},
        "not a node",
        {"key": "cc", "stage": 2, "parents": "aa", "labels": [1], "epochs": "3"},
    ]
    plan = {"sweep": "s", "run_id": 7, "concurrency": "x", "nodes": nodes}
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "aa.json").write_text(
        json.dumps({"epoch": "x", "measured": [1, "x"], "failed": "boom", "updated": "now"})
    )
    (folder / "cc.json").write_text("[1, 2]")
    return folder


@pytest.mark.parametrize("held", [False, True])
def test_status_reads_malformed_progress_files_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held: bool
) -> None:
    """A malformed progress/plan.json or progress file gave `senet status` a traceback."""
    import contextlib

    from orchestrator.cli.main import main
    from orchestrator.run.lock import workdir_lock

    work = tmp_path / "work"
    _progress_dir(work)
    with workdir_lock(work) if held else contextlib.nullcontext():
        assert main(["status", str(work)]) == 0
    out = capsys.readouterr().out
    assert f"sweep s in {work}: {'running' if held else 'not running'}" in out
    assert "stage1: 0 done" in out and "stage2: 0 done, 1 pending" in out
    assert f"warning: 4 malformed nodes in {work / 'progress' / 'plan.json'} left out" in out


def test_verify_sets_malformed_progress_files_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli.main import main

    work = tmp_path / "work"
    folder = _progress_dir(work)
    assert main(["verify", str(work)]) == 1
    out = capsys.readouterr().out
    for name in ("plan.json", "aa.json", "cc.json"):
        assert f"damaged: {folder / name}: " in out
    assert not list(folder.glob("*.json"))
    assert len(list((work / "store" / "quarantine").iterdir())) == 3
    assert main(["verify", str(work)]) == 0


def test_a_run_that_has_not_planned_yet_is_said_starting(tmp_path: Path) -> None:
    """Between taking the lock and writing its plan a run is `starting`: the previous run's
    plan (another sweep here) is never shown as the running one. A holder that is no run
    (`senet verify`) leaves the plan shown as it is."""
    from orchestrator.run.lock import workdir_lock
    from orchestrator.run.status import local_status

    work = tmp_path / "work"
    _progress_dir(work)
    with workdir_lock(work, "senet run", "20261204-040000-abcdef"):
        lines = local_status(work)
    assert lines[0].startswith(f"{work}: starting (senet run on ")
    assert "run 20261204-040000-abcdef: checking the store and planning" in lines[1]
    assert not any("sweep s" in line for line in lines)
    with workdir_lock(work, "senet verify"):
        assert local_status(work)[0].startswith(f"sweep s in {work}: running (senet verify")


def test_the_first_status_poll_after_start_shows_the_new_run(tmp_path: Path) -> None:
    """`senet status` polled from the moment a second `senet run` holds the workdir: every
    poll names the new run (its lock's run id) and never the previous sweep's plan; before
    its first epoch it says what the run is doing."""
    import subprocess
    import sys

    from support import subprocess_env, wait_while_running, write_sweep

    from orchestrator.run.driver import run_sweep
    from orchestrator.run.lock import holder_run_id, lock_holder, lock_path
    from orchestrator.run.status import local_status
    from orchestrator.spec.sweep import load_sweep

    work = tmp_path / "work"
    first = write_sweep(tmp_path / "a.toml", work, name="first", budgets=[3000], taus=[2.0])
    assert run_sweep(load_sweep(first), printer=lambda _: None).ok
    second = write_sweep(tmp_path / "b.toml", work, name="second", budgets=[3000], taus=[4.0])
    log = tmp_path / "second.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "run", str(second)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
    polls: list[tuple[str, list[str]]] = []

    def poll() -> bool:
        held, holder = lock_holder(work)
        if held:
            lines = local_status(work)
            run_id = holder_run_id(lock_path(work).read_text())
            polls.append((run_id or "", lines))
        return bool(polls) and not held

    try:
        wait_while_running("the second run to take and release the lock", poll, proc, log, 600)
    finally:
        proc.wait(timeout=600)
    assert proc.returncode == 0, log.read_text()[-3000:]
    for run_id, lines in polls:
        assert run_id and f"run {run_id}" in "\n".join(lines), lines
        assert not any(line.startswith("sweep first") for line in lines), lines
    seen = "\n".join(line for _, lines in polls for line in lines)
    assert "sweep second" in seen, seen
    assert (
        "checking the store and planning" in seen
        or ": starting Ray" in seen
        or (": waiting for the first trials" in seen)
    )
