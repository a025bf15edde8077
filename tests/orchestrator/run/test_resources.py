"""Resources per stage, on a real Ray that declares two GPUs it does not have (Ray schedules on
declared resources): each stage's trial gets its [resources.stageN] share, as Ray reports it
from inside the trial (recorded in the stage's meta.json), and `--device auto` still trains on
the CPU where torch sees no CUDA. The same run ends by compacting a stage with many records."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from support import subprocess_env, write_test_record

from orchestrator.plan.plan import build_plan
from orchestrator.records.read import read_records
from orchestrator.records.write import COMPACTED, COMPACTED_KEYS, partition_dir
from orchestrator.spec.sweep import load_sweep
from stages.artifacts import read_meta

SENET = [sys.executable, "-m", "orchestrator.cli"]
SWEEP = """\
[sweep]
name = "res"
model = "resnet20"
dataset = "digits"
budgets = [3000]
limit = 64
workdir = "{workdir}"

[stage1]
epochs = 1
batch_size = 32

[stage2]
epochs = 1
batch_size = 32

[stage3]
epochs = 1
batch_size = 32

[resources]
cpus = 1
retries = 0

[resources.stage1]
gpus = 1

[resources.stage3]
cpus = 0.5
gpus = 0.5
"""
ASKED = {1: {"CPU": 1.0, "GPU": 1.0}, 2: {"CPU": 1.0, "GPU": 0.0}, 3: {"CPU": 0.5, "GPU": 0.5}}
FAKE = 64  # hand-made stage-3 records of the same sweep: the run-end compaction's threshold


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The sweep run once by `senet run --address` on a two-CPU, two-"GPU" Ray."""
    from ray.cluster_utils import Cluster

    tmp = tmp_path_factory.mktemp("res")
    path = tmp / "res.toml"
    path.write_text(SWEEP.format(workdir=tmp / "work"))
    for i in range(FAKE):
        write_test_record(tmp / "work", "res", 3, f"fake{i:03d}")
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False},
    )
    try:
        cluster.wait_for_nodes()
        out = subprocess.run(
            [*SENET, "run", str(path), "--address", cluster.address],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=600,
        )
    finally:
        cluster.shutdown()
    assert out.returncode == 0, out.stdout + out.stderr
    yield path, out.stdout


def test_each_stage_gets_the_resources_it_asks(ran: tuple[Path, str]) -> None:
    path, stdout = ran
    plan = build_plan(load_sweep(path))
    assert "2 GPUs" in stdout and "stage 3 0.5 CPU / 0.5 GPU" in stdout
    for stage, asked in ASKED.items():
        (node,) = plan.stage(stage)
        meta = read_meta(plan.store.folder(stage, node.key))
        assert meta is not None
        assert meta["provenance"]["resources"] == asked  # what Ray gave, seen in the trial
        # `--device auto` with a GPU granted: CUDA only where torch has it.
        assert meta["device"] == ("cuda" if asked["GPU"] and torch.cuda.is_available() else "cpu")


def test_the_end_of_a_run_compacts_a_stage_with_many_records(ran: tuple[Path, str]) -> None:
    path, stdout = ran
    work = load_sweep(path).workdir
    assert f"records: {FAKE + 1} files folded into one per stage" in stdout
    assert sorted(p.name for p in partition_dir(work, "res", 3).iterdir()) == [
        COMPACTED_KEYS,
        COMPACTED,
    ]
    keys = read_records(work, sweep="res", stage=3)["key"].to_pylist()
    assert len(keys) == len(set(keys)) == FAKE + 1
    (node,) = build_plan(load_sweep(path)).stage(1)  # one record: left a single file
    assert [p.name for p in partition_dir(work, "res", 1).iterdir()] == [f"{node.key}.parquet"]
