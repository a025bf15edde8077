"""`senet verify WORKDIR`: reports every damaged artifact, checkpoint and record in one line
naming the file, repairs them (quarantine; records rebuilt from the store) without running a
stage, and then finds nothing; `--dry-run` moves nothing. Real files and real Parquet."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from orchestrator.cli.main import main
from orchestrator.records.read import read_records
from orchestrator.records.write import reconcile_records, record_path
from orchestrator.run.lock import workdir_lock
from stages.artifacts import META, WEIGHTS, save_artifact, save_state
from stages.store import CHECKPOINT_KEYS, Store


@dataclass(frozen=True)
class _Node:
    stage: int
    key: str


def _workdir(tmp_path: Path) -> tuple[Path, Store, list[Path]]:
    """Four committed artifacts with their records and two checkpoints, then five kinds of
    damage; returns the workdir, its store and the damaged files."""
    work = tmp_path / "work"
    store = Store.of_workdir(work)
    nodes = [_Node(1, "a"), _Node(2, "b"), _Node(3, "c"), _Node(3, "d")]
    for n in nodes:
        meta = {
            "key": n.key,
            "model": "resnet20",
            "dataset": "digits",
            "provenance": {"sweep": "s"},
        }
        save_artifact(store.folder(n.stage, n.key), {"w": torch.randn(500)}, meta)
    reconcile_records(work, "s", store.root, nodes)
    for key in ("e", "f"):
        state = {k: torch.zeros(1) for k in CHECKPOINT_KEYS} | {"model": {"w": torch.randn(500)}}
        save_state(store.checkpoint(3, key), state)

    torn = store.folder(1, "a") / WEIGHTS
    os.truncate(torn, 100)
    garbage_meta = store.folder(2, "b") / META
    garbage_meta.write_text('{"key": "b", ')
    rotten = store.folder(3, "c") / WEIGHTS
    data = bytearray(rotten.read_bytes())
    data[len(data) // 2] ^= 0x10
    rotten.write_bytes(bytes(data))
    ckpt = store.checkpoint(3, "e")
    os.truncate(ckpt, 50)
    record = record_path(work, "s", 3, "d")
    record.write_bytes(b"garbage")
    return work, store, [torn, garbage_meta, rotten, ckpt, record]


def test_verify_reports_and_repairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work, store, damaged = _workdir(tmp_path)

    assert main(["verify", str(work), "--dry-run"]) == 1
    out = capsys.readouterr().out.splitlines()
    reported = [line for line in out if line.startswith("damaged: ")]
    assert len(reported) == 5
    assert all(any(str(path) in line for line in reported) for path in damaged)
    assert not store.quarantine_dir.exists() and all(p.exists() for p in damaged)

    assert main(["verify", str(work)]) == 1
    out = capsys.readouterr().out
    assert out.count("damaged: ") == 5 and "3 records name an artifact" in out
    assert len(list(store.quarantine_dir.iterdir())) == 5  # set aside, nothing deleted
    assert sorted(store.entries()) == [(3, "d")]
    assert not store.checkpoint(3, "e").exists() and store.checkpoint(3, "f").exists()
    rebuilt = read_records(work, sweep="s", stage=3).to_pylist()
    assert {r["key"] for r in rebuilt} == {"c", "d"}  # d's record, rebuilt from its meta
    assert next(r for r in rebuilt if r["key"] == "d")["artifact"] == str(store.folder(3, "d"))

    assert main(["verify", str(work)]) == 0  # whole now
    assert "0 damaged" in capsys.readouterr().out


def test_verify_refuses_while_a_run_holds_the_workdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, store, damaged = _workdir(tmp_path)
    with workdir_lock(work, "senet run"):
        assert main(["verify", str(work)]) == 2
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert all(p.exists() for p in damaged)  # nothing moved under a running sweep


def test_verify_finds_a_checkpoint_that_loads_but_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It loaded, so verify called it healthy, and its stage failed with KeyError: 'model' on
    every rerun."""
    store = Store.of_workdir(tmp_path / "work")
    ckpt = store.checkpoint(2, "g")
    save_state(ckpt, {"weights": torch.zeros(3)})
    assert main(["verify", str(store.root.parent)]) == 1
    out = capsys.readouterr().out
    assert (
        f"damaged: {ckpt}: unreadable epoch checkpoint (NotACheckpoint: loads, but holds no model"
        in out
    )
    assert not ckpt.exists() and len(list(store.quarantine_dir.iterdir())) == 1


def test_verify_finds_and_heals_a_garbled_optuna_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    from orchestrator.search.studies import journal_path, storage

    work = tmp_path / "work"
    study = optuna.create_study(study_name="s", storage=storage(work))
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for _ in range(2):
        study.tell(study.ask(space), 0.5)
    path = journal_path(work)
    path.write_bytes(path.read_bytes() + b"\x00garbage\n")
    assert main(["verify", str(work), "--dry-run"]) == 1
    assert f"damaged: {path}: damaged Optuna journal (line " in capsys.readouterr().out
    assert main(["verify", str(work)]) == 1
    assert main(["verify", str(work)]) == 0
    healed = optuna.load_study(study_name="s", storage=storage(work))
    assert len(healed.trials) == 2
