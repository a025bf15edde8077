"""One run per workdir: an advisory lock on <workdir>/run.lock, held for the whole run.

`fcntl.flock` on the lock file, taken without waiting: a second `senet run` (or `senet
submit`, or `senet verify`) on the same workdir refuses in one line naming the host and PID
written into the file by the holder. The kernel releases a flock when its holder dies, however
it dies (kill -9 included), so a lock left behind never blocks: the file stays, the lock does
not, and its stale host/PID text is simply overwritten.

The file is opened without following a symlink (O_NOFOLLOW) and without blocking (a FIFO):
whoever can write a shared workdir could otherwise plant `run.lock -> ~victim/file` and have
the next run truncate and overwrite it. A lock path that is not a regular file (a symlink, a
directory, a FIFO) is refused in one line naming it.

What it needs from a shared filesystem: flock that is coherent across hosts.
- Local filesystems: always.
- NFS: Linux clients implement flock with NFS byte-range locks (NFSv4, or v3 with lockd/NLM),
  seen by every client. Mounts with `nolock` or `local_lock=flock|all` make locks local to
  one host: two hosts could then both run. A client that dies holding the lock releases it
  when the server's lease expires (NFSv4: about 90 s).
- Lustre: mount with `-o flock` (coherent across clients); `localflock` is per-node only, and
  with `noflock` flock fails: then we warn and run unlocked rather than refuse to run.
- GPFS / Spectrum Scale, BeeGFS, CephFS: coherent flock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import UserError

LOCK = "run.lock"
log = logging.getLogger("senet.lock")

# flock errors that mean "this filesystem has no (coherent) flock", not "someone holds it".
_UNSUPPORTED = {errno.ENOLCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


class WorkdirBusy(UserError):
    """Another process holds the workdir's lock: one line naming its host and PID."""


class LockPathError(UserError):
    """The lock path is not a regular file: it is never followed, read or written."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path}: is {_kind(path)}, not the workdir's lock file; remove it (senet makes a "
            "regular file there)"
        )


def _kind(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "not a regular file"
    for test, word in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def lock_path(workdir: Path) -> Path:
    return Path(workdir) / LOCK


def open_lock(path: Path, flags: int) -> int:
    """A descriptor of the regular file at `path` (created with O_CREAT in `flags`), never
    through a symlink and never blocking; LockPathError for anything else at that path."""
    nofollow = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | nofollow, 0o666)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):  # link, directory, socket
            raise LockPathError(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockPathError(path)
    return fd


def _holder(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return text or "another process (it has not written its host and PID yet)"


@contextlib.contextmanager
def workdir_lock(workdir: Path, command: str = "senet run", run_id: str = "") -> Iterator[None]:
    """Hold the workdir's lock for the block, or raise WorkdirBusy at once naming the holder.
    The file gets `COMMAND on HOST pid PID since TIME` while held, and ` run RUN_ID` for a
    run: `senet status` then tells the new run from the plan snapshot a previous run left
    (holder_run_id), which the new run writes only after it has planned."""
    path = lock_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_lock(path, os.O_RDWR | os.O_CREAT)
    try:
        if _acquire(fd, path):
            since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            text = f"{command} on {socket.gethostname()} pid {os.getpid()} since {since}"
            text += f" run {run_id}\n" if run_id else "\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock; the text stays, stale, until the next holder


def _acquire(fd: int, path: Path) -> bool:
    """True once locked; False (with a warning) where the filesystem has no flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        raise WorkdirBusy(
            f"{path}: workdir in use by {_holder(fd)}; wait for it to finish or stop it"
        ) from None
    except OSError as e:
        if e.errno not in _UNSUPPORTED:
            raise
    log.warning(
        "senet: warning: %s: the filesystem refuses flock; running without the one-run-per-"
        "workdir lock (Lustre: mount with -o flock)",
        path,
    )
    return False


def check_unlocked(workdir: Path, command: str = "senet submit") -> None:
    """Refuse (WorkdirBusy) if a run holds the workdir now; holds nothing afterwards."""
    if Path(workdir).exists():
        with workdir_lock(workdir, command):
            pass


_RUN_ID = re.compile(r" run (\S+)$")


def holder_run_id(text: str) -> str | None:
    """The run id in a lock file's text (workdir_lock), or None (not a run, or not written
    yet: the holder truncates the file, then writes it)."""
    m = _RUN_ID.search(text.strip())
    return m.group(1) if m else None


def lock_holder(workdir: Path) -> tuple[bool, str]:
    """(whether a run holds the workdir now, the lock file's text: the holder, or the last
    one). Probed with a shared flock taken and dropped at once, so it sees holders on other
    hosts where flock is coherent; it never writes the file."""
    path = lock_path(workdir)
    try:
        fd = open_lock(path, os.O_RDONLY)
    except OSError:
        return False, ""
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, text
        except OSError:
            return False, text  # no flock on this filesystem: unknown, shown as not held
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, text
    finally:
        os.close(fd)
