"""The results table printed at the end of `senet run`: the sweep's stage-3 records."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.analysis.results import format_table, sort_rows
from orchestrator.records.read import read_records
from orchestrator.records.write import results_dir
from orchestrator.spec.sweep import Sweep

COLUMNS = ("budget", "relu_count", "val_acc", "test_acc", "tau", "gamma", "alpha", "beta", "status")


def print_results(sweep: Sweep, printer: Callable[[str], None] = print) -> None:
    rows = sort_rows(read_records(sweep.workdir, sweep=sweep.name, stage=3).to_pylist())
    printer("")
    printer(format_table(rows, COLUMNS))
    printer(f"\nParquet records: {results_dir(sweep.workdir)} (sweep={sweep.name})")
