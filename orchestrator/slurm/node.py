"""What every task of a sweep's Slurm job runs: a Ray cluster inside the allocation plus the
sweep driver. Used by `senet submit` (through submitit) and by slurm/ray-sweep.sbatch.

Task 0 starts the Ray head on its node's address as the other nodes reach it (Slurm's
NodeAddr, not Ray's guess), writes the head's real address (read from Ray) to the job's
folder on the shared filesystem and runs `senet run --address`, which waits until every
task's Ray node has joined. The other tasks poll for that file, check that the head answers
(a worker that cannot reach it says so in one line naming the address, in its own log and
in task 0's) and join as workers. Ports are free random ones, Ray's temp dir is short and
node-local, CPUs/GPUs/memory come from Slurm's variables, and each job gets its own Ray
auth token.

Preemption and time limits: Slurm's warning signal (USR2) reaches every process of the job
step, so Ray's processes and the driver are started with USR2 ignored. Task 0 answers it by
stopping the driver the way Ctrl-C does (Tune saves, running stages keep their epoch
checkpoints), then the job is requeued (at most `max_requeues` times under plain sbatch;
submitit counts its own); on restart the content-addressed store makes the sweep resume
with no finished stage run again.

The runner's Slurm facts (a SlurmTask, orchestrator.slurm_env), how it starts
processes, its clock and its node's address come in as arguments (orchestrator.slurm.host),
so its whole lifecycle is tested without Slurm, Ray or waiting.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.slurm.host import (
    Clock,
    Launcher,
    Process,
    WallClock,
    free_port,
    node_address,
    popen,
    ray_executable,
    reach,
    scontrol_requeue,
    stop,
)
from orchestrator.slurm_env import SlurmTask, slurm_resources, slurm_task

ADDRESS_FILE = "head_address"
FINISHED_FILE = "finished"
NODES_FILE = "nodes"
UNREACHABLE = "unreachable-"  # + rank: a worker that could not reach the head says why here

HEAD_TIMEOUT_S = 120.0  # the head's Ray writes its address
ADDRESS_TIMEOUT_S = 600.0  # a worker waits for task 0's address file (task 0 may queue a while)
REACH_TIMEOUT_S = 60.0  # a worker retries the head's port before it gives up
LEAVE_TIMEOUT_S = 20.0  # task 0 waits for the workers to leave before its head goes
POLL_S = 0.5


class HeadUnreachable(RuntimeError):
    """A worker cannot open a connection to the Ray head: the message names the address."""


@dataclass
class Host:
    """The seams of one task (orchestrator.slurm.host): real ones by default."""

    launch: Launcher = popen
    clock: Clock = field(default_factory=WallClock)
    address: str | None = None  # this node's IP as other nodes reach it (None: Ray guesses)
    reach: Callable[[str], str | None] = reach
    requeue: Callable[[str], None] = scontrol_requeue
    hostname: str = field(default_factory=socket.gethostname)
    printer: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    @classmethod
    def real(cls) -> Host:
        return cls(address=node_address())


def run_dir(job_dir: Path, task: SlurmTask) -> Path:
    """A folder per (job, start): a requeued job starts a new Ray cluster with new addresses."""
    return Path(job_dir) / f"job{task.job_id or 'local'}-start{task.restart}"


def ray_env(folder: Path) -> dict[str, str]:
    """Environment of every Ray process of the job: token auth with the job's own token."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN_PATH"] = str(folder / "auth_token")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ray_start_argv(res: dict[str, int], node_ip: str | None, extra: list[str]) -> list[str]:
    """`ray start --block` for this task's share of the node."""
    argv = [
        ray_executable(),
        "start",
        "--block",
        "--disable-usage-stats",
        f"--num-cpus={res['cpus']}",
        f"--num-gpus={res['gpus']}",
    ]
    if node_ip:
        argv.append(f"--node-ip-address={node_ip}")
    if res["memory"]:
        argv += [
            f"--memory={int(res['memory'] * 0.7)}",
            f"--object-store-memory={int(res['memory'] * 0.2)}",
        ]
    return argv + extra


