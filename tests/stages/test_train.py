"""fit()'s epoch checkpoint: an unreadable one (a torn write, a full disk) is set aside with
one warning naming it, and its stage starts over instead of failing on every rerun."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from stages.artifacts import checkpoint_path, content_key, read_meta, save_state
from stages.config import DataConfig, OptimConfig, Stage1Config
from stages.pipeline import execute
from stages.store import Store


class Epochs:
    """An on_epoch callback that records epochs and can interrupt after one, as Ctrl-C would."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.seen: list[int] = []

    def __call__(self, row: dict[str, Any]) -> None:
        self.seen.append(row["epoch"])
        if row["epoch"] == self.stop_after:
            raise KeyboardInterrupt


def _torn(ckpt: Path) -> None:
    os.truncate(ckpt, ckpt.stat().st_size // 3)


def _not_a_checkpoint(ckpt: Path) -> None:
    """A file that loads but lacks what a resume needs: it failed with KeyError: 'model'."""
    save_state(ckpt, {"weights": torch.zeros(3)})


@pytest.mark.parametrize("damage", [_torn, _not_a_checkpoint])
def test_a_damaged_checkpoint_restarts_the_stage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    cfg = Stage1Config(
        "resnet20", DataConfig("synthetic", limit=48), optim=OptimConfig(epochs=2, batch_size=16)
    )
    key = content_key(1, cfg)
    ckpt = checkpoint_path(tmp_path, 1, key)
    with pytest.raises(KeyboardInterrupt):
        execute(1, cfg, tmp_path, key, on_epoch=Epochs(stop_after=1), device="cpu")
    damage(ckpt)
    torn = ckpt.stat().st_size

    rows = Epochs()
    result = execute(1, cfg, tmp_path, key, on_epoch=rows, device="cpu")
    assert rows.seen == [1, 2]  # started over: not resumed at epoch 2, not failed
    meta = read_meta(Path(result.artifact))
    assert meta and [row["epoch"] for row in meta["history"]] == [1, 2]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(ckpt) in line and "unreadable epoch checkpoint" in line
    [kept] = Store(tmp_path).quarantine_dir.iterdir()  # set aside, not deleted
    assert kept.stat().st_size == torn and not ckpt.exists()
