"""`senet compact WORKDIR`: fold each (sweep, stage)'s one-record Parquet files into one
file (orchestrator.records.compact), under the workdir's lock, without running a stage."""

from __future__ import annotations

import argparse

from orchestrator.cli.target import add_target, resolve_target
from orchestrator.errors import UserError


def add_compact(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compact",
        help="fold a workdir's one-record Parquet files into one file per sweep and stage",
        description="Fold the Parquet records under WORKDIR/results into one "
        "compacted.parquet per sweep and stage, so that readers open a few files instead of "
        "one per stage execution. Atomic: a reader at any moment sees every record once. "
        "`senet run` does this itself at its end for partitions with many records.",
    )
    add_target(p)
    p.add_argument("--sweep", metavar="NAME", help="only this sweep's records")
    p.set_defaults(func=cmd_compact)


def cmd_compact(args: argparse.Namespace) -> int:
    from orchestrator.records.compact import compact_workdir
    from orchestrator.records.write import results_dir
    from orchestrator.run.lock import workdir_lock

    resolve_target(args)
    if not args.workdir.is_dir():
        raise UserError(f"{args.workdir}: no such workdir")
    if not results_dir(args.workdir).is_dir():
        raise UserError(f"no records under {results_dir(args.workdir)}; nothing to compact")
    with workdir_lock(args.workdir, "senet compact"):
        folded = compact_workdir(args.workdir, args.sweep)
    for (sweep, stage), n in folded.items():
        print(f"sweep={sweep}/stage={stage}: {n} record files folded into compacted.parquet")
    print(f"compacted {sum(folded.values())} record files in {len(folded)} partitions")
    return 0
