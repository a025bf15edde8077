"""What every task of a sweep's Slurm job runs: a Ray cluster inside the allocation plus the
sweep driver. Used by `senet submit` (through submitit) and by slurm/ray-sweep.sbatch.

Task 0 starts the Ray head, writes its real address (read from Ray, not guessed) to the job's
folder on the shared filesystem and runs `senet run --address`; the other tasks poll for that
file and join as workers. Ports are free random ones, Ray's temp dir is short and node-local,
CPUs/GPUs/memory come from Slurm's variables, and each job gets its own Ray auth token.

Preemption and time limits: Slurm's warning signal (USR2) reaches every process of the job
step, so Ray's processes and the driver are started with USR2 ignored. Task 0 answers it by
stopping the driver the way Ctrl-C does (Tune saves, running stages keep their epoch
checkpoints), then the job is requeued; on restart the content-addressed store makes the
sweep resume with no finished stage run again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.records.provenance import SlurmTask, slurm_task

ADDRESS_FILE = "head_address"
FINISHED_FILE = "finished"


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # inherited through exec by Ray and the driver


def slurm_resources() -> dict[str, int]:
    """CPUs, GPUs and memory (bytes) this task may use, from Slurm's environment."""
    env = os.environ
    cpus = int(
        env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or os.cpu_count() or 1
    )
    gpus = int(env.get("SLURM_GPUS_ON_NODE") or 0)
    if not gpus and env.get("CUDA_VISIBLE_DEVICES"):
        gpus = len([d for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d])
    mem_mb = int(env.get("SLURM_MEM_PER_NODE") or 0)
    if not mem_mb and env.get("SLURM_MEM_PER_CPU"):
        mem_mb = int(env["SLURM_MEM_PER_CPU"]) * cpus
    return {"cpus": cpus, "gpus": gpus, "memory": mem_mb * 1024 * 1024}