class NodeRunner:
    """One task of the job. `run()` returns the sweep's exit status (task 0) or 0."""

    def __init__(
        self,
        sweep: Path,
        workdir: Path | None,
        job_dir: Path,
        device: str = "auto",
        overrides: tuple[str, ...] = (),
        max_requeues: int | None = None,
    ) -> None:
        self.sweep, self.workdir, self.job_dir, self.device = (
            Path(sweep),
            workdir,
            Path(job_dir),
            device,
        )
        self.overrides = tuple(overrides)  # `key=value`s for the driver's `senet run`
        self.max_requeues = max_requeues  # None: not ours to count (submitit counts)
        self.head: Process | None = None
        self.driver: Process | None = None
        self.task: SlurmTask | None = None  # set by run()
        self._owns_temp_dir = False
        self.host = Host()

    def __getstate__(self) -> dict:  # processes do not survive pickling (submitit requeue)
        skip = ("head", "driver", "task", "host")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, head=None, driver=None, task=None, host=Host())

    def run(self, task: SlurmTask | None = None, host: Host | None = None) -> int:
        task = slurm_task() if task is None else task
        self.task, self.host = task, Host.real() if host is None else host
        folder = run_dir(self.job_dir, task)
        folder.mkdir(parents=True, exist_ok=True)
        env = ray_env(folder)
        # Short (Unix socket paths), node-local, and new for every start of a requeued job: a
        # stale ray_current_cluster file would hand the driver the old head's address. The
        # head's name: Ray's worker nodes use the head's temp dir on their own hosts.
        temp_dir = Path("/tmp") / f"senet-{task.job_id or os.getpid()}-{task.restart}"
        if task.rank == 0:
            shutil.rmtree(temp_dir, ignore_errors=True)
        res = slurm_resources()
        self.host.printer(
            f"senet slurm task {task.rank} on {self.host.hostname} "
            f"({self.host.address or 'address left to Ray'}): {res['cpus']} CPUs, "
            f"{res['gpus']} GPUs, run folder {folder}"
        )
        try:
            if task.rank == 0:
                return self._run_head(folder, env, temp_dir, res, task.ntasks)
            return self._run_worker(folder, env, temp_dir, res, task.rank)
        except BaseException:
            if task.rank == 0:  # tell the workers, or they wait for a head that never comes
                (folder / FINISHED_FILE).write_text("head failed")
            raise
        finally:
            stop(self.driver, signal.SIGINT)
            stop(self.head)
            if task.rank == 0 or self._owns_temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)

    def _wait_for(
        self, path: Path, proc: Process | None, timeout: float, what: str, abort: Path | None = None
    ) -> str:
        clock = self.host.clock
        deadline = clock.now() + timeout
        while not path.exists() or not path.read_text().strip():
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what}: process exited with {proc.returncode} first")
            if abort is not None and abort.exists():
                raise RuntimeError(f"{what}: task 0 ended first ({abort.read_text().strip()})")
            if clock.now() > deadline:
                raise TimeoutError(f"{what}: {path} did not appear within {timeout:.0f} s")
            clock.sleep(POLL_S)
        return path.read_text().strip()

    def _run_head(
        self, folder: Path, env: dict[str, str], temp_dir: Path, res: dict[str, int], ntasks: int
    ) -> int:
        # The job's nodes at this start: `senet status` reports any of them Slurm lost since.
        hostnames = self.task.hostnames if self.task is not None else ()
        (folder / NODES_FILE).write_text("".join(f"{h}\n" for h in hostnames))
        token = folder / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        head = ["--head", "--port=0", "--include-dashboard=false", f"--temp-dir={temp_dir}"]
        # Ray's other listening ports default to fixed numbers that clash between two jobs
        # on one node: take free ones.
        head += [f"--dashboard-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
        argv = ray_start_argv(res, self.host.address, head)
        self.head = self.host.launch(argv, env, folder / "ray-0.log")
        address = self._wait_for(
            temp_dir / "ray_current_cluster", self.head, HEAD_TIMEOUT_S, "Ray head"
        )
        (folder / f".{ADDRESS_FILE}.tmp").write_text(address)
        os.replace(folder / f".{ADDRESS_FILE}.tmp", folder / ADDRESS_FILE)
        self.host.printer(f"senet slurm: Ray head at {address} on {self.host.hostname}")
        cmd = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "run",
            str(self.sweep),
            *self.overrides,
            "--address",
            address,
            "--device",
            self.device,
            "--expect-nodes",
            str(ntasks),
        ]
        if self.workdir is not None:
            cmd += ["--workdir", str(self.workdir)]
        self.driver = self.host.launch(cmd, env, None)
        # Poll, do not block in wait(): a blocking wait holds Popen's lock, and the USR2
        # handler (which runs in this thread) must be able to wait for the driver itself.
        told: set[str] = set()
        while (rc := self.driver.poll()) is None:
            self._tell_unreachable(folder, told)
            self.host.clock.sleep(POLL_S)
        self._tell_unreachable(folder, told)
        (folder / FINISHED_FILE).write_text(str(rc))
        # Workers leave while the head still answers (a raylet whose head is gone hangs on
        # shutdown); give them a few seconds to say so before the head goes.
        deadline = self.host.clock.now() + LEAVE_TIMEOUT_S
        while self._gone(folder) < ntasks - 1 and self.host.clock.now() < deadline:
            self.host.clock.sleep(0.2)
        return rc

    @staticmethod
    def _gone(folder: Path) -> int:
        """Workers that left, or never came (could not reach the head)."""
        return len(list(folder.glob("left-*"))) + len(list(folder.glob(f"{UNREACHABLE}*")))

    def _tell_unreachable(self, folder: Path, told: set[str]) -> None:
        """Repeat in task 0's log (the one `senet submit --wait` streams) each worker's
        one-line reason for not joining."""
        for path in sorted(folder.glob(f"{UNREACHABLE}*")):
            if path.name not in told:
                told.add(path.name)
                self.host.printer(f"senet slurm: {path.read_text().strip()}")

    def _run_worker(
        self, folder: Path, env: dict[str, str], temp_dir: Path, res: dict[str, int], rank: int
    ) -> int:
        address = self._wait_for(
            folder / ADDRESS_FILE,
            None,
            ADDRESS_TIMEOUT_S,
            "Ray head address",
            folder / FINISHED_FILE,
        )
        self._check_head(folder, address, rank)
        # The first task of a node other than the head's cleans the head's temp dir there.
        head_ip = address.rpartition(":")[0]
        self._owns_temp_dir = (
            self.task is not None
            and self.task.local_rank == 0
            and (self.host.address is not None and self.host.address != head_ip)
        )
        worker = [f"--address={address}", f"--dashboard-agent-listen-port={free_port()}"]
        argv = ray_start_argv(res, self.host.address, worker)
        self.head = self.host.launch(argv, env, folder / f"ray-{rank}.log")
        while not (folder / FINISHED_FILE).exists() and self.head.poll() is None:
            self.host.clock.sleep(POLL_S)
        stop(self.head, wait=10)
        (folder / f"left-{rank}").touch()
        return 0

    def _check_head(self, folder: Path, address: str, rank: int) -> None:
        """Retry the head's port for a while (it may still be starting), then give up in one
        line naming the address tried, rather than let `ray start` hang on it."""
        clock = self.host.clock
        deadline = clock.now() + REACH_TIMEOUT_S
        while (why := self.host.reach(address)) is not None:
            if clock.now() > deadline or (folder / FINISHED_FILE).exists():
                me = f"{self.host.hostname} ({self.host.address or 'address unknown'})"
                text = (
                    f"task {rank} on {me} cannot reach the Ray head at {address}: {why}; the "
                    "nodes must reach each other on the ports Ray uses (README, On Slurm)"
                )
                (folder / f"{UNREACHABLE}{rank}").write_text(text + "\n")
                raise HeadUnreachable(text)
            clock.sleep(1.0)

    def stop_for_requeue(self) -> None:
        """Preempted or out of time: let Tune stop the way Ctrl-C does, then stop Ray. Bounded
        (about 30 s at most) so that the requeue happens well before Slurm's kill."""
        clock = self.host.clock
        self.host.printer("senet slurm: warning signal received, stopping the sweep for requeue")
        t0 = clock.now()
        stop(self.driver, signal.SIGINT, wait=20)
        stop(self.head, wait=10)
        self.host.printer(f"senet slurm: stopped in {clock.now() - t0:.1f} s; requeueing")

    def on_warning(self) -> bool:
        """Slurm's warning signal under plain sbatch (task 0): stop, then requeue unless the
        job has been requeued `max_requeues` times already. True when requeued."""
        task = self.task
        if task is None or task.rank != 0 or task.job_id is None:
            return False
        self.stop_for_requeue()
        if self.max_requeues is not None and task.restart >= self.max_requeues:
            self.host.printer(
                f"senet slurm: job {task.job_id} started {task.restart + 1} times, the limit "
                f"of {self.max_requeues} requeues is reached; finished stages are kept: submit "
                "the same sweep again to go on"
            )
            return False
        self.host.requeue(task.job_id)
        return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of slurm/ray-sweep.sbatch: `srun python -m orchestrator.slurm.node SWEEP`."""
    p = argparse.ArgumentParser(
        description="One task of a senet sweep's Slurm job (see slurm/ray-sweep.sbatch)."
    )
    p.add_argument("sweep", type=Path)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="as `senet run` takes them")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--max-requeues", type=int, default=10, help="time-limit requeues (10)")
    args = p.parse_intermixed_args(argv)
    from orchestrator.spec.sweep import load_sweep

    sweep = load_sweep(args.sweep, args.workdir, args.overrides)
    task = slurm_task()
    job_dir = sweep.workdir / "slurm" / f"sbatch-{task.job_id or 'local'}"
    runner = NodeRunner(
        args.sweep.resolve(), sweep.workdir, job_dir, args.device, sweep.overrides,
        max_requeues=args.max_requeues,
    )  # fmt: skip

    def on_usr2(_sig: int, _frame: object) -> None:
        if runner.on_warning():
            sys.exit(0)
        if task.rank == 0 and task.job_id is not None:
            sys.exit(1)

    signal.signal(signal.SIGUSR2, on_usr2)
    return runner.run(task)


if __name__ == "__main__":
    sys.exit(main())
