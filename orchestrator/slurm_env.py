"""The Slurm facts of this process, in one bottom-level module: which task of which job it is
(job id, rank, tasks, nodes, restart count, hostnames) and what the allocation gives it
(CPUs, GPUs, memory). The records' provenance (records/) and the node runner (slurm/) both
read them here, so neither sits above the other to reach them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class SlurmTask:
    """This process's place in a Slurm job; `job_id` None outside Slurm."""

    job_id: str | None
    rank: int = 0  # SLURM_PROCID: task 0 runs the Ray head and the driver
    ntasks: int = 1
    nodes: int = 1
    restart: int = 0  # SLURM_RESTART_COUNT: a requeued job starts a new Ray cluster
    local_rank: int = 0  # SLURM_LOCALID: this task's place among its node's tasks
    hostnames: tuple[str, ...] = ()  # SLURM_JOB_NODELIST, expanded: the job's nodes at start


def slurm_task() -> SlurmTask:
    """The Slurm task from submitit's SlurmJobEnvironment, which reads Slurm's variables.
    It is built directly rather than through `submitit.JobEnvironment()`, which recognises
    only jobs submitit launched: slurm/ray-sweep.sbatch runs under plain sbatch. The restart
    count is the one fact submitit does not give."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    env = SlurmJobEnvironment()
    try:
        job_id = env.job_id
    except KeyError:  # no SLURM_JOB_ID: not in a Slurm job
        return SlurmTask(None)
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    return SlurmTask(
        job_id,
        env.global_rank,
        env.num_tasks,
        env.num_nodes,
        restart,
        env.local_rank,
        tuple(env.hostnames),
    )


def slurm_resources(env: dict[str, str] | os._Environ[str] | None = None) -> dict[str, int]:
    """CPUs, GPUs and memory (bytes) this task may use, from Slurm's environment."""
    env = os.environ if env is None else env
    cpus = int(
        env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or os.cpu_count() or 1
    )
    gpus = int(env.get("SLURM_GPUS_ON_NODE") or 0)
    if not gpus and env.get("CUDA_VISIBLE_DEVICES"):
        gpus = len([d for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d])
    mem_mb = int(env.get("SLURM_MEM_PER_NODE") or 0)
    if not mem_mb and env.get("SLURM_MEM_PER_CPU"):
        mem_mb = int(env["SLURM_MEM_PER_CPU"]) * cpus
    return {"cpus": cpus, "gpus": gpus, "memory": mem_mb * 1024 * 1024}
