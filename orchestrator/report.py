"""The results table printed at the end of `senet run`."""

from __future__ import annotations

from collections.abc import Callable

from .records import read_records, results_dir
from .sweep import Sweep


def print_results(sweep: Sweep, printer: Callable[[str], None] = print) -> None:
    table = read_records(sweep.workdir, sweep=sweep.name, stage=3).to_pylist()
    rows = sorted(table, key=lambda r: (r["budget"] or 0, r["tau"] or 0, r["key"]))
    cols = (
        "budget",
        "relu_count",
        "val_acc",
        "test_acc",
        "tau",
        "gamma",
        "alpha",
        "beta",
        "status",
    )
    printer("")
    printer("  ".join(f"{c:>10}" for c in cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, float):
                cells.append(f"{v:>10.4f}" if c.endswith("acc") else f"{v:>10.4g}")
            else:
                cells.append(f"{'' if v is None else v:>10}")
        printer("  ".join(cells))
    printer(f"\nParquet records: {results_dir(sweep.workdir)} (sweep={sweep.name})")
