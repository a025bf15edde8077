"""What a Slurm task needs from the host it runs on, behind small seams so that the node
runner (orchestrator.slurm.node) is tested without Slurm, Ray or the wall clock: how a
process is started and stopped, what time it is, this node's address as the other nodes
reach it, whether the Ray head answers, and how the job is requeued."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Protocol


class Process(Protocol):
    """The part of subprocess.Popen the node runner uses."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


# (argv, environment, log file or None for the task's own output) -> the started process
Launcher = Callable[[list[str], Mapping[str, str], "Path | None"], Process]


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """The real clock: monotonic time, real sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # inherited through exec by Ray and the driver


def popen(argv: list[str], env: Mapping[str, str], log: Path | None) -> Process:
    """Start a process with Slurm's warning signal (USR2) ignored: it reaches every process
    of the job step, and only task 0's runner may act on it. Output goes to `log` (appended)
    or to this task's own output."""
    out: IO[bytes] | None = None
    if log is not None:
        out = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT if out else None,
        preexec_fn=_ignore_usr2,
    )  # fmt: skip


def stop(proc: Process | None, sig: int = signal.SIGTERM, wait: float = 30.0) -> None:
    """Signal a process and wait for it, bounded: SIGKILL after `wait` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ray_executable() -> str:
    """The `ray` of this interpreter's environment (the job runs the submitter's venv)."""
    return str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A port free right now on this node (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def reach(address: str, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to host:port opens, else why not (one line)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as e:
        return (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip()


def node_address(node: str | None = None) -> str | None:
    """This node's address as the other nodes of the job reach it: SENET_NODE_IP if set,
    else Slurm's NodeAddr of this node (`scontrol show node`, resolved when it is a name).
    Ray's own guess (the interface with a default route) is wrong on a cluster network with
    no default route and gives 127.0.0.1, which no other host can reach. None outside Slurm
    or where Slurm does not say: then Ray guesses."""
    if os.environ.get("SENET_NODE_IP"):
        return os.environ["SENET_NODE_IP"]
    node = node or os.environ.get("SLURMD_NODENAME")
    if not node:
        return None
    try:
        out = subprocess.run(
            ["scontrol", "-o", "show", "node", node], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    addr = fields.get("NodeAddr")
    if not addr:
        return None
    try:
        return socket.gethostbyname(addr)
    except OSError:
        return None


def scontrol_requeue(job_id: str) -> None:
    """Put the job back in the queue as it is (Slurm starts it again, as a new restart)."""
    subprocess.run(["scontrol", "requeue", job_id], check=False, timeout=60)
