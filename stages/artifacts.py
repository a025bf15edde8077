"""Stage artifacts: a state dict plus JSON metadata, written atomically, named by content.

A stage's output folder holds `model.pt` and `meta.json`; `meta.json` is written last, so its
presence is the commit mark: a folder without it is an interrupted run, never a result.
`meta.json` also records the size and sha256 of every file it commits (`files`), so a torn or
rotten file is detected (stages/store.py) rather than loaded.
The content key hashes the stage's config with its upstream keys, so the same work always maps
to the same folder and is computed at most once.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


META = "meta.json"
WEIGHTS = "model.pt"
FILES = "files"  # meta.json's record of the committed files: {name: {"size", "sha256"}}


def jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def content_key(stage: int, config: Any, parents: list[str] | tuple[str, ...] = ()) -> str:
    """Stable hash of (stage, config, upstream keys): the identity of a stage execution."""
    payload = json.dumps(
        {"stage": stage, "config": jsonable(config), "parents": list(parents)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def umask() -> int:
    """The process's umask, read without changing it (/proc on Linux; elsewhere set and
    restored, which is racy only against another thread changing it at the same moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class DiskFullError(OSError):
    """A write the filesystem refused for want of space (or quota): one line naming the file.
    Nothing half-written stays (the temp file is removed), so rerunning the same command
    after freeing space resumes. OSError's own arguments (errno, strerror, filename), so Ray
    can copy and pickle it back to the driver."""

    def __str__(self) -> str:
        return f"{self.filename}: no space left on device; free some and rerun the same command"


_FULL = {errno.ENOSPC, errno.EDQUOT}
NEARLY_FULL = 1 << 20  # bytes free under which a library's failed write is read as a full disk


def full_disk(folder: Path) -> DiskFullError | None:
    """DiskFullError naming `folder` where its filesystem has (nearly) no space left, else None:
    for the writes of libraries (Ray Tune's experiment state) that fail in their own words."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize >= NEARLY_FULL:
        return None
    return DiskFullError(errno.ENOSPC, "no space left on device", str(folder))


def _atomic_write(path: Path, write: Any) -> None:
    """The one writer of the store, the records and the Slurm state. mkstemp creates its file
    0600; it is widened to what the umask allows (0666 & ~umask, as open() would have made
    it), so colleagues sharing a project folder can read the results."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in _FULL and not isinstance(e, DiskFullError):
            raise DiskFullError(e.errno, "no space left on device", str(path)) from e
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a torn one."""
    _atomic_write(Path(path), lambda f: f.write(data))


def save_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temp file and rename. Serialised in memory first: torch's writer
    turns a full disk into `unexpected pos N vs M`, a plain write says ENOSPC (DiskFullError)."""
    import torch  # here, not at the top: the records and the store need no torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_state(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load with weights_only=True: artifacts may come from a shared filesystem."""
    import torch

    state: dict[str, Any] = torch.load(Path(path), map_location=device, weights_only=True)
    return state


def file_digest(path: Path) -> dict[str, Any]:
    """{"size": bytes, "sha256": hex} of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"size": size, "sha256": h.hexdigest()}


def save_artifact(folder: Path, state_dict: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Weights first, metadata last (the commit mark), with the weights' size and sha256 (read
    back from the page cache, so the hash is of the bytes a reader will get). Returns the
    folder."""
    folder = Path(folder)
    save_state(folder / WEIGHTS, state_dict)
    meta = {**meta, FILES: {WEIGHTS: file_digest(folder / WEIGHTS)}}
    atomic_write_bytes(folder / META, json.dumps(jsonable(meta), indent=2).encode())
    return folder


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The committed metadata of an artifact folder, or None if it is not finished."""
    path = Path(folder) / META
    if not path.exists():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def artifact_dir(store: Path, stage: int, key: str) -> Path:
    """Where a stage execution's output lives in a content-addressed store."""
    return Path(store) / f"stage{stage}" / key


def checkpoint_path(store: Path, stage: int, key: str) -> Path:
    """The epoch checkpoint of an unfinished stage execution (dot file beside its folder)."""
    return Path(store) / f"stage{stage}" / f".{key}.ckpt"
