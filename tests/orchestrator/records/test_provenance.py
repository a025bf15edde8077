"""Provenance: every provenance field landing in its record column, for committed and
uncommitted executions (the Slurm task itself: tests/orchestrator/test_slurm_env.py)."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from orchestrator.records.provenance import PACKAGE, build_provenance, code_version
from orchestrator.records.read import read_records
from orchestrator.records.schema import SCHEMA
from orchestrator.records.write import write_committed, write_uncommitted


@pytest.fixture
def no_slurm(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process outside any Slurm job (these tests may themselves run inside one)."""
    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_the_slurm_job_reaches_the_provenance(no_slurm: pytest.MonkeyPatch) -> None:
    assert build_provenance("s", "r")["slurm_job_id"] is None
    no_slurm.setenv("SLURM_JOB_ID", "4242")
    assert build_provenance("s", "r")["slurm_job_id"] == "4242"


def _provenance(no_slurm: pytest.MonkeyPatch) -> dict:
    no_slurm.setenv("SLURM_JOB_ID", "77")
    return build_provenance("sw", "run-1", "abc123", "trial_9", "sw-budget3000", 4)


def test_every_provenance_field_reaches_a_committed_record(
    tmp_path: Path, no_slurm: pytest.MonkeyPatch
) -> None:
    prov = _provenance(no_slurm)
    assert set(prov) - {"sweep"} <= set(SCHEMA.names)  # `sweep` is the partition column
    meta = {"key": "k1", "model": "resnet20", "dataset": "digits", "provenance": prov}
    write_committed(tmp_path, "sw", 3, meta, tmp_path / "store" / "stage3" / "k1")
    (row,) = read_records(tmp_path, sweep="sw").to_pylist()
    assert {k: row[k] for k in prov} == prov
    assert row["status"] == "completed"  # the provenance names this sweep


def test_every_provenance_field_reaches_a_failed_record(
    tmp_path: Path, no_slurm: pytest.MonkeyPatch
) -> None:
    prov = _provenance(no_slurm)
    node = {
        "stage": 3,
        "key": "k2",
        "config": {"tau": 4.0, "optim": {"lr": 0.01, "epochs": 3}},
        "stage1_key": "a",
        "stage2_key": "b",
        "labels": {"budget": 3000, "seed": 0},
    }
    write_uncommitted(tmp_path, "sw", node, "resnet20", "digits", "failed", prov, "boom")
    (row,) = read_records(tmp_path, sweep="sw").to_pylist()
    assert {k: row[k] for k in prov} == prov
    assert (row["status"], row["error"], row["parent_key"], row["budget"]) == (
        "failed",
        "boom",
        "b",
        3000,
    )


def test_code_version_is_the_package_version_plus_git_only_in_its_own_checkout(
    tmp_path: Path,
) -> None:
    package = version(PACKAGE)
    here = code_version()  # this clone: its own git toplevel
    assert here.startswith(f"{package}+git.") and len(here) > len(package) + 5
    # An installed package inside the user's own repository: that repository's commit is
    # not the code's version.
    repo = tmp_path / "user-project"
    site = repo / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert code_version(site) == package
    assert code_version(tmp_path) == package  # no repository at all (tmp_path is not one)
