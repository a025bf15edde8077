"""What a path a command is given must be, checked before the command reads or writes there:
the workdir (schema.workdir_problem), the outputs of `senet results --plot` and `senet export`,
and the sweep file itself. One home for these rules, so every command refuses the same path
in the same line instead of failing mid-command with a traceback."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from orchestrator.errors import UserError


def path_problem(path: Path, folder: bool | None = None) -> str | None:
    """Why a command cannot use `path`, before it reads or writes anything there, or None:
    a path under a file or in a loop of symbolic links (Path.resolve raised mid-command), and
    with `folder` True or False, a path that exists as the other kind. Missing is fine."""
    for p in (path, *path.parents):
        try:
            mode = p.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                return f"{p} is in a loop of symbolic links"
            return f"cannot reach {p}: {e.strerror or e}"
        if p == path:
            if folder is False and stat.S_ISDIR(mode):
                return f"{p} is a folder, not a file"
            if folder is True and not stat.S_ISDIR(mode):
                return f"{p} is a file, not a folder"
            return None
        if not stat.S_ISDIR(mode):
            return f"{p} is a file, not a folder"
        return None
    return None


def writable_problem(path: Path) -> str | None:
    """Why this process cannot create `path` (or write in it, a folder), or None: its nearest
    existing folder is read-only or not ours. Asked before the work, so an output that
    cannot be written costs one line, not the work and a traceback."""
    for p in (path, *path.parents):
        if p.is_dir():
            if os.access(p, os.W_OK):
                return None
            read_only = os.statvfs(p).f_flag & os.ST_RDONLY
            why = "read-only file system" if read_only else "permission denied"
            return f"cannot write in {p}: {why}"
    return None


def output_problem(path: Path, folder: bool) -> str | None:
    """Why a command's output (`--plot FILE`, `export OUT`) cannot be written at `path`."""
    return path_problem(path, folder) or writable_problem(path)


def check_workdir(path: Path) -> None:
    """UserError naming the problem where `path` cannot be a workdir to read (in a symlink
    loop, under a file): Path.resolve raised a RuntimeError there."""
    if problem := path_problem(path, folder=True):
        raise UserError(problem)


def check_output(option: str, path: Path, folder: bool) -> None:
    """UserError `OPTION: problem` where `path` cannot take a command's output."""
    if problem := output_problem(path, folder):
        raise UserError(f"{option}: {problem}")


def regular_file_problem(path: Path) -> str | None:
    """Why `path` is no file to read a sweep from without blocking (a FIFO or a device would
    hang or never end), or None; a missing path is the reader's to say."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a sweep file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device); give the sweep file itself"
    return None
