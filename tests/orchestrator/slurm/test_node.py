"""The plain sbatch script (slurm/ray-sweep.sbatch), which runs orchestrator.slurm.node in
every task, on a real Slurm. tests/orchestrator/slurm/conftest.py skips it without a Slurm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import subprocess_env, write_sweep

from orchestrator.records.read import read_records

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[3]


def _records(work: Path, sweep: str) -> list[dict]:
    return read_records(work, sweep=sweep).to_pylist()


def test_plain_sbatch_script(tmp_path: Path) -> None:
    work = tmp_path / "work"
    path = write_sweep(tmp_path / "s.toml", work, name="sbatch", budgets=[3000], taus=[2.0])
    env = subprocess_env(SWEEP=str(path), VENV=str(Path(sys.executable).parent.parent))
    out = subprocess.run(
        [
            "sbatch",
            "--wait",
            f"--output={tmp_path}/job-%j.out",
            str(ROOT / "slurm" / "ray-sweep.sbatch"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    log = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert out.returncode == 0, out.stdout + out.stderr + log
    rows = _records(work, "sbatch")
    assert sorted(r["stage"] for r in rows) == [1, 2, 3]
    assert all(r["slurm_job_id"] for r in rows)
