"""Fixtures of the orchestrator tests: one real local Ray shared by the in-process sweep tests,
and a workdir of hand-made records for the analysis and `senet results` tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import write_two_sweeps


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One real local Ray for the in-process sweep tests (2 CPUs, like this machine)."""
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """Two sweeps' records (support.write_two_sweeps); budget 50k of sweep `a` has a trap: the
    best test_acc is not the best val."""
    return write_two_sweeps(tmp_path)
