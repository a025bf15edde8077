"""execute() goes through the Store: a damaged artifact is recomputed, not loaded, so the
stages that depend on it succeed on the rerun instead of failing on every one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stages.artifacts import WEIGHTS, read_meta
from stages.config import DataConfig, OptimConfig, Stage1Config, Stage2Config, Stage3Config
from stages.pipeline import run_pipeline, stage_keys
from stages.store import DamagedArtifact, Store

OPTIM = OptimConfig(epochs=1, batch_size=16)
S1 = Stage1Config("resnet20", DataConfig("synthetic", limit=48), optim=OPTIM)
S2 = Stage2Config(budget=2000, optim=OPTIM)


def _s3(tau: float) -> Stage3Config:
    return Stage3Config(tau=tau, optim=OPTIM)


def test_damaged_parents_are_recomputed_and_their_dependants_succeed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    r1, r2, _ = run_pipeline(S1, S2, _s3(4.0), tmp_path, device="cpu")
    first = read_meta(Path(r1.artifact))["finished_at"]  # type: ignore[index]

    # A torn stage-1 model (a crash mid-copy, a full disk): seen by its size, recomputed.
    weights1 = Path(r1.artifact) / WEIGHTS
    os.truncate(weights1, weights1.stat().st_size - 1)
    n1, _, n3 = run_pipeline(S1, S2, _s3(2.0), tmp_path, device="cpu")
    assert read_meta(Path(n1.artifact))["finished_at"] > first  # type: ignore[index]
    assert read_meta(Path(n3.artifact)) is not None  # the new stage 3 loaded the new teacher
    assert len(list(store.quarantine_dir.iterdir())) == 1

    # Rotten bytes of the right size in the stage-2 model: the stage that loads it checks the
    # hash, refuses naming the file, and quarantines it; the rerun recomputes it.
    weights2 = Path(r2.artifact) / WEIGHTS
    data = bytearray(weights2.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights2.write_bytes(bytes(data))
    with pytest.raises(DamagedArtifact, match=str(weights2)):
        run_pipeline(S1, S2, _s3(8.0), tmp_path, device="cpu")
    assert len(list(store.quarantine_dir.iterdir())) == 2
    k1, k2, k3 = stage_keys(S1, S2, _s3(8.0))
    assert not store.is_done(2, k2)
    results = run_pipeline(S1, S2, _s3(8.0), tmp_path, device="cpu")
    assert [r.key for r in results] == [k1, k2, k3]
    assert all(store.is_done(s, k, deep=True) for s, k in ((1, k1), (2, k2), (3, k3)))
