"""What `senet run` prints at its end: the sweep's stage-3 records as a table and, when
stages failed, what failed (each one's error in one line and its traceback file) and what
was skipped behind them."""

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
    printer(format_table(rows, COLUMNS) if rows else "no stage-3 results yet")
    printer(f"\nParquet records: {results_dir(sweep.workdir)} (sweep={sweep.name})")


def print_failures(
    sweep: Sweep, run_id: str, skipped: int, printer: Callable[[str], None] = print
) -> None:
    """The run's failed stage executions, from their records (one line each: its error, and
    where its whole traceback is), and how many were skipped behind them: the last lines of
    a run with failures."""
    rows = [
        r
        for r in read_records(sweep.workdir, sweep=sweep.name).to_pylist()
        if r["status"] == "failed" and r["run_id"] == run_id
    ]
    printer(
        f"\n{len(rows)} stage executions failed (status=failed in the records); "
        f"{skipped} skipped behind them (never started)"
    )
    for r in rows:
        what = f"stage{r['stage']} budget={r['budget']}" + (
            f" tau={r['tau']:g}" if r["stage"] == 3 and r["tau"] is not None else ""
        )
        printer(f"  FAILED {what} ({r['key']}): {r['error'] or 'no error recorded'}")
        if r["error_log"]:
            printer(f"         full traceback: {r['error_log']}")
