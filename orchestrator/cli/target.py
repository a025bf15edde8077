"""SWEEP|WORKDIR: the commands that read a workdir (results, status, cancel, export, verify,
compact) take the sweep file that names it as well, through this one resolution, so the
quick start's `senet results sweeps/demo.toml` finds what `senet run sweeps/demo.toml` wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.sweep_cmds import OVERRIDES_HELP
from orchestrator.errors import UserError

TARGET_HELP = "a sweep file (its workdir, with any KEY=VALUE overrides) or a sweep's workdir"


def add_target(p: argparse.ArgumentParser, overrides: bool = True) -> None:
    """The SWEEP|WORKDIR positional (as `workdir`), then, unless a command has more
    positionals of its own, the overrides that may set the file's workdir or name."""
    p.add_argument("workdir", type=Path, metavar="SWEEP|WORKDIR", help=TARGET_HELP)
    if overrides:
        add_target_overrides(p)


def add_target_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help=f"with a sweep file: {OVERRIDES_HELP}"
    )


def resolve_target(args: argparse.Namespace) -> Path:
    """Set `args.workdir` to the workdir it names, and `args.sweep` (where the command has
    --sweep and it was not given) to the sweep file's name: a folder is the workdir; a file is
    a sweep file, read as `senet run` reads it (overrides included) but without looking for
    its data. A path that is neither stays a workdir, which each command refuses in its own
    words."""
    given: Path = args.workdir
    overrides = list(getattr(args, "overrides", None) or ())
    if given.is_dir() or not (given.is_file() or given.suffix == ".toml"):
        if overrides:
            raise UserError(
                f"{given}: KEY=VALUE overrides apply to a sweep file, and this is a workdir"
            )
        return given
    from orchestrator.spec.sweep import load_or_fail

    sweep = load_or_fail(given, overrides=overrides, find_data=False)
    args.workdir = sweep.workdir
    if getattr(args, "sweep", "absent") is None:
        args.sweep = sweep.name
    return sweep.workdir
