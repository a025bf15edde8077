"""`senet init [NAME] [PATH]`: write a shipped sweep file where the user can edit it."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.errors import UserError


def add_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="write a shipped sweep file (default: the demo) to edit and run",
        description="Write one of the sweep files that ship with senet-sweep to PATH (default "
        "NAME.toml here; a folder gets NAME.toml inside it), to edit and then run with "
        "`senet validate PATH` and `senet run PATH`. --list shows the shipped files.",
    )
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="a shipped sweep (demo)")
    p.add_argument("path", nargs="?", type=Path, default=None, metavar="PATH")
    p.add_argument("--list", action="store_true", help="list the shipped sweep files")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from orchestrator.spec.shipped import DEFAULT, shipped_sweeps, summary

    sweeps = shipped_sweeps()
    if args.list:
        width = max(map(len, sweeps))
        for name, source in sweeps.items():
            print(f"{name:<{width}}  {summary(source.read_text())}")
        return 0
    name = args.name or DEFAULT
    if name not in sweeps:
        raise UserError(f"no shipped sweep {name!r}; choose one of: {', '.join(sweeps)}")
    path = args.path if args.path is not None else Path(f"{name}.toml")
    if path.is_dir():
        path = path / f"{name}.toml"
    if path.exists() and not args.force:
        raise UserError(f"{path} exists; give another PATH, or --force to overwrite it")
    try:
        path.write_text(sweeps[name].read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot write it: {e.strerror or e}") from None
    print(f"wrote {path} (the shipped {name} sweep); next: senet validate {path}")
    return 0
