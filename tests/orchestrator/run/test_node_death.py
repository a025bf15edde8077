"""A Ray worker node dies mid-stage: on a real multi-node Ray (ray.cluster_utils.Cluster), the
node running a stage is killed after its first epoch checkpoint and a fresh node joins; Tune
retries the trial (`retries` in [resources]) and the stage resumes from its epoch checkpoint,
the sweep completes and the stage has exactly one `completed` record.

The node dies as a machine that loses power does: the stage's process is frozen (SIGSTOP) once
it has checkpointed its first epoch, then the node and that process are killed, so nothing
trains on after the kill. Ray runs its workers at niceness 15: on a loaded machine a stage there
crawls (seen: 10 s for an epoch that takes 0.1 s idle), so stage 1 is kept to EPOCHS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import tune_reports, wait_while_running, write_sweep

from orchestrator.plan.plan import build_plan
from orchestrator.records.read import read_records
from orchestrator.run.status import progress_path, read_json
from orchestrator.spec.sweep import load_sweep
from stages.artifacts import META, artifact_dir, checkpoint_path, load_state

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 20  # stage 1: still running when its first epoch is seen, idle or loaded
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


def _running_pid(work: Path, key: str) -> int | None:
    """The pid of the process running the stage of `key` once it has finished an epoch (its
    progress file, written after each epoch's checkpoint), else None."""
    data = read_json(progress_path(work, key))
    return int(data["pid"]) if data is not None and int(data["epoch"]) >= 1 else None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone with its node already
        os.kill(pid, signal.SIGKILL)


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
    frozen = None  # the stage's pid while it is frozen and not yet killed
    try:
        wait_while_running(
            "stage 1's first epoch",
            lambda: _running_pid(work, n1.key) is not None,
            proc,
            log,
            300,
        )
        pid = _running_pid(work, n1.key)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        frozen = pid
        at_death = _epoch(ckpt)
        done = artifact_dir(plan.store, 1, n1.key) / META
        assert not done.exists(), f"stage 1 finished before it was frozen: raise EPOCHS ({EPOCHS})"
        (worker,) = cluster.worker_nodes  # type: ignore[attr-defined]
        cluster.remove_node(worker, allow_graceful=False)  # type: ignore[attr-defined]
        _kill(pid)  # frozen, it cannot see its raylet go
        frozen = None
        cluster.add_node(num_cpus=1)  # type: ignore[attr-defined]
        # 900 s guards against a hang only: with four busy loops on two cores, 558 s passed
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if frozen is not None:  # never leave a frozen process behind
            _kill(frozen)
    text = log.read_text()
    rows = read_records(work, sweep="death").to_pylist()
    mine = [r for r in rows if r["key"] == n1.key]
    assert [r["status"] for r in mine] == ["completed"], mine
    assert sorted(r["stage"] for r in rows) == [1, 2, 3]
    assert {r["status"] for r in rows} == {"completed"}, text[-3000:]
    # Two attempts: the frozen one reported epochs 1..a (each epoch checkpoints before it
    # reports, and a report in flight is lost with the node, so a <= its last checkpoint);
    # the retry, another process, started right after that checkpoint, not at epoch 1, and
    # reported every epoch from there to the end.
    reports = tune_reports(work, n1.key)
    first = [e for p, e in reports if p == pid]
    second = [e for p, e in reports if p != pid]
    assert len({p for p, _ in reports if p != pid}) == 1, reports
    assert first == list(range(1, len(first) + 1)), reports
    assert len(first) <= at_death, (at_death, reports)
    assert second == list(range(at_death + 1, EPOCHS + 1)), (at_death, reports)
    history = json.loads((artifact_dir(plan.store, 1, n1.key) / META).read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert not ckpt.exists()  # committed: the checkpoint is dropped
