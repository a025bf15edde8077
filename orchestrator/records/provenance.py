"""Who ran a stage execution: the provenance a record carries (sweep, run, code, Ray trial,
Slurm job, Optuna trial). Here in records/ because the trial and the driver (run/) sit above
it: every record's provenance is built by `build_provenance`; the Slurm job is read from
orchestrator.slurm_env, the one home of Slurm's facts.
"""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from orchestrator.slurm_env import slurm_task

PACKAGE = "senet-sweep"
# The folder that holds the orchestrator package: a source checkout's root, or site-packages.
TREE = Path(__file__).resolve().parents[2]


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