def free_port() -> int:
    """A port free right now on this node (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


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


def _ray_start(
    extra: list[str], res: dict[str, int], log_path: Path, env: dict[str, str]
) -> subprocess.Popen:
    ray = str(Path(sys.executable).with_name("ray"))
    cmd = [
        ray,
        "start",
        "--block",
        "--disable-usage-stats",
        f"--num-cpus={res['cpus']}",
        f"--num-gpus={res['gpus']}",
    ]
    if res["memory"]:
        cmd += [
            f"--memory={int(res['memory'] * 0.7)}",
            f"--object-store-memory={int(res['memory'] * 0.2)}",
        ]
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        cmd + extra, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_ignore_usr2
    )


def _wait_for(
    path: Path, proc: subprocess.Popen | None, timeout: float, what: str, abort: Path | None = None
) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode} first")
        if abort is not None and abort.exists():
            raise RuntimeError(f"{what}: task 0 ended first ({abort.read_text().strip()})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {path} did not appear within {timeout:.0f} s")
        time.sleep(0.2)
    return path.read_text().strip()


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, wait: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class NodeRunner:
    """One task of the job. `run()` returns the sweep's exit status (task 0) or 0."""

    def __init__(
        self,
        sweep: Path,
        workdir: Path | None,
        job_dir: Path,
        device: str = "auto",
        overrides: tuple[str, ...] = (),
    ) -> None:
        self.sweep, self.workdir, self.job_dir, self.device = (
            Path(sweep),
            workdir,
            Path(job_dir),
            device,
        )
        self.overrides = tuple(overrides)  # `key=value`s for the driver's `senet run`
        self.head: subprocess.Popen | None = None
        self.driver: subprocess.Popen | None = None

    def __getstate__(self) -> dict:  # processes do not survive pickling (submitit requeue)
        return {k: v for k, v in self.__dict__.items() if k not in ("head", "driver")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, head=None, driver=None)

    def run(self) -> int:
        task = slurm_task()
        rank = task.rank
        folder = run_dir(self.job_dir, task)
        folder.mkdir(parents=True, exist_ok=True)
        env = ray_env(folder)
        # Short (Unix socket paths), node-local, and new for every start of a requeued job: a
        # stale ray_current_cluster file would hand the driver the old head's address.
        temp_dir = Path("/tmp") / f"senet-{task.job_id or os.getpid()}-{task.restart}-{rank}"
        shutil.rmtree(temp_dir, ignore_errors=True)
        res = slurm_resources()
        print(
            f"senet slurm task {rank}: {res['cpus']} CPUs, {res['gpus']} GPUs, run folder {folder}",
            flush=True,
        )
        try:
            if rank == 0:
                return self._run_head(folder, env, temp_dir, res, task.ntasks - 1)
            return self._run_worker(folder, env, temp_dir, res, rank)
        except BaseException:
            if rank == 0:  # tell the workers, or they wait for a head that never comes
                (folder / FINISHED_FILE).write_text("head failed")
            raise
        finally:
            _stop(self.driver, signal.SIGINT)
            _stop(self.head)
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _run_head(
        self, folder: Path, env: dict[str, str], temp_dir: Path, res: dict[str, int], workers: int
    ) -> int:
        token = folder / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        head = ["--head", "--port=0", "--include-dashboard=false", f"--temp-dir={temp_dir}"]
        # Ray's other listening ports default to fixed numbers that clash between two jobs
        # on one node: take free ones.
        head += [f"--dashboard-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
        self.head = _ray_start(
            head,
            res,
            folder / "ray-0.log",
            env,
        )
        address = _wait_for(temp_dir / "ray_current_cluster", self.head, 120, "Ray head")
        (folder / f".{ADDRESS_FILE}.tmp").write_text(address)
        os.replace(folder / f".{ADDRESS_FILE}.tmp", folder / ADDRESS_FILE)
        print(f"senet slurm: Ray head at {address}", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "run",
            str(self.sweep),
            *getattr(self, "overrides", ()),  # a runner pickled before overrides existed
            "--address",
            address,
            "--device",
            self.device,
        ]
        if self.workdir is not None:
            cmd += ["--workdir", str(self.workdir)]
        self.driver = subprocess.Popen(cmd, env=env, preexec_fn=_ignore_usr2)
        # Poll, do not block in wait(): a blocking wait holds Popen's lock, and the USR2
        # handler (which runs in this thread) must be able to wait for the driver itself.
        while (rc := self.driver.poll()) is None:
            time.sleep(0.5)
        (folder / FINISHED_FILE).write_text(str(rc))
        # Workers leave while the head still answers (a raylet whose head is gone hangs on
        # shutdown); give them a few seconds to say so before the head goes.
        deadline = time.monotonic() + 20
        while len(list(folder.glob("left-*"))) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        return rc

    def _run_worker(
        self, folder: Path, env: dict[str, str], temp_dir: Path, res: dict[str, int], rank: int
    ) -> int:
        address = _wait_for(
            folder / ADDRESS_FILE, None, 600, "Ray head address", folder / FINISHED_FILE
        )
        worker = [f"--address={address}", f"--dashboard-agent-listen-port={free_port()}"]
        self.head = _ray_start(worker, res, folder / f"ray-{rank}.log", env)
        while not (folder / FINISHED_FILE).exists() and self.head.poll() is None:
            time.sleep(0.5)
        _stop(self.head, wait=10)
        (folder / f"left-{rank}").touch()
        return 0

    def stop_for_requeue(self) -> None:
        """Preempted or out of time: let Tune stop the way Ctrl-C does, then stop Ray. Bounded
        (about 30 s at most) so that the requeue happens well before Slurm's kill."""
        print("senet slurm: warning signal received, stopping the sweep for requeue", flush=True)
        t0 = time.monotonic()
        _stop(self.driver, signal.SIGINT, wait=20)
        _stop(self.head, wait=10)
        print(f"senet slurm: stopped in {time.monotonic() - t0:.1f} s; requeueing", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of slurm/ray-sweep.sbatch: `srun python -m orchestrator.slurm.node SWEEP`."""
    p = argparse.ArgumentParser(
        description="One task of a senet sweep's Slurm job (see slurm/ray-sweep.sbatch)."
    )
    p.add_argument("sweep", type=Path)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="as `senet run` takes them")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_intermixed_args(argv)
    from orchestrator.spec.sweep import load_sweep

    sweep = load_sweep(args.sweep, args.workdir, args.overrides)
    task = slurm_task()
    job_dir = sweep.workdir / "slurm" / f"sbatch-{task.job_id or 'local'}"
    runner = NodeRunner(args.sweep.resolve(), sweep.workdir, job_dir, args.device, sweep.overrides)

    def on_usr2(_sig: int, _frame: object) -> None:
        if task.rank != 0 or task.job_id is None:
            return
        runner.stop_for_requeue()
        subprocess.run(["scontrol", "requeue", task.job_id], check=False)
        sys.exit(0)

    signal.signal(signal.SIGUSR2, on_usr2)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
