"""`senet verify WORKDIR`: check a workdir's store, checkpoints and records in full and
repair them (orchestrator.run.verify), without running a stage."""

from __future__ import annotations

import argparse

from orchestrator.cli.target import add_target, resolve_target
from orchestrator.errors import UserError


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check a workdir's artifacts, checkpoints and records; repair what is damaged",
        description="Check every committed artifact (meta.json and the size and sha256 of its "
        "files), every epoch checkpoint and every Parquet record under WORKDIR. Damaged "
        "artifacts and checkpoints are moved to WORKDIR/store/quarantine/ (the next `senet run` "
        "recomputes them); damaged records are quarantined and rebuilt from the store. Runs no "
        "stage. Exit status 0: nothing damaged; 1: damage found (and repaired, unless "
        "--dry-run).",
    )
    add_target(p)
    p.add_argument("--dry-run", action="store_true", help="report only; move nothing")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from orchestrator.run.verify import verify_workdir

    resolve_target(args)
    if not args.workdir.is_dir():
        raise UserError(f"{args.workdir}: no such workdir")
    report = verify_workdir(args.workdir, repair=not args.dry_run)
    return 0 if report.ok else 1
