"""A Ray worker node dies mid-stage: on a real multi-node Ray (ray.cluster_utils.Cluster), the
node running a stage is killed after its first epoch checkpoint and a fresh node joins; Tune
retries the trial (`retries` in [resources]) and the stage resumes from its epoch checkpoint,
the sweep completes and the stage has exactly one `completed` record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_while_running, write_sweep

from orchestrator.plan.plan import build_plan
from orchestrator.records.read import read_records
from orchestrator.spec.sweep import load_sweep
from stages.artifacts import META, artifact_dir, checkpoint_path, load_state

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 60  # stage 1: a window of many epochs between the first checkpoint and the end
# Fast node-death detection: the GCS marks a silent raylet dead after ~1.5 s, not ~30 s.
HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


@pytest.fixture
def cluster() -> Iterator[object]:
    """A head with no CPUs (so no stage can run there: every trial lands on a worker node) and
    one worker node with the CPU a stage needs."""
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 0, "_system_config": HEALTH},
    )
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


def _epoch(ckpt: Path) -> int:
    try:
        return int(load_state(ckpt)["epoch"]) if ckpt.exists() else 0
    except (OSError, RuntimeError, EOFError):  # replaced while we read it
        return 0


def _reports(work: Path, key: str) -> list[tuple[int, int]]:
    """(pid, epoch) of every per-epoch result Tune logged for the trial of `key`, in order."""
    rows = []
    for path in sorted((work / "tune").rglob("result.json")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("key") == key and "epoch" in row and not row.get("stage_done"):
                rows.append((int(row["pid"]), int(row["epoch"])))
    return rows


@pytest.mark.slow
def test_a_dying_worker_node_resumes_its_stage_from_the_epoch_checkpoint(
    tmp_path: Path, cluster: object
) -> None:
    work = tmp_path / "work"
    path = write_sweep(tmp_path / "s.toml", work, name="death", budgets=[3000], taus=[4.0])
    path.write_text(
        path.read_text()
        .replace("[stage1]\nepochs = 1", f"[stage1]\nepochs = {EPOCHS}")
        .replace("retries = 0", "retries = 1")
    )
    plan = build_plan(load_sweep(path))
    (n1,) = plan.stage(1)
    ckpt = checkpoint_path(plan.store, 1, n1.key)
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "orchestrator.cli", "run", str(path)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*cmd, "--address", cluster.address],  # type: ignore[attr-defined]
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    try:
        wait_while_running("stage-1 epoch checkpoint", lambda: _epoch(ckpt) >= 1, proc, log, 300)
        (worker,) = cluster.worker_nodes  # type: ignore[attr-defined]
        cluster.remove_node(worker, allow_graceful=False)  # type: ignore[attr-defined]
        at_death = _epoch(ckpt)
        done = artifact_dir(plan.store, 1, n1.key) / META
        assert not done.exists(), f"stage 1 finished before its node died: raise EPOCHS ({EPOCHS})"
        cluster.add_node(num_cpus=1)  # type: ignore[attr-defined]
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    rows = read_records(work, sweep="death").to_pylist()
    mine = [r for r in rows if r["key"] == n1.key]
    assert [r["status"] for r in mine] == ["completed"], mine
    assert sorted(r["stage"] for r in rows) == [1, 2, 3]
    assert {r["status"] for r in rows} == {"completed"}, text[-3000:]
    # Two attempts: the first reported epochs 1..a on the dead node (a report in flight may
    # be lost with it); the retry started right after the checkpoint the dead node left, not
    # at epoch 1, and reported every epoch from there to the end. The dead node's worker can
    # train on for a few epochs before it notices its raylet is gone (seen on a loaded
    # machine: the checkpoint said epoch 1 at the kill, the first attempt reported up to 4),
    # so the retry resumes from the last checkpoint, at or after the one seen at the kill.
    reports = _reports(work, n1.key)
    pids = list(dict.fromkeys(pid for pid, _ in reports))
    assert len(pids) == 2, reports
    first = [e for pid, e in reports if pid == pids[0]]
    second = [e for pid, e in reports if pid == pids[1]]
    assert first == list(range(1, len(first) + 1)), reports
    resumed_from = second[0] - 1
    assert 1 <= at_death <= resumed_from <= len(first) + 1, (at_death, reports)
    assert second == list(range(resumed_from + 1, EPOCHS + 1)), reports
    history = json.loads((artifact_dir(plan.store, 1, n1.key) / META).read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert not ckpt.exists()  # committed: the checkpoint is dropped
