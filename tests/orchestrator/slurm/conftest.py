"""The Slurm tests (marked `slurm`) need a Slurm answering: skipped without one, failed without
one in CI. Unmarked tests here (refusals before anything reaches Slurm) always run."""

from __future__ import annotations

import functools
import os
import subprocess
from shutil import which

import pytest


@functools.cache
def _slurm_answers() -> bool:
    if which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(autouse=True)
def slurm_up(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slurm") is None or _slurm_answers():
        return
    if os.environ.get("CI"):
        pytest.fail("no Slurm answering: .ci/run starts it with `bash slurm/local-cluster.sh up`")
    pytest.skip("no local Slurm: start one with `bash slurm/local-cluster.sh up`")
