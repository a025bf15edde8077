"""How much of a sweep is planned, done and running, from the workdir alone (store, progress
files, run lock, records, Optuna journal): no Ray. What `senet validate` and `senet status`
print, and the text fragments the live status line shares with them."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.plan.plan import Node
from orchestrator.run.attempts import PROGRESS, lost_text, read_lost, read_stopped, stopped_text
from orchestrator.run.counts import Unsampled, sweep_counts
from orchestrator.run.eta import Work, duration, estimate
from orchestrator.run.lock import holder_run_id, lock_holder
from orchestrator.spec.sweep import Sweep
from stages.artifacts import atomic_write_bytes, jsonable
from stages.store import Store


def plan_summary(sweep: Sweep) -> dict[str, dict[str, Any]]:
    """{"stage1": {"total": n, "done": k}, ...} as orchestrator.run.counts counts it (with
    `"upper_bound": true` where a total is one): `senet validate --json`, `senet status`
    of a Slurm job."""
    return {f"stage{n}": c.to_json() for n, c in sweep_counts(sweep).items()}


# ---- A sweep you can watch: what a run leaves in <workdir>/progress/ for `senet status` ----
# plan.json: the run's nodes (key, stage, parents, epochs, labels), its id and concurrency,
# written by the driver's status line when the run starts (and again when Optuna samples
# nodes). <key>.json: one per unfinished stage execution, rewritten atomically by its trial
# after every epoch and removed once the stage commits; a stage that failed for good keeps it,
# with its error. Small JSON beside the store, not inside the epoch checkpoint: reading a
# checkpoint needs torch and the whole model, and the store's folders have rules of their own.
PLAN = "plan.json"


def progress_path(workdir: Path, key: str | None = None) -> Path:
    """<workdir>/progress/<key>.json, or the run's plan snapshot when `key` is None."""
    return Path(workdir) / PROGRESS / (PLAN if key is None else f"{key}.json")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(data, default=str).encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """A progress file, or None where it is missing or not a JSON object (never an error:
    progress is advisory, the store is the truth)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# The type of each field a progress file may hold, as the driver and the trials write them.
# A field of another type (a damaged or hand-edited file) is dropped on reading, so `senet
# status` never breaks on one; progress_problems names such files for `senet verify`.
_NUM = (int, float)
_KEY = re.compile(r"[A-Za-z0-9_-]+")  # a content key: never a path out of the store
_PLAN_FIELDS: dict[str, Any] = {
    "sweep": str,
    "run_id": str,
    "concurrency": int,
    "since": str,
    "phase": str,
}
_NODE_FIELDS: dict[str, Any] = {
    "key": str,
    "stage": int,
    "parents": list,
    "epochs": int,
    "labels": dict,
}
_PROGRESS_FIELDS: dict[str, Any] = {
    "run_id": str,
    "host": str,
    "pid": int,
    "epoch": int,
    "epochs": int,
    "epoch_s": _NUM,
    "val_acc": _NUM,
    "updated": _NUM,
    "measured": list,
    "failed": dict,
}


def _typed(data: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in data.items()
        if k in fields and isinstance(v, fields[k]) and not isinstance(v, bool)
    }


def plan_nodes(plan: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """plan.json's well-formed nodes (a key that names no path, a stage 1-3, string
    parents) and how many were not."""
    nodes, bad = [], 0
    for n in plan.get("nodes") or []:
        node = _typed(n, _NODE_FIELDS) if isinstance(n, dict) else {}
        if not _KEY.fullmatch(node.get("key", "")) or node.get("stage") not in (1, 2, 3):
            bad += 1
            continue
        node["parents"] = [p for p in node.get("parents", []) if isinstance(p, str)]
        nodes.append(node)
    return nodes, bad


def read_progress(path: Path) -> dict[str, Any] | None:
    """A stage execution's progress file with only its well-typed fields, or None."""
    data = read_json(path)
    if data is None:
        return None
    p = _typed(data, _PROGRESS_FIELDS)
    m = p.get("measured")
    if m is not None and not (len(m) == 2 and all(isinstance(x, _NUM) for x in m)):
        del p["measured"]
    if "failed" in p:
        f = p["failed"]
        p["failed"] = {"error": str(f.get("error", "")), "log": f.get("log")}
    return p


def _count(data: dict[str, Any], fields: dict[str, Any]) -> int:
    return sum(k in data for k in fields)


def progress_problems(workdir: Path) -> list[tuple[Path, str]]:
    """The progress files `senet status` cannot read whole: (path, problem), for verify."""
    plan_path = progress_path(workdir)
    found = []
    for path in sorted(plan_path.parent.glob("*.json")):
        data = read_json(path)
        if data is None:
            found.append((path, "not a JSON object"))
        elif path == plan_path:
            whole = isinstance(data.get("nodes"), list) and not plan_nodes(data)[1]
            if not whole or len(_typed(data, _PLAN_FIELDS)) < _count(data, _PLAN_FIELDS):
                found.append((path, "not a run's plan (its nodes or fields are malformed)"))
        elif len(read_progress(path) or {}) < _count(data, _PROGRESS_FIELDS):
            found.append((path, "a progress file with malformed fields"))
    return found


