"""`senet status WORKDIR` of local runs, from the workdir alone: a real tiny sweep run to the
end, then rerun with a stage that fails; and the same workdir made to look mid-run the way a
live one does (the run's lock held, a trial's own progress file)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
from support import write_sweep

from orchestrator.cli.main import main
from orchestrator.plan.plan import build_plan
from orchestrator.records.read import read_records
from orchestrator.run.driver import run_sweep
from orchestrator.run.lock import workdir_lock
from orchestrator.run.status import progress_path, read_json
from orchestrator.run.trial import TrialProgress, TrialSpec
from orchestrator.spec.sweep import load_sweep
from stages.artifacts import FILES, artifact_dir, read_meta, save_artifact

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One budget, tau 2: three executions of 2 epochs each, run to the end; then tau 16 is
    added over a stage-2 artifact whose weights do not fit its model, so its stage 3 fails.
    Returns the workdir and the second run's printed lines."""
    tmp = tmp_path_factory.mktemp("status")
    work = tmp / "work"
    first = load_sweep(
        write_sweep(tmp / "s.toml", work, name="s", budgets=[3000], taus=[2.0], epochs=2)
    )
    assert run_sweep(first, printer=lambda _: None).ok
    sweep = load_sweep(
        write_sweep(tmp / "s.toml", work, name="s", budgets=[3000], taus=[2.0, 16.0], epochs=2)
    )
    stage2 = build_plan(sweep).stage(2)[0]
    folder = artifact_dir(build_plan(sweep).store, 2, stage2.key)
    meta = {k: v for k, v in (read_meta(folder) or {}).items() if k != FILES}
    save_artifact(folder, {"bogus": torch.zeros(1)}, meta)
    lines: list[str] = []
    summary = run_sweep(sweep, printer=lines.append)
    assert len(summary.failed) == 1
    return work, lines


def _status(work: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert main(["status", str(work)]) == 0
    return capsys.readouterr().out.splitlines()


def test_a_failed_stage_prints_its_own_error_and_its_log(ran: tuple[Path, list[str]]) -> None:
    work, lines = ran
    failed = [i for i, line in enumerate(lines) if "FAILED" in line]
    assert len(failed) == 1
    line = lines[failed[0]]
    assert "stage 3 FAILED tau=16: RuntimeError: Error(s) in loading state_dict" in line
    assert "ray." not in line and "\x1b[" not in line
    log = lines[failed[0] + 1].split("full log: ", 1)[1]
    assert Path(log).is_file() and Path(log).is_relative_to(work / "tune")
    assert "stage3.py" in Path(log).read_text()  # the whole traceback is still there


def test_status_of_a_finished_run(
    ran: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = ran
    out = _status(work, capsys)
    assert out[0] == f"sweep s in {work}: not running"
    assert out[1].startswith(f"last run: senet run on {socket.gethostname()} pid ")
    assert "stage1: 1 done, 0 pending" in out and "stage2: 1 done, 0 pending" in out
    assert "stage3: 1 done, 0 pending, 1 failed" in out
    at = next(i for i, line in enumerate(out) if line.startswith("  FAILED  stage3 tau=16: "))
    assert "RuntimeError: Error(s) in loading state_dict" in out[at]
    assert Path(out[at + 1].split("full log: ", 1)[1]).is_file()
    rows = read_records(work, sweep="s", stage=3).to_pylist()
    best = max(r["val_acc"] for r in rows if r["status"] == "completed")
    assert f"best val_acc by budget: 3000: {best:.4f}" in out
    assert out[-1].startswith("1 stage executions left")
    assert not any(line.startswith("ETA") for line in out)  # nothing runs, nothing to time


def test_status_mid_run(
    ran: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The finished workdir, with its tau-2 stage 3 taken out of the store and its trial at
    epoch 1 of 2 (the progress file written by the trial's own code) under the run's lock."""
    work = tmp_path / "work"
    shutil.copytree(ran[0], work)
    plan = json.loads(progress_path(work).read_text())
    node = next(n for n in plan["nodes"] if n["stage"] == 3 and n["labels"]["tau"] == 2.0)
    shutil.move(artifact_dir(work / "store", 3, node["key"]), tmp_path / "aside")
    spec = TrialSpec(work / "store", work, "s", plan["run_id"], "test", 1.0, "cpu")
    progress = TrialProgress(spec, {**node, "config": {"optim": {"epochs": 2}}}, "t1")
    progress.epoch({"epoch": 1, "epochs": 2, "val_acc": 0.375})
    written = read_json(progress_path(work, node["key"]))
    assert written is not None and written["measured"][0] == 1
    with workdir_lock(work, "senet run"):
        out = _status(work, capsys)
    assert out[0].startswith(f"sweep s in {work}: running (senet run on {socket.gethostname()}")
    assert "stage3: 0 done, 1 running, 0 pending, 1 failed" in out
    running = next(line for line in out if line.startswith("  running "))
    assert "stage3 tau=2 epoch 1/2" in running and "s/epoch val 0.3750" in running
    eta = out[-1]
    # 1 epoch measured by the trial + 2 epochs each of stage 1, stage 2 from their meta.json
    assert (
        eta.startswith("ETA ") and "(from 5 measured epochs; 1 execution left, 2 at a time)" in eta
    )
    # The lock released: the same trial reads as interrupted, to be resumed.
    out = _status(work, capsys)
    assert any(line.startswith("  resumes stage3 tau=2 epoch 1/2") for line in out)
    progress.done()
    assert not progress_path(work, node["key"]).exists()


def test_status_of_a_workdir_without_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no run recorded" in err and str(tmp_path) in err
