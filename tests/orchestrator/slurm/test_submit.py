"""`senet submit` on a real Slurm (slurm/local-cluster.sh up; .ci/run starts it): a sweep as
one job holding a Ray cluster, cancel and resubmit, requeue on a time limit, and refusal of
an impossible request. tests/orchestrator/slurm/conftest.py skips them without a Slurm."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import write_sweep

from orchestrator.records.read import read_records
from orchestrator.records.write import results_dir

pytestmark = pytest.mark.slurm
SENET = [sys.executable, "-m", "orchestrator.cli"]
ROOT = Path(__file__).resolve().parents[3]
ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONUNBUFFERED": "1"}


def senet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        SENET + list(args), capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT
    )


def _state(job_id: str) -> str:
    out = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State"], capture_output=True, text=True
    )
    return (out.stdout.split() or ["UNKNOWN"])[0]


def _records(work: Path, sweep: str) -> list[dict]:
    return read_records(work, sweep=sweep).to_pylist()


def test_submit_wait_runs_the_sweep_in_one_job_with_two_ray_nodes(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path / "s.toml", tmp_path / "work", name="slurm1", budgets=[3000], taus=[2.0, 4.0]
    )
    out = senet("submit", str(path), "--cpus-per-node", "2", "--raylets-per-node", "2", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = out.stdout.split("submitted Slurm job ")[1].split(";")[0]
    assert "Ray: 2 CPUs" in out.stdout  # head and worker raylet, one CPU each
    rows = _records(tmp_path / "work", "slurm1")
    assert sorted(r["stage"] for r in rows) == [1, 2, 3, 3]
    assert {r["slurm_job_id"] for r in rows} == {job_id}
    # The generated sbatch script asks for what we said.
    script = next((tmp_path / "work" / "slurm").glob(f"*/{job_id}_submission.sh")).read_text()
    for line in (
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --open-mode=append",
    ):
        assert line in script, line
    status = senet("status", str(tmp_path / "work"))
    assert status.returncode == 0 and f"Slurm job {job_id}: COMPLETED" in status.stdout
    assert "stage3: 2/2 done" in status.stdout


def test_cancel_then_submit_again_resumes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    path = write_sweep(tmp_path / "s.toml", work, name="slurm2", epochs=6)
    out = senet("submit", str(path), "--cpus-per-node", "2")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.split("submitted Slurm job ")[1].split(";")[0]
    stage2 = results_dir(work) / "sweep=slurm2" / "stage=2"
    deadline = time.monotonic() + 300
    while not (stage2.exists() and any(stage2.glob("*.parquet"))):
        assert time.monotonic() < deadline, "no stage-2 record within 300 s"
        time.sleep(0.5)
    assert senet("cancel", str(work)).returncode == 0
    while _state(job_id) not in ("CANCELLED", "COMPLETED", "FAILED"):
        time.sleep(0.5)
    before = {r["key"]: r for r in _records(work, "slurm2")}
    mtimes = {p: p.stat().st_mtime_ns for p in results_dir(work).rglob("*.parquet")}
    assert 0 < len(before) < 7
    again = senet("submit", str(path), "--cpus-per-node", "2", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = _records(work, "slurm2")
    assert len(rows) == 7 and len({r["key"] for r in rows}) == 7
    for p, t in mtimes.items():
        assert p.stat().st_mtime_ns == t  # finished stages were not run again
    ran = int(again.stdout.split("ran ")[-1].split()[0])
    assert ran == 7 - len(before)


def test_impossible_request_is_refused_at_submit(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "s.toml", tmp_path / "work")
    start = time.monotonic()
    out = senet("submit", str(path), "--cpus-per-node", "64", timeout=120)
    assert out.returncode == 2
    assert "Slurm refused the job" in out.stderr and out.stderr.strip().count("\n") == 0
    assert time.monotonic() - start < 60


def test_bad_signal_delay_is_refused_before_submitting(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "s.toml", tmp_path / "work")
    out = senet("submit", str(path), "--time", "1", "--signal-delay", "45", timeout=60)
    assert out.returncode == 2 and "--signal-delay 45 leaves the job no time" in out.stderr
    assert not (tmp_path / "work" / "slurm").exists()


@pytest.mark.slow
def test_time_limit_requeue_resumes(tmp_path: Path) -> None:
    """A 2-minute limit with the warning 30 s before it: the job stops cleanly, requeues
    (Slurm holds it about 2 minutes) and finishes what is left, running nothing twice.

    The work must outlast the first window on an idle machine, so on a busy one it may need
    more: the wait covers all of submitit's timeout requeues (3, so 4 windows of 60-90 s with
    ~120 s held between them), and the assertions hold however many it took."""
    work = tmp_path / "work"
    # ~95 s of stage work on an idle 2-core machine (7 executions of 80 tiny epochs; 100
    # measured 120 s): more than the first window holds (the warning comes 60-90 s in, Ray
    # takes ~5 s of it), two windows on an idle machine, at most four on a busy one.
    path = write_sweep(tmp_path / "s.toml", work, name="requeue", epochs=80)
    out = senet(
        "submit",
        str(path),
        "--cpus-per-node",
        "2",
        "--time",
        "2",
        "--signal-delay",
        "30",
        "--wait",
        timeout=1000,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "requeueing" in out.stdout and "Requeued job" in out.stdout
    rows = _records(work, "requeue")
    assert len(rows) == 7 and len({r["key"] for r in rows}) == 7
    assert all(r["status"] == "completed" for r in rows)
    starts = sorted(p.name for p in (work / "slurm").glob("*/job*-start*"))
    assert len(starts) >= 2  # the same job started twice
