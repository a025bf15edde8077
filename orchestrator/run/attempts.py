"""Stage attempts that ended without an artifact, as the workdir keeps them for `senet
status` and the run's own lines: a failure's error in one line (error_summary), the attempts
lost on a dead host and retried (progress/lost.jsonl), and the stage-3 trials ASHA stopped
early (their `stopped` records: the one home of that fact)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ERROR_CHARS = 200  # a failure's one line, at most
PROGRESS = "progress"  # <workdir>/progress/: what a run leaves for `senet status`

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXCEPTION = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\w*)(?::\s*(.*))?$"
)
_WRAPPERS = ("ray.", "RayTaskError", "RayActorError", "TuneError")


def error_summary(text: str) -> str:
    """The stage's own exception from a Ray error file or traceback, in one line: the last
    exception line that is not one of Ray's wrappers (`Type: message`), with the lines of its
    message that follow, colour codes removed, cut at 200 characters (the record's `error`
    and the FAILED line; the whole traceback stays in its file)."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    at = None
    for i, line in enumerate(lines):
        m = _EXCEPTION.match(line)
        if m and not m.group(1).startswith(_WRAPPERS):
            at = i
    if at is None:
        found = [next((line for line in reversed(lines) if line), "")]
    else:
        found = [lines[at]]
        for line in lines[at + 1 :]:
            if line.startswith(("File ", "Traceback", "The above exception")):
                break
            found.append(line)
    text = " ".join(" ".join(found).split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


LOST = "lost.jsonl"  # in progress/: one line per attempt of a stage that was lost and retried


def record_lost(workdir: Path, attempt: dict[str, Any]) -> None:
    """Append one lost attempt (run_id, stage, key, host, epoch, epochs, error) in one write:
    the one home of that fact, read by `senet status` during the run and after it."""
    path = Path(workdir) / PROGRESS / LOST
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(attempt, default=str) + "\n")


def read_lost(workdir: Path, run_id: object) -> list[dict[str, Any]]:
    """The run's lost attempts, oldest first; a torn or foreign line is skipped."""
    try:
        lines = (Path(workdir) / PROGRESS / LOST).read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("run_id") == run_id:
            found.append(row)
    return found


def lost_text(attempt: dict[str, Any]) -> str:
    """One lost attempt of a stage: `lost on node3 at epoch 4/20: <its error>`."""
    where = f" on {attempt['host']}" if attempt.get("host") else ""
    at = f" at epoch {attempt['epoch']}/{attempt['epochs']}" if attempt.get("epochs") else ""
    return f"lost{where}{at}: {attempt.get('error') or 'no error recorded'}"


def read_stopped(workdir: Path, sweep: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """key -> the `stopped` record (the epoch it reached, its val_acc) of those of `keys`
    whose stage-3 trial ASHA stopped early. Reads records (pyarrow): call it only where a
    search may stop trials (the Optuna modes)."""
    from orchestrator.records.read import read_records

    wanted = set(keys)
    if not wanted:
        return {}
    table = read_records(workdir, sweep=sweep, stage=3)
    rows = table.select(["key", "status", "epochs", "val_acc"]).to_pylist()
    return {r["key"]: r for r in rows if r["status"] == "stopped" and r["key"] in wanted}


def stopped_text(record: dict[str, Any], epochs: object) -> str:
    """`stopped by ASHA at epoch 1/2 (val 0.5000)`: never pending, never resumed."""
    val = record.get("val_acc")
    text = f"stopped by ASHA at epoch {record.get('epochs')}/{epochs}"
    return text + (f" (val {val:.4f})" if isinstance(val, (int, float)) else "")
