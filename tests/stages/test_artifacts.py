"""The one writer: files are as readable as the umask allows (mkstemp alone would make every
artifact and record 0600, unreadable to colleagues sharing a project folder)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stages.artifacts import META, WEIGHTS, atomic_write_bytes, save_artifact, umask


@pytest.fixture
def restore_umask() -> Iterator[None]:
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_written_files_follow_the_umask(tmp_path: Path, restore_umask: None, mask: int) -> None:
    os.umask(mask)
    assert umask() == mask
    atomic_write_bytes(tmp_path / "a" / "record.parquet", b"x")
    folder = save_artifact(tmp_path / "stage1" / "k", {"w": torch.zeros(3)}, {"key": "k"})
    want = 0o666 & ~mask
    for path in (tmp_path / "a" / "record.parquet", folder / WEIGHTS, folder / META):
        assert _mode(path) == want, (path, oct(_mode(path)), oct(want))
    assert not list(tmp_path.rglob("*.tmp"))  # no temp file left behind


def test_the_one_writer_replaces_a_planted_symlink_and_never_follows_it(tmp_path: Path) -> None:
    """Every file a run writes in the workdir (store, records, progress, the searcher's Tune
    state) goes through atomic_write_bytes: a rename replaces a symlink at the path, so one
    planted in a shared workdir cannot make a run overwrite its target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    path = tmp_path / "work" / "meta.json"
    path.parent.mkdir()
    path.symlink_to(victim)
    atomic_write_bytes(path, b"{}")
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink() and path.read_bytes() == b"{}"


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    """torch's writer said `unexpected pos N vs M`; now every write of a run says the path
    and "no space left on device", and no temp file or torn file stays behind."""
    from support import tmpfs

    from stages.artifacts import DiskFullError, save_state

    mnt = tmp_path / "mnt"
    with tmpfs(mnt, "64k"):
        path = mnt / "store" / "stage1" / ".k.ckpt"
        with pytest.raises(DiskFullError) as e:
            save_state(path, {"w": torch.zeros(100_000)})
        assert (
            str(e.value) == f"{path}: no space left on device; free some and rerun the same command"
        )
        assert list(path.parent.iterdir()) == []