def write_plan(
    workdir: Path,
    sweep: str,
    run_id: str,
    nodes: Iterable[Node],
    slots: int,
    outside: Iterable[Unsampled] = (),
    phase: str = "",
) -> None:
    """The run's plan snapshot, for `senet status` to tell pending from done without the
    sweep file; `outside`: the executions not (yet) among its nodes (Optuna trials not
    sampled yet, finished by earlier runs); `phase`: what the run does before its first
    epoch (starting Ray, waiting for trials), empty once trials report."""
    rows = [
        {
            "key": n.key,
            "stage": n.stage,
            "parents": [k for k in (n.stage1_key, n.stage2_key) if k],
            "epochs": int(n.config.optim.epochs),
            "labels": jsonable(n.labels),
        }
        for n in nodes
    ]
    since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    data = {"sweep": sweep, "run_id": run_id, "concurrency": slots, "since": since}
    data["phase"] = phase
    extra = [u.to_json() for u in outside]
    write_json(progress_path(workdir), {**data, "nodes": rows, "outside": extra})


def varying(nodes: Iterable[tuple[int, dict[str, Any]]]) -> set[tuple[int, str]]:
    """The (stage, label) pairs whose values differ between a stage's executions."""
    values: dict[tuple[int, str], set[str]] = {}
    for stage, labels in nodes:
        for k, v in labels.items():
            values.setdefault((stage, k), set()).add(repr(v))
    return {sk for sk, vs in values.items() if len(vs) > 1}


def label_text(stage: int, labels: dict[str, Any], vary: set[tuple[int, str]], key: str) -> str:
    """Only the labels that tell this stage's executions apart (budget, tau, ...)."""
    shown = [k for k in labels if (stage, k) in vary]
    return " ".join(f"{k}={_short(labels[k])}" for k in shown) or f"key={key}"


def running_text(
    stage: int, labels: str, epoch: Any, epochs: Any, epoch_s: Any, val_acc: Any
) -> str:
    """One running execution: `stage2 budget=3000 epoch 3/10 4.2 s/epoch val 0.8125`."""
    text = f"stage{stage} {labels}"
    if epoch is not None:
        text += f" epoch {epoch}/{epochs}"
    if isinstance(epoch_s, (int, float)):
        text += f" {epoch_s:.1f} s/epoch"
    if isinstance(val_acc, (int, float)):
        text += f" val {val_acc:.4f}"
    return text


def has_local_run(workdir: Path) -> bool:
    return progress_path(workdir).exists()


