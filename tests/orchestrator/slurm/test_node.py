"""orchestrator.slurm.node: the node runner's lifecycle in milliseconds, with its Slurm facts,
process launcher, clock and head probe given as arguments (no Slurm, no Ray, no waiting),
the way submitit tests its executors; then the plain sbatch script (slurm/ray-sweep.sbatch)
end to end on the real multi-host Slurm (marked `slurm`)."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import subprocess_env, write_sweep

from orchestrator.records.read import read_records
from orchestrator.slurm import node as node_mod
from orchestrator.slurm.node import (
    ADDRESS_FILE,
    ADDRESS_TIMEOUT_S,
    FINISHED_FILE,
    HEAD_TIMEOUT_S,
    LEAVE_TIMEOUT_S,
    NODES_FILE,
    REACH_TIMEOUT_S,
    HeadUnreachable,
    Host,
    NodeRunner,
    run_dir,
)
from orchestrator.slurm_env import SlurmTask

ROOT = Path(__file__).resolve().parents[3]
HEAD_IP = "198.18.0.11"
HEAD = f"{HEAD_IP}:6379"


class FakeClock:
    """Time moves only when the runner sleeps; `at` runs a hook once time passes a mark."""

    def __init__(self) -> None:
        self.t = 0.0
        self.hooks: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        due = [h for h in self.hooks if h[0] <= self.t]
        self.hooks = [h for h in self.hooks if h[0] > self.t]
        for _, hook in due:
            hook()

    def at(self, t: float, hook: Callable[[], None]) -> None:
        self.hooks.append((t, hook))


@dataclass
class FakeProcess:
    argv: list[str]
    exit_at: float | None  # fake time at which it exits by itself (None: runs until signalled)
    clock: FakeClock
    code: int = 0
    signals: list[int] = field(default_factory=list)
    pid: int = 4242
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self.exit_at is not None and self.clock.t >= self.exit_at:
            self.returncode = self.code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None, "waited on a process that was not stopped"
        return self.returncode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class FakeLauncher:
    """Starts nothing: records each argv; a `ray start --head` writes the address file Ray
    would write into its temp dir (unless `head_address` is None)."""

    def __init__(self, clock: FakeClock, head_address: str | None = HEAD) -> None:
        self.clock, self.head_address = clock, head_address
        self.started: list[FakeProcess] = []
        self.driver_exit_at: float | None = 3.0
        self.driver_code = 0
        self.head_exit_at: float | None = None

    def __call__(self, argv: list[str], env: object, log: Path | None) -> FakeProcess:
        if "--head" in argv:
            temp = Path(next(a for a in argv if a.startswith("--temp-dir=")).split("=", 1)[1])
            if self.head_address is not None:
                temp.mkdir(parents=True, exist_ok=True)
                (temp / "ray_current_cluster").write_text(self.head_address)
            proc = FakeProcess(argv, self.head_exit_at, self.clock, code=1)
        elif "run" in argv:
            proc = FakeProcess(argv, self.driver_exit_at, self.clock, code=self.driver_code)
        else:
            proc = FakeProcess(argv, None, self.clock)
        self.started.append(proc)
        return proc


def _setup(
    tmp_path: Path, rank: int, ntasks: int = 3, reach: Callable[[str], str | None] | None = None
) -> tuple[NodeRunner, SlurmTask, Host, FakeClock, FakeLauncher, list[str]]:
    clock = FakeClock()
    launcher = FakeLauncher(clock)
    lines: list[str] = []
    requeued: list[str] = []
    host = Host(
        launch=launcher,
        clock=clock,
        address=f"198.18.0.{11 + rank}",
        reach=reach or (lambda address: None),
        requeue=requeued.append,
        hostname=f"node{rank + 1}",
        printer=lines.append,
    )
    host.requeued = requeued  # type: ignore[attr-defined]
    names = tuple(f"node{i + 1}" for i in range(ntasks))
    task = SlurmTask(f"9{ntasks}", rank, ntasks, ntasks, restart=0, hostnames=names)
    runner = NodeRunner(
        tmp_path / "s.toml", tmp_path / "work", tmp_path / "job", "cpu", ("stage3.tau=2.0",)
    )
    return runner, task, host, clock, launcher, lines


def _arg(argv: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(flag + "="))


def test_the_head_starts_ray_on_its_slurm_address_and_the_driver_waits_for_every_node(
    tmp_path: Path,
) -> None:
    runner, task, host, clock, launcher, lines = _setup(tmp_path, rank=0)
    folder = run_dir(tmp_path / "job", task)
    launcher.driver_code = 3
    # the two workers leave a second after the driver ends
    clock.at(4.0, lambda: [(folder / f"left-{r}").touch() for r in (1, 2)])
    assert runner.run(task, host) == 3
    head, driver = launcher.started
    assert "--head" in head.argv and _arg(head.argv, "--node-ip-address") == HEAD_IP
    assert (folder / ADDRESS_FILE).read_text() == HEAD
    assert (folder / "auth_token").stat().st_mode & 0o777 == 0o600
    i = driver.argv.index("run")
    assert driver.argv[i + 1 : i + 3] == [str(tmp_path / "s.toml"), "stage3.tau=2.0"]
    assert driver.argv[driver.argv.index("--address") + 1] == HEAD
    assert driver.argv[driver.argv.index("--expect-nodes") + 1] == "3"
    assert driver.argv[driver.argv.index("--workdir") + 1] == str(tmp_path / "work")
    assert (folder / FINISHED_FILE).read_text() == "3"
    assert (folder / NODES_FILE).read_text().split() == ["node1", "node2", "node3"]
    assert head.signals == [signal.SIGTERM]  # stopped once the workers left
    assert clock.t < 5.0  # it did not wait out LEAVE_TIMEOUT_S
    assert f"Ray head at {HEAD} on node1" in "\n".join(lines)


def test_the_head_waits_for_leaving_workers_only_so_long(tmp_path: Path) -> None:
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=0)
    assert runner.run(task, host) == 0
    assert 3.0 + LEAVE_TIMEOUT_S <= clock.t < 3.0 + LEAVE_TIMEOUT_S + 1


def test_a_head_whose_ray_never_answers_times_out_and_tells_the_workers(tmp_path: Path) -> None:
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=0)
    launcher.head_address = None
    with pytest.raises(TimeoutError, match=r"Ray head: .*ray_current_cluster did not appear"):
        runner.run(task, host)
    assert HEAD_TIMEOUT_S <= clock.t < HEAD_TIMEOUT_S + 1
    assert (run_dir(tmp_path / "job", task) / FINISHED_FILE).read_text() == "head failed"


def test_a_head_whose_ray_exits_fails_at_once(tmp_path: Path) -> None:
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=0)
    launcher.head_address, launcher.head_exit_at = None, 2.0
    with pytest.raises(RuntimeError, match="Ray head: process exited with 1 first"):
        runner.run(task, host)
    assert clock.t < 3.0


def test_a_worker_joins_at_the_heads_address_and_leaves_when_the_head_is_done(
    tmp_path: Path,
) -> None:
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=2)
    folder = run_dir(tmp_path / "job", task)
    folder.mkdir(parents=True)
    clock.at(5.0, lambda: (folder / ADDRESS_FILE).write_text(HEAD))  # the head came up
    clock.at(30.0, lambda: (folder / FINISHED_FILE).write_text("0"))
    assert runner.run(task, host) == 0
    (ray,) = launcher.started
    assert _arg(ray.argv, "--address") == HEAD
    assert _arg(ray.argv, "--node-ip-address") == "198.18.0.13"
    assert "--head" not in ray.argv
    assert ray.signals == [signal.SIGTERM]
    assert (folder / "left-2").exists()
    assert 30.0 <= clock.t < 31.0


def test_a_worker_gives_up_on_a_head_address_that_never_comes(tmp_path: Path) -> None:
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=1)
    with pytest.raises(TimeoutError, match=rf"Ray head address: .*{ADDRESS_FILE} did not appear"):
        runner.run(task, host)
    assert ADDRESS_TIMEOUT_S <= clock.t < ADDRESS_TIMEOUT_S + 1
    assert launcher.started == []


def test_a_worker_stops_waiting_when_the_head_failed(tmp_path: Path) -> None:
    runner, task, host, clock, _, _ = _setup(tmp_path, rank=1)
    folder = run_dir(tmp_path / "job", task)
    folder.mkdir(parents=True)
    clock.at(7.0, lambda: (folder / FINISHED_FILE).write_text("head failed"))
    with pytest.raises(RuntimeError, match=r"task 0 ended first \(head failed\)"):
        runner.run(task, host)
    assert clock.t < 8.0


def test_a_worker_that_cannot_reach_the_head_says_so_in_one_line_naming_the_address(
    tmp_path: Path,
) -> None:
    tried: list[str] = []

    def refused(address: str) -> str:
        tried.append(address)
        return "Connection refused"

    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=1, reach=refused)
    folder = run_dir(tmp_path / "job", task)
    folder.mkdir(parents=True)
    (folder / ADDRESS_FILE).write_text(HEAD)
    with pytest.raises(HeadUnreachable) as e:
        runner.run(task, host)
    text = str(e.value)
    assert "\n" not in text and HEAD in text and "node2 (198.18.0.12)" in text
    assert "Connection refused" in text
    assert REACH_TIMEOUT_S <= clock.t < REACH_TIMEOUT_S + 2 and set(tried) == {HEAD}
    assert launcher.started == []  # no `ray start` left hanging on it
    assert (folder / "unreachable-1").read_text().strip() == text
    # task 0 repeats it in its own log, the one `senet submit --wait` streams
    head, head_task, head_host, head_clock, _, lines = _setup(tmp_path, rank=0)
    (tmp_path / "job" / "job93-start0" / "left-2").touch()
    assert head.run(head_task, head_host) == 0
    assert f"senet slurm: {text}" in lines
    assert head_clock.t < 4.0  # the unreachable worker counts as gone


def test_a_head_that_answers_late_is_joined(tmp_path: Path) -> None:
    answers = iter(["Connection refused"] * 3)
    runner, task, host, clock, launcher, _ = _setup(
        tmp_path, rank=1, reach=lambda a: next(answers, None)
    )
    folder = run_dir(tmp_path / "job", task)
    folder.mkdir(parents=True)
    (folder / ADDRESS_FILE).write_text(HEAD)
    clock.at(10.0, lambda: (folder / FINISHED_FILE).write_text("0"))
    assert runner.run(task, host) == 0
    assert len(launcher.started) == 1 and not (folder / "unreachable-1").exists()


def _running_head(tmp_path: Path, restart: int, max_requeues: int | None) -> tuple[NodeRunner, Host, FakeLauncher, list[str]]:  # fmt: skip
    runner, _, host, clock, launcher, lines = _setup(tmp_path, rank=0)
    runner.max_requeues = max_requeues
    task = SlurmTask("77", rank=0, ntasks=2, nodes=2, restart=restart)
    launcher.driver_exit_at = None  # the sweep runs until signalled

    def warn() -> None:  # Slurm's USR2 arrives while the driver runs
        assert runner.on_warning() is (max_requeues is None or restart < max_requeues)
        launcher.started[1].returncode = 130  # the driver stopped as on Ctrl-C

    clock.at(10.0, warn)
    runner.run(task, host)
    return runner, host, launcher, lines


def test_the_warning_signal_stops_the_sweep_then_requeues_the_job(tmp_path: Path) -> None:
    _, host, launcher, lines = _running_head(tmp_path, restart=1, max_requeues=3)
    head, driver = launcher.started
    assert driver.signals == [signal.SIGINT] and head.signals == [signal.SIGTERM]
    assert host.requeued == ["77"]  # type: ignore[attr-defined]
    assert any("stopping the sweep for requeue" in line for line in lines)


def test_the_requeue_limit_stops_the_job_instead(tmp_path: Path) -> None:
    _, host, launcher, lines = _running_head(tmp_path, restart=3, max_requeues=3)
    assert launcher.started[1].signals == [signal.SIGINT]
    assert host.requeued == []  # type: ignore[attr-defined]
    assert any("limit of 3 requeues is reached" in line for line in lines)


def test_only_task_0_acts_on_the_warning(tmp_path: Path) -> None:
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=1)
    runner.task, runner.host = task, host
    assert runner.on_warning() is False and host.requeued == []  # type: ignore[attr-defined]


def test_the_runner_pickles_without_its_processes_or_seams(tmp_path: Path) -> None:
    """submitit pickles the job for each start; a requeued start gets fresh real seams."""
    runner, task, host, clock, launcher, _ = _setup(tmp_path, rank=0)
    clock.at(4.0, lambda: [(run_dir(tmp_path / "job", task) / f"left-{r}").touch() for r in (1, 2)])
    runner.run(task, host)
    again = pickle.loads(pickle.dumps(runner))
    assert again.head is None and again.driver is None and again.task is None
    assert isinstance(again.host.clock, node_mod.WallClock)
    assert again.overrides == ("stage3.tau=2.0",)


@pytest.mark.slurm
def test_plain_sbatch_script(tmp_path: Path) -> None:
    work = tmp_path / "work"
    path = write_sweep(tmp_path / "s.toml", work, name="sbatch", budgets=[3000], taus=[2.0])
    env = subprocess_env(SWEEP=str(path), VENV=str(Path(sys.executable).parent.parent))
    out = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--nodes=2",
            f"--output={tmp_path}/job-%j.out",
            str(ROOT / "slurm" / "ray-sweep.sbatch"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    log = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert out.returncode == 0, out.stdout + out.stderr + log
    assert "Ray: 2 nodes" in log, log
    rows = read_records(work, sweep="sbatch").to_pylist()
    assert sorted(r["stage"] for r in rows) == [1, 2, 3]
    assert all(r["slurm_job_id"] for r in rows)
