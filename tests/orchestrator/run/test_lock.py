"""One run per workdir: a second `senet run` (or `senet submit`) refuses in one line naming
the host and PID of the holder, and a holder killed with SIGKILL never blocks the next run.
The holder is a real process; nothing waits on the clock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import write_sweep

from orchestrator.cli.main import main
from orchestrator.run.driver import run_sweep
from orchestrator.run.lock import WorkdirBusy, lock_path, workdir_lock
from orchestrator.slurm.request import SlurmRequest
from orchestrator.slurm.submit import submit
from orchestrator.spec.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[3]
HOLDER = """\
import sys
from orchestrator.run.lock import workdir_lock
with workdir_lock(sys.argv[1], "senet run"):
    print("locked", flush=True)
    sys.stdin.read()  # holds until killed or its stdin closes
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding tmp_path/work's lock, as a running `senet run` would."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "work")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _names_holder(message: str, proc: subprocess.Popen, work: Path) -> None:
    assert "\n" not in message.strip() and message.startswith(f"{lock_path(work)}: ")
    assert f"on {socket.gethostname()} pid {proc.pid}" in message


def test_a_second_run_refuses_naming_host_and_pid(
    tmp_path: Path, holder: subprocess.Popen, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep(tmp_path / "s.toml", tmp_path / "work")
    with pytest.raises(WorkdirBusy) as refused:
        run_sweep(load_sweep(sweep), printer=lambda _line: None)
    _names_holder(str(refused.value), holder, tmp_path / "work")

    assert main(["run", str(sweep)]) == 2  # the command: one line, exit status 2
    err = capsys.readouterr().err
    assert err.startswith("senet run: error: ") and err.count("\n") == 1
    _names_holder(err.removeprefix("senet run: error: "), holder, tmp_path / "work")
    assert not (tmp_path / "work" / "store").exists()  # refused before anything started


def test_submit_refuses_while_a_run_holds_the_workdir(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    sweep = load_sweep(write_sweep(tmp_path / "s.toml", tmp_path / "work"))
    with pytest.raises(WorkdirBusy) as refused:
        submit(sweep, SlurmRequest())  # refused before it looks for sbatch
    _names_holder(str(refused.value), holder, tmp_path / "work")


def test_a_holder_killed_with_sigkill_never_blocks(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    work = tmp_path / "work"
    with pytest.raises(WorkdirBusy):
        with workdir_lock(work):
            pass
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    assert f"pid {holder.pid}" in lock_path(work).read_text()  # its stale text is still there
    with workdir_lock(work, "senet run"):  # but not its lock: the kernel released it
        assert f"pid {os.getpid()}" in lock_path(work).read_text()


def test_the_lock_is_released_when_the_run_ends(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with workdir_lock(work):
        with pytest.raises(WorkdirBusy):  # a second holder in the same process is refused too
            with workdir_lock(work):
                pass
    with workdir_lock(work):
        pass


def _plant(work: Path, kind: str, victim: Path) -> str:
    """A run.lock that is not a regular file, as anyone who can write a shared workdir could
    leave it; the words the refusal must use."""
    path = lock_path(work)
    if kind == "symlink":
        path.symlink_to(victim)
        return "is a symbolic link"
    if kind == "directory":
        path.mkdir()
        return "is a directory"
    os.mkfifo(path)
    return "is a FIFO"


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
@pytest.mark.parametrize("command", ["run", "verify", "compact", "status"])
def test_a_lock_path_that_is_no_regular_file_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, kind: str
) -> None:
    """A symlinked run.lock was followed: run, verify and compact truncated and overwrote its
    target (another user's file). A directory gave tracebacks. Now: one line naming the path,
    exit 2, the target untouched."""
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    (work / "progress").mkdir()
    (work / "progress" / "plan.json").write_text('{"nodes": []}')
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    words = _plant(work, kind, victim)
    sweep = write_sweep(tmp_path / "s.toml", work)
    argv = {"run": ["run", str(sweep)]}.get(command, [command, str(work)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{lock_path(work)}: {words}, not the workdir's lock file" in err, err
    assert victim.read_text() == "precious\n"
