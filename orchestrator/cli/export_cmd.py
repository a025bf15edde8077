"""`senet export`: take finished models out of a workdir's store as self-contained file sets.

Only argparse at import time (the CLI parser stays fast); torch and pyarrow load when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.target import add_target, add_target_overrides, resolve_target
from orchestrator.errors import UserError

EPILOG = """\
examples:
  senet export runs/demo exported/ --best-per-budget
  senet export runs/demo exported/ --key 3f2a9c0d1e2b4a5c

Each model becomes OUT/<name>/model.pt (its state dict, masks included) and
OUT/<name>/export.json (architecture, dataset, input size, channels, classes, normalisation,
ReLU counts per layer, val/test accuracy, key). Load one back with PyTorch and stages/ only:
  from stages.export import load_exported
  exported = load_exported("exported/budget1500-3f2a9c0d1e2b4a5c")
  logits = exported.model(exported.normalize(images_uint8))
"""


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write finished models out of the store (best per budget, or by key)",
        description="Write finished models of WORKDIR's store to OUT, one folder each, that "
        "PyTorch and stages/ alone can load (stages.export.load_exported). --best-per-budget "
        "picks by val_acc, never test_acc, among stage-3 records completed or reused.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target(p, overrides=False)
    p.add_argument("out", type=Path, metavar="OUT", help="folder to write the exports to")
    add_target_overrides(p)
    p.add_argument(
        "--best-per-budget", action="store_true", help="the best val_acc per (sweep, budget)"
    )
    p.add_argument(
        "--key", nargs="+", default=[], metavar="KEY", help="these stage executions (any stage)"
    )
    p.add_argument("--sweep", default=None, help="with --best-per-budget: only this sweep")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from orchestrator.analysis.export import export_best_per_budget, export_keys
    from orchestrator.spec.paths import check_output

    resolve_target(args)
    if not args.best_per_budget and not args.key:
        raise UserError("say what to export: --best-per-budget, or --key KEY ...")
    check_output("OUT", args.out, folder=True)
    if not (args.workdir / "store").is_dir():
        raise UserError(f"{args.workdir}: no store/ here; is it a sweep's workdir?")
    written = []
    if args.best_per_budget:
        written += export_best_per_budget(args.workdir, args.out, args.sweep)
    if args.key:
        written += export_keys(args.workdir, args.out, args.key)
    for e in written:
        budget = f"budget {e.info['budget']}" if e.info.get("budget") is not None else "teacher"
        print(
            f"{e.folder}: {budget}, {e.info['relu_count']:,} ReLUs, "
            f"val {e.info['val_acc']:.4f}, test {e.info['test_acc']:.4f} (key {e.info['key']})"
        )
    print(f"exported {len(written)} model{'s' * (len(written) != 1)} to {args.out}")
    return 0
