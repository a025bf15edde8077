"""Who ran a stage execution: the provenance a record carries (sweep, run, code, Ray trial,
Slurm job, Optuna trial), and the Slurm task this process belongs to.

One home for both, here in records/ because the trial and the driver (run/) and the Slurm
node runner (slurm/) all sit above it: every record's provenance is built by
`build_provenance`, and every Slurm fact (job id, rank, tasks, nodes, restart count) is read
through `slurm_task`, from submitit's JobEnvironment.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGE = "senet-sweep"
# The folder that holds the orchestrator package: a source checkout's root, or site-packages.
TREE = Path(__file__).resolve().parents[2]


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


def build_provenance(
    sweep: str,
    run_id: str,
    code_version: str | None = None,
    ray_trial_id: str | None = None,
    optuna_study: str | None = None,
    optuna_trial: int | None = None,
) -> dict[str, Any]:
    """The provenance of one stage execution, as stored in its meta.json and its record. The
    Slurm job is this process's own (a trial's worker and the driver share the job)."""
    return {
        "sweep": sweep,
        "run_id": run_id,
        "code_version": code_version,
        "ray_trial_id": ray_trial_id,
        "slurm_job_id": slurm_task().job_id,
        "optuna_study": optuna_study,
        "optuna_trial": optuna_trial,
    }


def code_version(tree: Path = TREE) -> str:
    """The package's version from its metadata, plus `+git.<describe>` only when the code
    runs from its own source checkout (git's toplevel is the tree holding the package): an
    installed wheel inside the user's own repository must not record the user's commit."""
    try:
        v = version(PACKAGE)
    except PackageNotFoundError:  # the source tree on sys.path, never installed
        v = "unknown"
    top = _git(tree, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != tree.resolve():
        return v
    described = _git(tree, "describe", "--always", "--dirty")
    return f"{v}+git.{described}" if described else v


def _git(cwd: Path, *args: str) -> str | None:
    """git's one-line answer in `cwd`, or None (no git, not a repository, too slow)."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
