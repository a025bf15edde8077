"""The Slurm tests need a Slurm answering: skipped without one, failed without one in CI."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture(scope="module", autouse=True)
def slurm_up() -> None:
    ok = (
        subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
        if _has("sinfo")
        else False
    )
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(
                "no Slurm answering: .ci/run starts it with `bash slurm/local-cluster.sh up`"
            )
        pytest.skip("no local Slurm: start one with `bash slurm/local-cluster.sh up`")


def _has(cmd: str) -> bool:
    from shutil import which

    return which(cmd) is not None
