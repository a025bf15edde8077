"""`senet export`: finished models out of a workdir's store, as file sets that need only
PyTorch and stages/ (stages/export.py owns the format and its loader).

Which models: the best per budget (selection.best_per_budget over finished stage-3 records,
by val_acc only), or named keys. Every artifact is checked in full (size and sha256, through
stages.store) before it is read; a damaged one is quarantined and refused in one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.analysis import results
from orchestrator.analysis.selection import best_per_budget
from orchestrator.errors import UserError
from stages.export import ExportError, export_artifact, export_name
from stages.store import DamagedArtifact, Store


@dataclass(frozen=True)
class Export:
    """One written export: its folder and its export.json."""

    folder: Path
    info: dict[str, Any]


def export_best_per_budget(workdir: Path, out: Path, sweep: str | None = None) -> list[Export]:
    """The best finished stage-3 model per (sweep, budget), each exported to OUT/<name>/."""
    table = results.load(workdir, sweep, 3)
    rows = results.sort_rows(best_per_budget(results.finished(table).to_pylist()))
    if not rows:
        only = f" of sweep {sweep}" if sweep else ""
        raise UserError(
            f"{workdir}: no finished stage-3 records{only} (status completed or reused) to export"
        )
    store = Store.of_workdir(workdir)
    return [_export(store, 3, r["key"], out, {"sweep": r["sweep"]}) for r in rows]


def export_keys(workdir: Path, out: Path, keys: Iterable[str]) -> list[Export]:
    """The named stage executions (of any stage), each exported to OUT/<name>/."""
    store = Store.of_workdir(workdir)
    done = []
    for key in keys:
        stages = [s for s in (1, 2, 3) if store.folder(s, key).is_dir()]
        if not stages:
            raise UserError(f"--key {key}: no stage execution with this key in {store}")
        done.append(_export(store, stages[-1], key, out))
    return done


def _export(store: Store, stage: int, key: str, out: Path, extra: dict | None = None) -> Export:
    try:
        folder = store.require(stage, key)  # whole, sha256 checked
        meta = store.meta(stage, key)
        assert meta is not None  # require checked it
        # the teacher: itself, stage 2's parent, or stage 3's stage1_key
        stage1_key = {1: key, 2: meta.get("parent_key"), 3: meta.get("stage1_key")}[stage]
        if not isinstance(stage1_key, str):
            raise ExportError(f"{folder}: its meta.json names no stage-1 key")
        teacher = store.require(1, stage1_key)
        probe = {"key": key, "stage": stage, "budget": meta.get("budget")}
        dest = Path(out) / export_name(probe)
        info = export_artifact(folder, teacher, dest, extra)
    except (DamagedArtifact, FileNotFoundError, ExportError) as e:
        raise UserError(f"cannot export stage {stage} {key}: {' '.join(str(e).split())}") from None
    return Export(dest, info)
