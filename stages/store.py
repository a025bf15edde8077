"""The content-addressed store as one type: where a stage execution lives, whether it is done,
and whether what it committed is whole. Every "is this node done" goes through `Store`
(the plan, the DAG searcher, the driver, the pipeline), so the store heals in one place.

Done means: `meta.json` parses to an object and every file it lists (`files`, written at
commit) exists with the recorded size. A folder that fails that is damaged: it is moved to
`STORE/quarantine/` (never deleted: nothing is lost), one warning line names the file and the
problem, and the node counts as not done, so the next run recomputes it.

When sha256 is checked (`deep=True`): sizes are a stat per file and catch what a crash or a
full disk leaves (a torn, truncated or empty file), so they are checked on every look. Hashing
reads the whole file, which at every `senet run` start would mean reading every stage-3 model
of the sweep (tens of GB on a large one) to learn nothing. So sha256 is checked only where the
bytes are about to be read anyway: for the parents a stage loads (pipeline.execute), for the
stage-1/2 artifacts a run will read (the driver's plan check), and by `senet verify`. A file
version (path, size, mtime) that hashed correctly is not hashed again in the same process.
Artifacts from before sizes were recorded (no `files` in meta.json) count as done unverified.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import FILES, META, artifact_dir, checkpoint_path, file_digest, load_state

QUARANTINE = "quarantine"
log = logging.getLogger("senet.store")

# (path, size, mtime_ns) of files whose sha256 matched in this process: hashed once.
_HASHED: set[tuple[str, int, int]] = set()


class DamagedArtifact(RuntimeError):
    """A stage's input failed its integrity check; it was quarantined, a rerun recomputes it."""


