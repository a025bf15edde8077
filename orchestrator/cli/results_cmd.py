"""`senet results`: query, rank, export and plot a workdir's Parquet records.

Only argparse here at import time, so that building the CLI parser stays fast; pyarrow and
matplotlib load when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.cli.target import add_target, resolve_target
from orchestrator.errors import UserError

EPILOG = """\
examples:
  senet results work/                                   every record, all stages
  senet results work/ --stage 3 --where "budget<=50000 and tau>2"
  senet results work/ --best-per-budget --format csv > best.csv
  senet results work/ --pareto --format json
  senet results work/ --plot front.png --reference cifar100-resnet18
  senet results work/ --plot test.png --metric test_acc --reference cifar100-resnet18

--pareto, --best-per-budget and --plot rank finished models: stage-3 records (or --stage)
with status completed or reused (failed and early-stopped runs are left out). Ranking
reads val_acc only, never test_acc. The Pareto
front (fewer ReLUs, higher val_acc) is taken per (dataset, model); with --best-per-budget
too, it is the front of the best-per-budget rows. --plot draws val_acc (or --metric
test_acc: the same val_acc front, at its test accuracies); published --reference points are
test accuracies, and a reference of another dataset or model than the records is warned of.
--plot needs matplotlib: pip install 'senet-sweep[plot]'.
"""


def add_results(sub: argparse._SubParsersAction) -> None:
    from orchestrator.analysis.reference import REFERENCES

    p = sub.add_parser(
        "results",
        help="query, rank, export and plot the records of sweeps",
        description="Read the Parquet records under WORKDIR/results (of a sweep file: its workdir, its sweep) and print them as a table,\n"
        "CSV or JSON, optionally filtered, reduced to the best run per budget or to the\n"
        "accuracy/ReLU Pareto front, or plotted.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target(p)
    p.add_argument("--sweep", default=None, help="only this sweep")
    p.add_argument("--stage", type=int, choices=(1, 2, 3), default=None, help="only this stage")
    p.add_argument(
        "--where",
        default=None,
        metavar="EXPR",
        help='filter, e.g. "budget<=50000 and status=completed"; ops = == != < <= > >=',
    )
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (table); csv and json hold every column unless --columns",
    )
    p.add_argument("--pareto", action="store_true", help="only the ReLU/val_acc Pareto front")
    p.add_argument(
        "--best-per-budget", action="store_true", help="the best val_acc per (sweep, budget)"
    )
    p.add_argument(
        "--plot", type=Path, default=None, metavar="FILE.png", help="write a plot instead"
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="NAME",
        help=f"with --plot, overlay published points (test accuracies): {', '.join(REFERENCES)}",
    )
    p.add_argument(
        "--metric",
        choices=("val_acc", "test_acc"),
        default=None,
        help="with --plot, the accuracy on the y axis (val_acc)",
    )
    p.add_argument("--columns", default=None, metavar="C1,C2", help="columns to print, in order")
    p.set_defaults(func=cmd_results)


def cmd_results(args: argparse.Namespace) -> int:
    from orchestrator.analysis import plot, results, selection
    from orchestrator.analysis.reference import REFERENCES

    resolve_target(args)
    reference = _reference(args.reference, args.plot, REFERENCES)
    if args.plot is not None:
        from orchestrator.spec.paths import check_output

        plot.require_matplotlib()  # before any record is read
        check_output("--plot", args.plot, folder=False)
    elif args.metric is not None:
        raise UserError("--metric picks the plot's y axis; add --plot FILE.png")
    ranking = args.pareto or args.best_per_budget or args.plot is not None
    default_cols = results.TABLE_COLUMNS if args.format == "table" else results.ALL_COLUMNS
    columns = results.parse_columns(args.columns, default_cols)
    stage = args.stage if args.stage is not None or not ranking else 3

    table = results.load(args.workdir, args.sweep, stage)
    where_expr = results.parse_where(args.where) if args.where else None  # errors before emptiness
    if where_expr is not None and table.num_rows:
        table = table.filter(where_expr)
    if ranking and table.num_rows:
        table = results.finished(table)
    rows = table.to_pylist()
    if args.best_per_budget:
        rows = selection.best_per_budget(rows)
    if args.pareto:
        rows = selection.pareto_rows(rows)
    rows = results.sort_rows(rows)

    if args.plot is not None:
        if not rows:
            raise UserError(f"nothing to plot: {_nothing(args, stage, ranking)}")
        if reference is not None and (warning := plot.reference_mismatch(rows, args.reference)):
            print(f"senet results: warning: {warning}", file=sys.stderr)
        path = plot.plot(rows, args.plot, reference, args.reference, args.metric or "val_acc")
        print(f"wrote {path}")
        return 0
    if not rows:
        return _print_empty(args, stage, ranking, columns)
    sys.stdout.write(results.render(rows, columns, args.format))
    return 0


def _reference(name: str | None, plot: Path | None, refs: dict) -> dict | None:
    if name is None:
        return None
    if name not in refs:
        raise UserError(f"unknown --reference {name!r}; choose one of: {', '.join(refs)}")
    if plot is None:
        raise UserError("--reference overlays published points on a plot; add --plot FILE.png")
    return refs[name]


def _nothing(args: argparse.Namespace, stage: int | None, ranking: bool) -> str:
    """Which filters left nothing, and which sweeps exist when --sweep named none of them."""
    from orchestrator.analysis.results import FINISHED, sweeps_present

    parts = [f"workdir {args.workdir}"]
    if args.sweep is not None:
        parts.append(f"sweep={args.sweep}")
    if stage is not None:
        parts.append(f"stage={stage}")
    if ranking:
        parts.append(f"status {'|'.join(FINISHED)} with val_acc")
    if args.where:
        parts.append(f"--where {args.where!r}")
    msg = "no records match " + ", ".join(parts)
    present = sweeps_present(args.workdir)
    if args.sweep is not None and args.sweep not in present:
        msg += f"; sweeps present: {', '.join(present) or 'none'}"
    return msg


def _print_empty(
    args: argparse.Namespace, stage: int | None, ranking: bool, columns: list[str]
) -> int:
    """A table gets the message; csv and json stay parseable (header only, `[]`) and the
    message goes to stderr."""
    from orchestrator.analysis.results import render

    msg = _nothing(args, stage, ranking)
    if args.format == "table":
        print(msg)
    else:
        sys.stdout.write(render([], columns, args.format))
        print(msg, file=sys.stderr)
    return 0
