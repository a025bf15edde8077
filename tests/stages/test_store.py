"""The store as one type: what is done is committed and whole; a torn, rotten or garbage
artifact is quarantined with one warning naming the file, and reads as not done."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from stages.artifacts import FILES, META, WEIGHTS, save_artifact
from stages.store import DamagedArtifact, Store


def _commit(store: Store, stage: int, key: str) -> Path:
    folder = store.folder(stage, key)
    save_artifact(folder, {"w": torch.arange(1000.0)}, {"stage": stage, "key": key})
    return folder


def _one_warning(caplog: pytest.LogCaptureFixture, names: Path) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1, lines
    assert str(names) in lines[0] and "\n" not in lines[0]
    return lines[0]


def test_commit_records_size_and_sha256_and_a_whole_artifact_is_done(tmp_path: Path) -> None:
    store = Store(tmp_path)
    folder = _commit(store, 1, "k")
    files = json.loads((folder / META).read_text())[FILES]
    assert files[WEIGHTS]["size"] == (folder / WEIGHTS).stat().st_size
    assert len(files[WEIGHTS]["sha256"]) == 64
    assert store.is_done(1, "k", deep=True) and store.require(1, "k") == folder
    assert not store.is_done(1, "absent") and not store.quarantine_dir.exists()


def test_truncated_weights_are_quarantined_and_not_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    folder = _commit(store, 1, "k")
    weights = folder / WEIGHTS
    half = weights.stat().st_size // 2
    os.truncate(weights, half)
    assert not store.is_done(1, "k")  # sizes: checked on every look
    assert "bytes, meta.json recorded" in _one_warning(caplog, weights)
    assert not folder.exists()
    [moved] = store.quarantine_dir.iterdir()
    assert (moved / WEIGHTS).stat().st_size == half  # kept as it was: nothing is lost


def test_rotten_bytes_of_the_right_size_fail_the_deep_check_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    folder = _commit(store, 2, "k")
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-100] ^= 0xFF  # one flipped byte: same size
    (folder / WEIGHTS).write_bytes(bytes(data))
    assert store.is_done(2, "k")  # sizes only: still looks done
    with pytest.raises(DamagedArtifact, match="sha256"):
        store.require(2, "k")  # a stage about to load it checks the hash
    _one_warning(caplog, folder / WEIGHTS)
    assert not store.is_done(2, "k") and len(list(store.quarantine_dir.iterdir())) == 1


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00", b"[1, 2]"])
def test_garbage_meta_is_quarantined_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    store = Store(tmp_path)
    folder = _commit(store, 3, "k")
    (folder / META).write_bytes(garbage)
    assert store.meta(3, "k") is None
    _one_warning(caplog, folder / META)
    assert not folder.exists() and len(list(store.quarantine_dir.iterdir())) == 1


def test_an_artifact_from_before_checksums_is_trusted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    folder = _commit(store, 1, "old")
    meta = json.loads((folder / META).read_text())
    del meta[FILES]
    (folder / META).write_text(json.dumps(meta))
    assert store.is_done(1, "old", deep=True)


def test_entries_list_every_artifact_folder(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _commit(store, 1, "a")
    _commit(store, 3, "b")
    (tmp_path / "stage2" / "unfinished").mkdir(parents=True)
    assert sorted(store.entries()) == [(1, "a"), (2, "unfinished"), (3, "b")]
