"""`senet verify WORKDIR`: check everything a workdir holds, in full, and repair what can be
repaired, without running a stage.

- every committed artifact: meta.json parses, each file it lists has its recorded size and
  sha256 (the full check that `senet run` does only for what it is about to read);
- every epoch checkpoint loads and holds what a resume needs;
- every record file reads as Parquet with the records' schema;
- the Optuna journal replays, line by line;
- every progress file (progress/plan.json, progress/KEY.json) is what `senet status` reads.

Repairing is what a run would do on meeting the damage: a damaged artifact or checkpoint is
moved to <workdir>/store/quarantine/ (the next `senet run` recomputes it), a damaged record is
quarantined and rebuilt from the store, a damaged Optuna journal keeps its healthy operations
(the file is quarantined), a malformed progress file is quarantined (the next run writes it
again). With `repair=False` nothing is moved. Holds the workdir's lock, so it never moves a
file under a running sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.records.write import heal_record, record_problem, results_dir
from orchestrator.run.lock import workdir_lock
from orchestrator.run.status import progress_problems
from orchestrator.search.studies import journal_path, journal_problem, storage
from stages.artifacts import FILES
from stages.store import Store, discard_checkpoint, inspect, load_checkpoint, quarantine


@dataclass
class VerifyReport:
    artifacts: int = 0  # committed artifacts checked
    unverifiable: int = 0  # committed before sizes and hashes were recorded
    unfinished: int = 0  # folders without meta.json: an interrupted stage, harmless
    checkpoints: int = 0
    records: int = 0
    damaged: list[str] = field(default_factory=list)  # one line per damaged file
    orphans: int = 0  # records of artifacts no longer in the store

    @property
    def ok(self) -> bool:
        return not self.damaged

    def summary(self) -> str:
        return (
            f"{self.artifacts} artifacts ({self.unverifiable} without recorded checksums), "
            f"{self.checkpoints} checkpoints, {self.records} records checked; "
            f"{len(self.damaged)} damaged; {self.unfinished} unfinished stage folders"
        )


def verify_workdir(
    workdir: Path, repair: bool = True, printer: Callable[[str], None] = print
) -> VerifyReport:
    """Check (and with `repair`, heal) a workdir; one line per damaged file, then a summary."""
    workdir = Path(workdir)
    with workdir_lock(workdir, "senet verify"):
        report = VerifyReport()
        store = Store.of_workdir(workdir)
        _artifacts(store, report, repair, printer)
        _checkpoints(store, report, repair, printer)
        _records(workdir, store, report, repair, printer)
        _journal_and_progress(workdir, store, report, repair, printer)
    printer(report.summary())
    if report.orphans:
        printer(
            f"{report.orphans} records name an artifact that is no longer in the store "
            "(quarantined): the next `senet run` of their sweep recomputes and rewrites them"
        )
    return report


def _found(report: VerifyReport, line: str, repair: bool, printer: Callable[[str], None]) -> None:
    report.damaged.append(line)
    printer(f"damaged: {line}" + ("" if repair else " (left in place: --dry-run)"))


def _artifacts(
    store: Store, report: VerifyReport, repair: bool, printer: Callable[[str], None]
) -> None:
    for stage, key in store.entries():
        folder = store.folder(stage, key)
        meta, damage = inspect(folder, deep=True)
        if damage is not None:
            _found(report, str(damage), repair, printer)
            if repair:
                store.set_aside(folder, damage)
            continue
        if meta is None:
            report.unfinished += 1
            continue
        report.artifacts += 1
        report.unverifiable += FILES not in meta


def _checkpoints(
    store: Store, report: VerifyReport, repair: bool, printer: Callable[[str], None]
) -> None:
    for ckpt in store.checkpoints():
        report.checkpoints += 1
        try:
            load_checkpoint(ckpt, "cpu")
        except Exception as e:
            detail = " ".join(f"{type(e).__name__}: {e}".split())[:160]
            _found(report, f"{ckpt}: unreadable epoch checkpoint ({detail})", repair, printer)
            if repair:
                discard_checkpoint(ckpt, e)


def _records(
    workdir: Path, store: Store, report: VerifyReport, repair: bool, printer: Callable[[str], None]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in sorted(results_dir(workdir).glob("sweep=*/stage=*/*.parquet")):
        report.records += 1
        problem = record_problem(path)  # the footer; then every page, as a reader would
        try:
            cols = ["key", "status"]
            rows = [] if problem else pq.read_table(path, columns=cols).to_pylist()
        except (OSError, ValueError, pa.ArrowException) as e:
            problem = f"not a readable Parquet file ({' '.join(str(e).split())[:160]})"
        if problem is None:
            stage = int(path.parent.name.removeprefix("stage="))
            for r in rows:  # one row, or a compacted file's many: each names its own key
                if r["status"] in ("completed", "reused"):
                    report.orphans += inspect(store.folder(stage, r["key"]))[0] is None
            continue
        _found(report, f"{path}: {problem}", repair, printer)
        if repair and not heal_record(workdir, path, problem):
            printer(f"  {path.name}: no artifact to rebuild it from; a rerun records it again")


def _journal_and_progress(
    workdir: Path, store: Store, report: VerifyReport, repair: bool, printer: Callable[[str], None]
) -> None:
    """The Optuna journal (healed as a run opens it) and the progress files (set aside)."""
    if problem := journal_problem(workdir):
        line = f"{journal_path(workdir)}: damaged Optuna journal ({problem})"
        _found(report, line, repair, printer)
        if repair:
            storage(workdir)  # opening it for a run heals it
    for path, problem in progress_problems(workdir):
        _found(report, f"{path}: {problem}", repair, printer)
        if repair:
            quarantine(path, f"{path}: {problem}", store.quarantine_dir)
