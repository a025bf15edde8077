"""`senet validate` and `senet run`: the sweep commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import UserError

if TYPE_CHECKING:  # the commands import the library when they run: `senet --help` stays fast
    from orchestrator.spec.sweep import Sweep


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a sweep file and print its plan",
        description="Check a sweep file (one line naming the key and the problem if it is wrong) "
        "and print how many stage-1, stage-2 and stage-3 runs it needs and how many are done.",
    )
    p.add_argument("sweep", type=Path, help="sweep file (TOML), e.g. sweeps/demo.toml")
    p.add_argument("--workdir", type=Path, default=None, help="override the file's workdir")
    p.add_argument(
        "--json", action="store_true", help='print {"stage1": {"total": n, "done": k}, ...}'
    )
    p.set_defaults(func=cmd_validate)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a sweep on Ray Tune (resumes where it stopped)",
        description="Run every stage execution of a sweep as Ray Tune trials: stage 1 once per "
        "seed, stage 2 once per budget, stage 3 once per distillation setting; nothing already "
        "in the workdir's store runs again. Interrupt it at any time (Ctrl-C, kill -9) and run "
        "the same command to resume. Ends with a results table and the Parquet dataset's path.",
    )
    p.add_argument("sweep", type=Path, help="sweep file (TOML), e.g. sweeps/demo.toml")
    p.add_argument("--workdir", type=Path, default=None, help="override the file's workdir")
    p.add_argument(
        "--address",
        default=None,
        help="join this Ray cluster (host:port) instead of starting a local one; "
        "RAY_ADDRESS is used when set",
    )
    p.add_argument(
        "--device", default="auto", help="auto | cpu | cuda (trials with gpus > 0 use CUDA)"
    )
    p.set_defaults(func=cmd_run)


def _load(args: argparse.Namespace, write: bool = False) -> Sweep:
    """The checked sweep; its workdir must be a folder (and, with `write`, one this process
    can write: `senet run` creates it), refused in one line before Ray starts."""
    from orchestrator.spec.schema import workdir_problem
    from orchestrator.spec.sweep import load_or_fail

    if args.workdir is not None and (problem := workdir_problem(args.workdir)):
        raise UserError(f"--workdir: {problem}")
    sweep = load_or_fail(args.sweep, args.workdir)
    if write and (problem := workdir_problem(sweep.workdir, write=True)):
        where = "--workdir" if args.workdir is not None else f"{args.sweep}: [sweep] workdir"
        raise UserError(f"{where}: {problem}")
    return sweep


def cmd_validate(args: argparse.Namespace) -> int:
    from orchestrator.run.status import plan_summary

    sweep = _load(args)
    summary = plan_summary(sweep)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"sweep {sweep.name}: {sweep.model} on {sweep.dataset} ({sweep.relu_total:,} ReLUs), workdir {sweep.workdir}"
    )
    print(
        f"budgets: {', '.join(f'{b:,}' for b in sweep.budgets)}; seeds: {', '.join(map(str, sweep.seeds))}; search: {sweep.search.mode}"
    )
    for stage, counts in summary.items():
        print(f"{stage}: {counts['total']} runs, {counts['done']} done")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.analysis.report import print_results
    from orchestrator.run.driver import ConnectError, run_sweep

    sweep = _load(args, write=True)

    def printer(line: str) -> None:
        print(line, flush=True)

    try:
        summary = run_sweep(sweep, args.address, printer, args.device)
    except ConnectError as e:
        raise UserError(str(e)) from None
    print_results(sweep, printer)
    ran = ", ".join(f"stage{s} {n}" for s, n in summary.executed.items())
    printer(
        f"ran {sum(summary.executed.values())} stage executions ({ran}) in {summary.wall_s:.1f} s"
    )
    if summary.failed:
        printer(
            f"{len(summary.failed)} stage executions failed (status=failed in the records); {len(summary.skipped)} skipped behind them"
        )
        return 1
    if summary.interrupted:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
