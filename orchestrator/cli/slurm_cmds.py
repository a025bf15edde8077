"""`senet submit`, `senet status`, `senet cancel`: the Slurm commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.sweep_cmds import add_overrides
from orchestrator.cli.target import add_target, resolve_target
from orchestrator.slurm.request import SlurmRequest


def add_slurm_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="submit a sweep as one Slurm job holding a Ray cluster",
        description="Submit the sweep as ONE Slurm job (through submitit): node 0 starts the Ray "
        "head and the sweep driver, the other nodes join as Ray workers. The job is "
        "checkpointable: on preemption or near its time limit it stops cleanly and requeues, "
        "and the sweep resumes without rerunning finished stages. Prints the job id and the "
        "workdir; --wait streams progress and exits with the sweep's status.",
    )
    p.add_argument("sweep", type=Path, help="sweep file (TOML)")
    add_overrides(p)  # they reach the job's `senet run` and `senet status`
    SlurmRequest.add_arguments(p)
    p.add_argument("--workdir", type=Path, default=None, help="override the file's workdir")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument(
        "--wait",
        action="store_true",
        help="stream progress until the job ends; exit with its status",
    )
    p.set_defaults(func=cmd_submit)

    s = sub.add_parser(
        "status",
        help="a workdir's sweep: who runs it, done/running/pending/failed per stage, ETA",
        description="Read from the workdir alone, during or after a run (local or Slurm): who "
        "holds the run (host, PID), done / running / pending / failed stage executions per "
        "stage with each running one's epoch and speed, each failure's error and log file, the "
        "best validation accuracy per budget, and the ETA; with a Slurm submission, the job's "
        "state first.",
    )
    add_target(s)
    s.set_defaults(func=cmd_status)
    c = sub.add_parser("cancel", help="cancel a workdir's Slurm job (finished stages are kept)")
    add_target(c)
    c.set_defaults(func=cmd_cancel)


def _printer(line: str) -> None:
    print(line, flush=True)


def cmd_submit(args: argparse.Namespace) -> int:
    from orchestrator.slurm.submit import follow, submit
    from orchestrator.spec.sweep import load_or_fail

    sweep = load_or_fail(args.sweep, args.workdir, args.overrides)
    request = SlurmRequest.from_args(args)
    job, folder = submit(sweep, request, args.device)
    _printer(f"submitted Slurm job {job.job_id}; workdir {sweep.workdir}; logs {folder}")
    if not args.wait:
        _printer(f"follow it with: senet status {sweep.workdir}")
        return 0
    return follow(job, _printer)


def cmd_status(args: argparse.Namespace) -> int:
    """The Slurm job and its sweep when `senet submit` made one, else the local run's status
    from the workdir alone."""
    from orchestrator.run.status import local_status
    from orchestrator.slurm.submit import status, submission_exists
    from orchestrator.spec.paths import check_workdir

    workdir = resolve_target(args)
    check_workdir(workdir)
    workdir = workdir.resolve()
    if submission_exists(workdir):
        return status(workdir, _printer)
    for line in local_status(workdir):
        _printer(line)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from orchestrator.slurm.submit import cancel

    return cancel(resolve_target(args).resolve(), _printer)