def local_status(workdir: Path, now: float | None = None) -> list[str]:
    """`senet status WORKDIR` of a local (or Slurm) run, from the workdir alone: who holds
    it, done / running / pending / failed per stage with each running stage's epoch, the
    best validation accuracy per budget, and the ETA."""
    workdir = Path(workdir)
    held, holder = lock_holder(workdir)
    plan = read_json(progress_path(workdir))
    if held and (starting := _starting(workdir, holder, plan)):
        return starting
    if plan is None or not isinstance(plan.get("nodes"), list):
        raise UserError(
            f"{progress_path(workdir)}: no run recorded in {workdir} (missing or unreadable); "
            "`senet run SWEEP` writes it"
        )
    nodes, malformed = plan_nodes(plan)
    outside = {
        u.stage: u for u in map(Unsampled.from_json, plan.get("outside") or []) if u is not None
    }
    plan = _typed(plan, _PLAN_FIELDS)
    now = time.time() if now is None else now
    store = Store.of_workdir(workdir)
    vary = varying((int(n["stage"]), n.get("labels") or {}) for n in nodes)
    measured: dict[int, tuple[int, float]] = {}
    best: dict[int, float] = {}
    done: set[str] = set()
    progress: dict[str, dict[str, Any]] = {}
    for n in nodes:
        stage, key = int(n["stage"]), str(n["key"])
        meta = store.meta(stage, key)
        if meta is not None:
            done.add(key)
            epochs = len(meta.get("history") or [])
            if epochs and isinstance(meta.get("wall_s"), (int, float)) and meta["wall_s"] > 0:
                c, t = measured.get(stage, (0, 0.0))
                measured[stage] = (c + epochs, t + float(meta["wall_s"]))
            budget = (n.get("labels") or {}).get("budget")
            if stage == 3 and isinstance(budget, int) and isinstance(meta.get("val_acc"), float):
                best[budget] = max(best.get(budget, 0.0), meta["val_acc"])
            continue
        p = read_progress(progress_path(workdir, key))
        if p is not None:
            progress[key] = p
            m = p.get("measured")
            if isinstance(m, list) and len(m) == 2 and m[0]:
                c, t = measured.get(stage, (0, 0.0))
                measured[stage] = (c + int(m[0]), t + float(m[1]))
    failed = {k for k, p in progress.items() if isinstance(p.get("failed"), dict)}
    running = {
        k
        for k, p in progress.items()
        if held and k not in failed and p.get("run_id") == plan.get("run_id")
    }
    # ASHA stops trials only in the Optuna modes (those with trials outside the nodes). A
    # stopped record wins over a progress file left beside it, unless that one runs now.
    unfinished = (str(n["key"]) for n in nodes if n["key"] not in done | running | failed)
    stopped = read_stopped(workdir, str(plan.get("sweep")), unfinished) if outside else {}
    blocked: set[str] = set()
    for n in nodes:  # parents come before children
        if any(p in failed or p in blocked for p in n.get("parents", [])):
            blocked.add(str(n["key"]))
    left = len(nodes) - len(done) - len(stopped) + sum(u.pending for u in outside.values())
    state = "running" if held else ("finished" if not left else "not running")
    lines = [
        f"sweep {plan.get('sweep')} in {workdir}: {state}"
        + (f" ({holder})" if holder and held else "")
    ]
    if not held and holder:
        lines.append(f"last run: {holder}")
    if malformed:
        lines.append(
            f"warning: {malformed} malformed nodes in {progress_path(workdir)} left out "
            "(`senet verify` sets the file aside; the next `senet run` rewrites it)"
        )
    for stage in (1, 2, 3):
        keys = [str(n["key"]) for n in nodes if int(n["stage"]) == stage]
        if not keys and stage not in outside:
            continue
        count = {
            "done": sum(k in done for k in keys),
            "running": sum(k in running for k in keys),
            "stopped": sum(k in stopped for k in keys),
            "failed": sum(k in failed for k in keys),
            "blocked": sum(k in blocked for k in keys),
        }
        u = outside.get(stage)
        pending = len(keys) - sum(count.values()) + (u.pending if u else 0)
        count = {
            "done": count.pop("done") + (u.done if u else 0),
            "running": count.pop("running"),
            "pending": pending,
            **count,
        }
        lines.append(
            f"stage{stage}: "
            + ", ".join(f"{v} {k}" for k, v in count.items() if v or k in ("done", "pending"))
            + (u.note() if u else "")
        )
        for n in nodes:
            key = str(n["key"])
            if int(n["stage"]) != stage or (key not in progress and key not in stopped):
                continue
            labels = label_text(stage, n.get("labels") or {}, vary, key)
            if key in stopped:
                text = stopped_text(stopped[key], n.get("epochs"))
                lines.append(f"  stopped stage{stage} {labels}: {text}")
                continue
            p = progress[key]
            if key in failed:
                f = p["failed"]
                lines.append(f"  FAILED  stage{stage} {labels}: {f.get('error', '')}")
                if f.get("log"):
                    lines.append(f"          full log: {f['log']}")
                continue
            text = running_text(
                stage, labels, p.get("epoch"), p.get("epochs"), p.get("epoch_s"), p.get("val_acc")
            )
            if key in running:
                age = now - float(p.get("updated", now))
                lines.append(
                    f"  running {text} (on {p.get('host')} pid {p.get('pid')}, {duration(age)} ago)"
                )
            else:
                lines.append(f"  resumes {text} (interrupted; its epoch checkpoint stays)")

    lost = read_lost(workdir, plan.get("run_id"))
    if lost:
        lines.append(f"lost attempts (retried): {len(lost)}")
    for attempt in lost:
        n = next((n for n in nodes if n["key"] == attempt.get("key")), None)
        labels = (
            label_text(int(n["stage"]), n.get("labels") or {}, vary, str(n["key"])) if n else ""
        )
        lines.append(f"  stage{attempt.get('stage')} {labels} {lost_text(attempt)}")
    if held and plan.get("phase"):
        lines.append(f"run {plan.get('run_id')}: {plan['phase']}")
    if best:
        lines.append(
            "best val_acc by budget: " + ", ".join(f"{b}: {a:.4f}" for b, a in sorted(best.items()))
        )
    if held:
        work = [
            Work(
                str(n["key"]),
                int(n["stage"]),
                int(n.get("epochs", 1)),
                int(progress.get(str(n["key"]), {}).get("epoch") or 0),
                tuple(n.get("parents", [])),
                str(n["key"]) in running,
            )
            for n in nodes
            if n["key"] not in done | failed | blocked | stopped.keys()
        ]
        work += [w for u in outside.values() for w in u.work()]
        eta = estimate(work, measured, int(plan.get("concurrency") or 1))
        lines.append(eta.text() if eta else "ETA: after the first measured epoch")
    elif left > 0:
        lines.append(
            f"{left} stage executions left: rerun `senet run` with the same sweep to resume"
        )
    return lines


def _starting(workdir: Path, holder: str, plan: dict[str, Any] | None) -> list[str]:
    """A run that holds the lock but has not written its plan yet (it checks the store and
    plans first): said as such, never the previous run's plan shown as running. Empty where
    the plan snapshot is the holder's, or the holder is no run (`senet verify`)."""
    run_id = holder_run_id(holder)
    if holder and run_id is None:
        return []
    if plan is not None and run_id is not None and plan.get("run_id") == run_id:
        return []
    who = f" ({holder})" if holder else ""
    what = f"run {run_id}" if run_id else "a run"
    return [
        f"{workdir}: starting{who}",
        f"{what}: checking the store and planning (the previous run's plan is not shown)",
    ]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
