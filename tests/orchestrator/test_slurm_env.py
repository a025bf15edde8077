"""orchestrator/slurm_env.py: Slurm's variables read through submitit into this task's place
in its job, and the allocation's CPUs, GPUs and memory."""

from __future__ import annotations

import pytest

from orchestrator.slurm_env import SlurmTask, slurm_resources, slurm_task

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_NUM_NODES")
MORE_VARS = ("SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT")


@pytest.fixture
def no_slurm(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process outside any Slurm job (these tests may themselves run inside one)."""
    for var in (*SLURM_VARS, *MORE_VARS, "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_outside_slurm_the_task_is_a_lone_local_one(no_slurm: pytest.MonkeyPatch) -> None:
    assert slurm_task() == SlurmTask(None, rank=0, ntasks=1, nodes=1, restart=0)


def test_a_requeued_task_of_a_two_node_job(no_slurm: pytest.MonkeyPatch) -> None:
    values = dict(zip(SLURM_VARS, ("4242", "3", "4", "2")))
    for var, value in values.items():
        no_slurm.setenv(var, value)
    no_slurm.setenv("SLURM_RESTART_COUNT", "2")
    no_slurm.setenv("SLURM_LOCALID", "1")
    no_slurm.setenv("SLURM_JOB_NODELIST", "node[2,5]")
    assert slurm_task() == SlurmTask(
        "4242", rank=3, ntasks=4, nodes=2, restart=2, local_rank=1, hostnames=("node2", "node5")
    )


def test_slurm_resources_come_from_slurms_variables() -> None:
    res = slurm_resources({"SLURM_CPUS_PER_TASK": "3", "SLURM_MEM_PER_CPU": "100"})
    assert res == {"cpus": 3, "gpus": 0, "memory": 300 * 1024 * 1024}
