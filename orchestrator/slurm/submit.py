"""`senet submit | status | cancel`: a sweep as ONE Slurm job holding a whole Ray cluster,
submitted through submitit from a login node.

Each submission gets a fresh submitit folder under <workdir>/slurm/ (job ids restart when a
Slurm state is wiped, and a reused folder could return an old job's result); the newest
submission is remembered in <workdir>/slurm/current.json for `status` and `cancel`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.run.lock import check_unlocked
from orchestrator.slurm.node import NodeRunner
from orchestrator.slurm.request import SlurmRequest, check_script_text
from orchestrator.spec.sweep import Sweep
from stages.artifacts import atomic_write_bytes

ACTIVE = (
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "RESIZING",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
)


JOB_ID = re.compile(r"[0-9]+(_[0-9]+)?")  # a job, or one task of an array (123_4)


def check_job_id(job_id: object, source: str) -> str:
    """A Slurm job id (digits, optionally _N for an array task) before scancel, sacct or squeue
    sees it: anything else from a file is not passed on to them."""
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise UserError(f"{source}: job id {job_id!r} is not a Slurm job id (digits, or digits_N)")
    return job_id


class SweepJob:
    """The callable submitit runs in every task. Checkpointable: on Slurm's warning signal
    (task 0 only) it stops the sweep cleanly and asks to be requeued as it is."""

    def __init__(
        self,
        sweep: Path,
        workdir: Path,
        job_dir: Path,
        device: str,
        overrides: tuple[str, ...] = (),
    ) -> None:
        self.runner = NodeRunner(sweep, workdir, job_dir, device, overrides)

    def __call__(self) -> int:
        return self.runner.run()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        self.runner.stop_for_requeue()
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _state_file(workdir: Path) -> Path:
    return Path(workdir) / "slurm" / "current.json"


def _current(workdir: Path) -> dict[str, Any]:
    """The newest submission of a workdir, checked: a damaged or hand-edited current.json is
    one line naming the file, never a traceback, and its job id reaches no Slurm command."""
    path = _state_file(workdir)
    if not path.exists():
        raise UserError(
            f"no Slurm submission recorded in {workdir}; submit one with `senet submit SWEEP`"
        )
    fix = "remove it, or `senet submit` again after checking squeue for the job"
    try:
        cur = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError) as e:
        reason = " ".join(str(e).split())
        raise UserError(f"{path}: not a submission record ({reason}); {fix}") from None
    if not isinstance(cur, dict):
        raise UserError(f"{path}: not a submission record (a JSON {type(cur).__name__}); {fix}")
    for key in ("job_id", "folder", "sweep", "workdir", "submitted_at"):
        if not isinstance(cur.get(key), str):
            raise UserError(f"{path}: `{key}` is missing or not a string; {fix}")
    overrides = cur.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise UserError(f"{path}: `overrides` is not a list of strings; {fix}")
    check_job_id(cur["job_id"], str(path))
    return cur


def slurm_job(folder: str | Path, job_id: str) -> Any:
    """The submission as submitit's SlurmJob (its public API reads state through sacct and
    cancels through scancel), for a job this or an earlier process submitted."""
    import submitit

    return submitit.SlurmJob(folder=folder, job_id=check_job_id(job_id, "slurm_job"))


def job_info(folder: str | Path, job_id: str) -> tuple[str, str]:
    """(state, node list) of the job, as sacct reports it through submitit; state is one word
    (`CANCELLED by 0` is CANCELLED), UNKNOWN while sacct has not seen the job yet."""
    info = slurm_job(folder, job_id).get_info(mode="force")
    state = (info.get("State") or "UNKNOWN").split()[0]
    return state, info.get("NodeList") or ""


def job_state(folder: str | Path, job_id: str) -> str:
    return job_info(folder, job_id)[0]


_NODE = re.compile(r"NodeName=(\S+).* State=(\S+)(?:.* Reason=(.*?)(?: \[[^]]*\])?)?$")
_UNHEALTHY = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING")


def pending_reason(job_id: str) -> str:
    """Why Slurm has not started a pending job yet, in Slurm's words (`squeue %r`), or ""
    for a job that is not pending (or a reason that is only its place in the queue)."""
    out = subprocess.run(
        ["squeue", "-h", "-j", check_job_id(job_id, "pending_reason"), "-o", "%T|%r"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    state, _, reason = out.stdout.strip().partition("|")
    if state != "PENDING" or reason in ("", "None", "Priority", "Resources", "BeginTime"):
        return ""
    return reason


def node_states(nodelists: list[str]) -> list[tuple[str, str, str]]:
    """(node, state, reason) of each node in these Slurm node lists that Slurm does not count
    healthy (DOWN, DRAIN, FAIL or NOT_RESPONDING among its state's flags), as `scontrol show
    node` reports them: a host lost mid-sweep is DOWN+NOT_RESPONDING there at once, while
    sinfo may still show it `mixed*` until its part of a job is cleaned up."""
    names = [n for n in nodelists if n and n not in ("None", "None assigned")]
    if not names:
        return []
    out = subprocess.run(
        ["scontrol", "-o", "show", "node", ",".join(names)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    found = set()
    for line in out.stdout.splitlines():
        m = _NODE.search(line)
        if m and any(flag in m.group(2).split("+") for flag in _UNHEALTHY):
            found.add((m.group(1), m.group(2), m.group(3) or ""))
    return sorted(found)


def submit(sweep: Sweep, request: SlurmRequest, device: str = "auto") -> tuple[Any, Path]:
    """Submit the sweep's job; returns the submitit job and its folder."""
    import submitit

    request.check()
    check_script_text("workdir", sweep.workdir.resolve())  # names the script's log paths
    check_script_text("sweep file", Path(sweep.path or "").resolve())
    check_unlocked(sweep.workdir, "senet submit")  # a `senet run` (or job) is using it
    if shutil.which("sbatch") is None:
        raise UserError(
            "no sbatch on PATH: run on a Slurm login node (or start one here: bash slurm/local-cluster.sh up)"
        )
    if _state_file(sweep.workdir).exists():
        prev = _current(sweep.workdir)
        state = job_state(prev["folder"], prev["job_id"])
        if state in ACTIVE:
            raise UserError(
                f"Slurm job {prev['job_id']} is already {state} on {sweep.workdir}; wait for it or `senet cancel {sweep.workdir}`"
            )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = sweep.workdir / "slurm" / stamp
    ex = executor(folder, request, f"senet-{sweep.name}")
    assert sweep.path is not None
    job_fn = SweepJob(Path(sweep.path).resolve(), sweep.workdir, folder, device, sweep.overrides)
    try:
        with _stderr_captured():  # sbatch's own complaint comes back in the exception
            job = ex.submit(job_fn)
    except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError) as e:
        reason = " ".join(str(e).split())
        raise UserError(f"Slurm refused the job: {reason[-400:]}") from None
    state = {
        "job_id": str(job.job_id),
        "folder": str(folder),
        "sweep": str(Path(sweep.path).resolve()),
        "workdir": str(sweep.workdir),
        "submitted_at": stamp,
        "overrides": list(sweep.overrides),  # `senet status` plans with them too
    }
    atomic_write_bytes(_state_file(sweep.workdir), json.dumps(state, indent=2).encode())
    return job, folder


def executor(folder: Path, request: SlurmRequest, job_name: str) -> Any:
    """The submitit executor for `request`: its sbatch directives, and how many times a job
    that reaches its time limit is requeued (each requeue resumes the sweep; a sweep needing
    more windows than that stops and resumes on the next `senet submit`)."""
    import submitit

    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=request.max_requeues)
    extra = {k: v for k, v in (("account", request.account), ("qos", request.qos)) if v}
    # --no-kill: a node that dies does not end the job; the sweep goes on on the others
    # (Tune retries the stage that ran there, from its epoch checkpoint).
    extra["no_kill"] = True
    ex.update_parameters(
        job_name=job_name,
        nodes=request.nodes,
        ntasks_per_node=request.raylets_per_node,
        cpus_per_task=request.cpus_per_node // request.raylets_per_node,
        time=request.time_min,
        signal_delay_s=request.signal_delay_s,
        stderr_to_stdout=True,
        **({"gpus_per_node": request.gpus_per_node} if request.gpus_per_node else {}),
        **({"partition": request.partition} if request.partition else {}),
        **({"mem": request.mem} if request.mem else {}),
        additional_parameters=extra,
        srun_args=["--no-kill"],
    )
    return ex


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Keep a Slurm command's stderr (which submitit lets through) off the terminal: a
    refusal is reported once, as our one-line error. The list holds what it said, after."""
    sys.stderr.flush()
    saved = os.dup(2)
    said: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said.append(" ".join(sink.read().decode(errors="replace").split()))


def follow(job: Any, printer: Callable[[str], None], poll: float = 1.0) -> int:
    """Stream task 0's log until task 0 ends; returns the sweep's exit status. Task 0 runs
    the driver: its result file ends the wait at once, even while a worker's node is lost
    (that task never writes one). Slurm's state is asked every 10 polls as well, for a task
    0 that ended without a result (cancelled, failed, out of requeues)."""
    log = Path(str(job.paths.stdout).replace("%t", "0"))
    task0 = job.task(0)
    pos, polls, told = 0, 0, ""
    while True:
        done = task0.done(force_check=polls % 10 == 9)
        polls += 1
        if (
            not log.exists()
            and polls % 10 == 1
            and (why := pending_reason(str(job.job_id))) != told
        ):
            told = why  # a job that cannot start (a node DOWN, too few free) says why, once
            if why:
                printer(f"Slurm job {job.job_id} is pending: {why}")
        if log.exists():
            with log.open("rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos += len(chunk)
            for line in chunk.decode(errors="replace").splitlines():
                printer(line)
        if done:
            break
        time.sleep(poll)
    # The sweep's status is known; the job itself ends once the workers have left (a lost
    # node's task never does, Slurm gives up on it): wait for that, bounded, so that the
    # next `senet submit` of this workdir does not find the job still active.
    deadline = time.monotonic() + 120
    while job_state(job.paths.folder, str(job.job_id)) in ACTIVE and time.monotonic() < deadline:
        time.sleep(poll)
    try:
        result = task0.result()  # task 0 runs the driver; the others are Ray workers
    except Exception as e:  # the job failed, was cancelled or timed out for good
        # submitit's words for its requeue limit. Slurm cannot tell this apart: task 0 raises
        # it on the warning signal, so sacct says FAILED, not TIMEOUT (checked on a real Slurm).
        if "timed-out too many times" in str(e):
            printer(
                f"Slurm job {job.job_id} reached its time limit once more than --max-requeues "
                "allows; finished stages are kept: `senet submit` the same sweep again to go on "
                "(with a larger --max-requeues or --time)"
            )
            return 1
        printer(f"Slurm job {job.job_id} ended without a result: {' '.join(str(e).split())[:300]}")
        return 1
    return int(result or 0)


def _started_on(cur: dict[str, Any]) -> list[str]:
    """The nodes the job's latest start ran on (its node runner wrote them): Slurm's node
    list of a job shrinks when a node is lost, so the lost one is found here."""
    from orchestrator.slurm.node import NODES_FILE

    starts = sorted(Path(cur["folder"]).glob(f"job{cur['job_id']}-start*"), key=_start_number)
    if not starts:
        return []
    try:
        return (starts[-1] / NODES_FILE).read_text().split()
    except OSError:
        return []


def _start_number(path: Path) -> int:
    tail = path.name.rpartition("-start")[2]
    return int(tail) if tail.isdigit() else -1


def submission_exists(workdir: Path) -> bool:
    """Whether `senet submit` recorded a submission in the workdir."""
    return _state_file(workdir).exists()


def status(workdir: Path, printer: Callable[[str], None] = print) -> int:
    """The job's state and the plan's counts, then, once the job's driver has started, the
    run's own status from the workdir (orchestrator.run.status.local_status)."""
    cur = _current(workdir)
    state, nodelist = job_info(cur["folder"], cur["job_id"])
    on = f" on {nodelist}" if nodelist and nodelist != "None assigned" else ""
    if state == "PENDING" and (why := pending_reason(cur["job_id"])):
        on = f" ({why})"
    printer(
        f"Slurm job {cur['job_id']}: {state}{on} (submitted {cur['submitted_at']}, folder {cur['folder']})"
    )
    for node, node_state, reason in node_states([nodelist, *_started_on(cur)]):
        printer(f"  Slurm node {node}: {node_state}" + (f" ({reason})" if reason else ""))
    from orchestrator.run.status import has_local_run, local_status, plan_summary
    from orchestrator.spec.sweep import load_or_fail

    sweep = load_or_fail(cur["sweep"], Path(cur["workdir"]), cur.get("overrides", []))
    for stage, counts in plan_summary(sweep).items():
        printer(f"{stage}: {counts['done']}/{counts['total']} done")
    if has_local_run(Path(cur["workdir"])):
        for line in local_status(Path(cur["workdir"])):
            printer(line)
    return 0


def cancel(workdir: Path, printer: Callable[[str], None] = print) -> int:
    cur = _current(workdir)
    try:
        with _stderr_captured() as said:
            slurm_job(cur["folder"], cur["job_id"]).cancel(check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise UserError(f"scancel {cur['job_id']} failed: {''.join(said) or e}") from None
    printer(
        f"cancelled Slurm job {cur['job_id']}; finished stage runs are kept: `senet submit` resumes"
    )
    return 0