@dataclass(frozen=True)
class Damage:
    """What is wrong with a committed artifact: the file at fault and the problem."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def quarantine(path: Path, reason: str, into: Path, name: str | None = None) -> Path:
    """Move a damaged file or folder into `into`, as `name` (default: its parent's and its own
    name) plus a UTC time stamp, so two damaged versions never collide and no reader's glob
    (`*.parquet`, `stage*/KEY`) matches it; warn in one line with the reason (which names the
    file at fault) and where it went. Returns the new path."""
    path = Path(path)
    into.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest = into / f"{name or f'{path.parent.name}-{path.name}'}.{stamp}"
    shutil.move(str(path), dest)
    log.warning("senet: warning: %s; moved %s to %s", reason, path, dest)
    return dest


def discard_checkpoint(path: Path, error: BaseException) -> None:
    """Set aside an epoch checkpoint that cannot be loaded, so its stage starts over.
    Checkpoints live in STORE/stage<N>/ (checkpoint_path), so their store is two up."""
    detail = " ".join(f"{type(error).__name__}: {error}".split())[:200]
    reason = f"{path}: unreadable epoch checkpoint ({detail}); the stage starts over"
    quarantine(path, reason, Path(path).parent.parent / QUARANTINE)


# What stages.train.fit writes in an epoch checkpoint and needs back to resume.
CHECKPOINT_KEYS = ("model", "opt", "sched", "best_state", "best_acc", "history", "epoch", "rng")


class NotACheckpoint(ValueError):
    """A file that loads (torch.load) but holds no epoch checkpoint."""


def load_checkpoint(path: Path, device: Any = "cpu") -> dict[str, Any]:
    """An epoch checkpoint's state. Raises what torch.load raises for an unreadable file and
    NotACheckpoint for one that loads but lacks what a resume needs (it used to fail its
    stage with `KeyError: 'model'` on every rerun)."""
    state = load_state(path, device)
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise NotACheckpoint(f"loads, but holds no {', '.join(missing)}")
    return state


def _verify_files(folder: Path, meta: dict[str, Any], deep: bool) -> Damage | None:
    files = meta.get(FILES)
    if files is None:
        return None  # committed before sizes were recorded: unverifiable, trusted
    if not isinstance(files, dict):
        return Damage(folder / META, f"`{FILES}` is not an object")
    for name, want in files.items():
        path = folder / name
        if not isinstance(want, dict):
            return Damage(folder / META, f"`{FILES}.{name}` is not an object")
        try:
            st = path.stat()
        except FileNotFoundError:
            return Damage(path, "missing (meta.json lists it)")
        if st.st_size != want.get("size"):
            return Damage(path, f"{st.st_size} bytes, meta.json recorded {want.get('size')}")
        version = (str(path), st.st_size, st.st_mtime_ns)
        if deep and version not in _HASHED:
            if file_digest(path)["sha256"] != want.get("sha256"):
                return Damage(path, "sha256 differs from the one meta.json recorded")
            _HASHED.add(version)
    return None


def inspect(folder: Path, deep: bool = False) -> tuple[dict[str, Any] | None, Damage | None]:
    """(meta, None) for a whole committed artifact, (None, None) for an unfinished one,
    (None, damage) for a damaged one. Reads only; moves nothing."""
    path = Path(folder) / META
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, None
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, Damage(path, f"unreadable ({' '.join(str(e).split())[:200]})")
    if not isinstance(meta, dict) or "key" not in meta:
        return None, Damage(path, "not a stage's metadata (no `key`)")
    damage = _verify_files(Path(folder), meta, deep)
    return (None, damage) if damage else (meta, None)


class Store(os.PathLike[str]):
    """A workdir's content-addressed store (STORE = <workdir>/store). Path-like, so
    `Path(store)` and `str(store)` give its folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def of_workdir(cls, workdir: Path | str) -> Store:
        return cls(Path(workdir) / "store")

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE

    def folder(self, stage: int, key: str) -> Path:
        return artifact_dir(self.root, stage, key)

    def checkpoint(self, stage: int, key: str) -> Path:
        return checkpoint_path(self.root, stage, key)

    def meta(self, stage: int, key: str, deep: bool = False) -> dict[str, Any] | None:
        """The committed metadata of a whole artifact; None if unfinished. A damaged one is
        quarantined (one warning naming the file) and reads as unfinished, to be recomputed."""
        folder = self.folder(stage, key)
        meta, damage = inspect(folder, deep)
        if damage is not None:
            self.set_aside(folder, damage)
        return meta

    def is_done(self, stage: int, key: str, deep: bool = False) -> bool:
        return self.meta(stage, key, deep) is not None

    def require(self, stage: int, key: str) -> Path:
        """The folder of an input a stage is about to load, checked in full (sha256). Raises
        DamagedArtifact (after quarantining it) or FileNotFoundError, naming the file."""
        folder = self.folder(stage, key)
        meta, damage = inspect(folder, deep=True)
        if damage is not None:
            self.set_aside(folder, damage)
            raise DamagedArtifact(f"{damage}; quarantined, rerun to recompute stage {stage}")
        if meta is None:
            raise FileNotFoundError(f"stage {stage} artifact {folder} is not finished (no {META})")
        return folder

    def set_aside(self, folder: Path, damage: Damage) -> Path | None:
        """Quarantine a damaged artifact folder; None if another process already moved it."""
        try:
            return quarantine(folder, f"{damage}; it will be recomputed", self.quarantine_dir)
        except FileNotFoundError:
            return None

    def entries(self) -> Iterator[tuple[int, str]]:
        """(stage, key) of every artifact folder in the store, committed or not."""
        for stage_dir in sorted(self.root.glob("stage*")):
            m = re.fullmatch(r"stage(\d+)", stage_dir.name)
            if not m or not stage_dir.is_dir():
                continue
            for folder in sorted(stage_dir.iterdir()):
                if folder.is_dir() and not folder.name.startswith("."):
                    yield int(m.group(1)), folder.name

    def checkpoints(self) -> Iterator[Path]:
        """Every epoch checkpoint (an unfinished stage's `.KEY.ckpt`)."""
        yield from sorted(self.root.glob("stage*/.*.ckpt"))
