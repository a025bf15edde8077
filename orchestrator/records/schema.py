"""What a record holds: one row per stage execution, built from the stage's committed
metadata (or, for a run that left no artifact, from its plan node). A record is a pure
function of that metadata, so it can be (re)built at any time. Schema changes only add
nullable columns and bump SCHEMA_VERSION.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 4  # 2: method, init, hamming; 3: stage1_key; 4: error_log

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("run_id", pa.string()),
        ("key", pa.string()),
        ("parent_key", pa.string()),
        ("model", pa.string()),
        ("dataset", pa.string()),
        ("seed", pa.int64()),
        ("budget", pa.int64()),
        ("relu_count", pa.int64()),
        ("relu_total", pa.int64()),
        ("relu_per_layer", pa.list_(pa.int64())),
        ("granularity", pa.string()),
        ("allocation", pa.string()),
        ("tau", pa.float64()),
        ("gamma", pa.float64()),
        ("alpha", pa.float64()),
        ("beta", pa.float64()),
        ("lr", pa.float64()),
        ("epochs", pa.int64()),
        ("val_acc", pa.float64()),
        ("test_acc", pa.float64()),
        ("status", pa.string()),  # completed | reused | failed | stopped
        ("error", pa.string()),
        ("started_at", _TS),
        ("finished_at", _TS),
        ("wall_s", pa.float64()),
        ("hostname", pa.string()),
        ("slurm_job_id", pa.string()),
        ("ray_trial_id", pa.string()),
        ("artifact", pa.string()),
        ("code_version", pa.string()),
        ("optuna_study", pa.string()),
        ("optuna_trial", pa.int64()),
        ("method", pa.string()),  # the stage-2 mask search (stage-3 records: of their parent)
        ("init", pa.string()),
        ("hamming", pa.float64()),  # stage 2: mask change over its last epoch (0: settled)
        ("stage1_key", pa.string()),  # the stage-1 execution (teacher) it descends from
        ("error_log", pa.string()),  # a failed execution: the file with its full traceback
    ]
)
PARTITIONS = pa.schema([("sweep", pa.string()), ("stage", pa.int32())])


def _ts(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


# ANSI escape sequences (CSI colours and cursor moves, OSC titles and links, charset and other
# short escapes) and the other control characters a terminal-bound traceback carries; newline
# and tab stay.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_text(text: str | None) -> str | None:
    """`text` without terminal escape codes or control characters: the error column is read
    by people and by queries (`error LIKE '%...%'`), not replayed on a terminal."""
    if text is None:
        return None
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


def _stage1_key(meta: dict[str, Any]) -> str | None:
    """The teacher's key: a stage-1 result is its own, stage 2's parent is it, stage 3's
    metadata carries it."""
    stage = int(meta.get("stage", 0))
    return {1: meta["key"], 2: meta.get("parent_key")}.get(stage, meta.get("stage1_key"))


def _settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The record columns a stage config sets (distillation and optimiser)."""
    optim = cfg.get("optim", {})
    return {
        "tau": cfg.get("tau"),
        "gamma": cfg.get("gamma"),
        "alpha": cfg.get("alpha"),
        "beta": cfg.get("beta"),
        "lr": optim.get("lr"),
        "epochs": optim.get("epochs"),
    }


def row_from_meta(meta: dict[str, Any], sweep: str, artifact: Path | str) -> dict[str, Any]:
    """A record from a committed stage's metadata. `completed` when this sweep ran it,
    `reused` when the store already had it from another sweep."""
    cfg = meta.get("config", {})
    prov = meta.get("provenance", {})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": prov.get("run_id"),
        "key": meta["key"],
        "parent_key": meta.get("parent_key"),
        "model": meta.get("model"),
        "dataset": meta.get("dataset"),
        "seed": meta.get("seed"),
        "budget": meta.get("budget"),
        "relu_count": meta.get("relu_count"),
        "relu_total": meta.get("relu_total"),
        "relu_per_layer": meta.get("relu_per_layer"),
        "granularity": meta.get("granularity", cfg.get("granularity")),
        "allocation": meta.get("allocation", cfg.get("allocation")),
        "method": meta.get("method", cfg.get("method")),
        "init": meta.get("init", cfg.get("init")),
        "hamming": (meta.get("hamming") or [None])[-1],
        "stage1_key": _stage1_key(meta),
        **_settings(cfg),
        "val_acc": meta.get("val_acc"),
        "test_acc": meta.get("test_acc"),
        "status": "completed" if prov.get("sweep") == sweep else "reused",
        "error": None,
        "error_log": None,
        "started_at": _ts(meta.get("started_at")),
        "finished_at": _ts(meta.get("finished_at")),
        "wall_s": meta.get("wall_s"),
        "hostname": meta.get("hostname"),
        "slurm_job_id": prov.get("slurm_job_id"),
        "ray_trial_id": prov.get("ray_trial_id"),
        "artifact": str(artifact),
        "code_version": prov.get("code_version"),
        "optuna_study": prov.get("optuna_study"),
        "optuna_trial": prov.get("optuna_trial"),
    }


def row_without_artifact(
    node: dict[str, Any],
    model: str,
    dataset: str,
    status: str,
    provenance: dict[str, Any],
    error: str | None = None,
    last: dict[str, Any] | None = None,
    error_log: str | None = None,
) -> dict[str, Any]:
    """The record of a stage execution that left no artifact: `failed` (raised on every
    attempt; `error` says why in one line, `error_log` names the file with the whole
    traceback) or `stopped` (ASHA stopped it early; `last` is its last per-epoch result,
    whose val_acc Optuna was told)."""
    cfg, labels = node["config"], node.get("labels", {})
    last = last or {}
    optim = cfg.get("optim", {})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": provenance.get("run_id"),
        "key": node["key"],
        "parent_key": node.get("stage2_key") if node["stage"] == 3 else node.get("stage1_key"),
        "model": model,
        "dataset": dataset,
        "seed": labels.get("seed"),
        "budget": labels.get("budget"),
        "granularity": labels.get("granularity"),
        "allocation": labels.get("allocation"),
        "method": labels.get("method"),
        "init": labels.get("init"),
        "stage1_key": node["key"] if node["stage"] == 1 else node.get("stage1_key"),
        **_settings(cfg),
        "epochs": last.get("epoch", optim.get("epochs")),
        "val_acc": last.get("val_acc"),
        "status": status,
        "error": plain_text(error),
        "error_log": error_log,
        "finished_at": dt.datetime.now(tz=dt.UTC),
        "slurm_job_id": provenance.get("slurm_job_id"),
        "ray_trial_id": provenance.get("ray_trial_id"),
        "code_version": provenance.get("code_version"),
        "optuna_study": provenance.get("optuna_study"),
        "optuna_trial": provenance.get("optuna_trial"),
    }
