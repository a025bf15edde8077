"""Tune callbacks of a sweep: progress lines, a periodic status line, the records of failed
and early-stopped trials."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.plan.dag import DagSearcher, config_extras, config_node
from orchestrator.plan.plan import Node
from orchestrator.records.write import has_record, write_uncommitted
from orchestrator.run.attempts import error_summary, lost_text, read_lost, record_lost
from orchestrator.run.counts import Unsampled
from orchestrator.run.eta import Eta, Work, add_epoch, estimate
from orchestrator.run.status import (
    label_text,
    progress_path,
    read_json,
    running_text,
    varying,
    write_json,
    write_plan,
)
from orchestrator.run.trial import TrialSpec
from orchestrator.spec.sweep import Sweep
from stages.artifacts import DiskFullError, full_disk
from stages.store import Store

log = logging.getLogger("senet.run")


def unless_full(write: Callable[[], object]) -> None:
    """A driver-side write from a Tune callback (the plan snapshot, a failed or stopped
    trial's progress file and record): a full disk is one warning naming the file, never an
    exception out of the callback, which Tune turns into tracebacks and an aborted sweep.
    Nothing half-written stays, and the rerun writes it again."""
    try:
        write()
    except DiskFullError as e:
        log.warning("senet: warning: %s", e)


class Progress:
    """Progress lines from the searcher's events, and every `every` seconds a status line
    (done / running / pending per stage, best validation accuracy per budget) with a second
    line: each running stage's epoch, seconds per epoch and last validation accuracy, and the
    sweep's ETA. With a `workdir` it also leaves the run's plan snapshot there, for
    `senet status` (orchestrator.run.status)."""

    def __init__(
        self,
        searcher: Any,
        printer: Callable[[str], None],
        every: float = 15.0,
        concurrency: int = 1,
        workdir: Path | None = None,
        run_id: str = "",
        sweep: str = "",
        outside: Callable[[], list[Unsampled]] | None = None,
    ) -> None:
        self.searcher, self.printer, self.every = searcher, printer, every
        # The Optuna trials not sampled yet and what they imply (orchestrator.run.counts):
        # pending work that is not yet a node, counted on every line and in the ETA.
        self.outside_now = outside or list
        self.outside: list[Unsampled] = self.outside_now()
        self.concurrency, self.workdir, self.run_id, self.sweep = (
            concurrency,
            workdir,
            run_id,
            sweep,
        )
        self.start = time.monotonic()
        self.last = 0.0
        self.best: dict[int, float] = {}
        self.latest: dict[str, dict[str, Any]] = {}  # trial id -> its last epoch's result
        self.measured: dict[int, tuple[int, float]] = {}  # stage -> (epochs timed, seconds)
        self._varying: set[tuple[int, str]] = set()
        self._varying_for = -1
        self.phase = WAITING  # until a trial reports its first epoch
        self._planned: tuple[int, list[Unsampled], str] | None = None
        self._snapshot()

    def _snapshot(self) -> None:
        """The plan for `senet status`, rewritten only when nodes were added or trials
        sampled (Optuna)."""
        self.outside = self.outside_now()
        planned = (len(self.searcher.nodes), self.outside, self.phase)
        if self.workdir is not None and self._planned != planned:
            nodes, outside = self.searcher.nodes.values(), self.outside
            workdir = self.workdir
            unless_full(
                lambda: write_plan(
                    workdir, self.sweep, self.run_id, nodes, self.concurrency, outside, self.phase
                )
            )
            self._planned = planned

    def _labels(self, node: Any) -> str:
        """Only the labels that tell this stage's executions apart (budget, tau, …). Which
        ones vary is recomputed only when nodes are added, not on every event: a sweep of
        thousands of executions would otherwise rescan them all per finished trial."""
        if self._varying_for != len(self.searcher.nodes):
            self._varying = varying((n.stage, n.labels) for n in self.searcher.nodes.values())
            self._varying_for = len(self.searcher.nodes)
        return label_text(node.stage, node.labels, self._varying, node.key)

    def event(self, kind: str, node: Any, result: dict[str, Any] | None) -> None:
        if kind in ("started", "failed"):  # a failure is printed by StatusTicker, with its error
            return
        labels = self._labels(node)
        if kind == "done" and result is not None:
            if node.stage == 3:
                b = node.labels["budget"]
                self.best[b] = max(self.best.get(b, 0.0), float(result.get("val_acc", 0.0)))
            self.printer(
                f"[{self._t()}] stage {node.stage} done   {labels}  relu {result.get('relu_count')}"
                f"  val_acc {result.get('val_acc', 0):.4f}  ({result.get('wall_s', 0):.1f} s)"
            )
        self.status(force=False)

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        """A trial's per-epoch report to Tune: its epoch and speed for the status line."""
        if "epoch" not in result or result.get("stage_done"):
            return
        self.latest[trial_id] = result
        if self.phase:
            self.phase = ""
            self._snapshot()
        seconds = result.get("time_this_iter_s")
        if isinstance(seconds, (int, float)) and isinstance(result.get("stage"), int):
            add_epoch(self.measured, result["stage"], seconds)

    def running(self, trial_id: str, node: Any) -> str:
        """One running stage: `stage3 budget=3000 tau=2 epoch 3/10 4.2 s/epoch val 0.8125`."""
        r = self.latest.get(trial_id, {})
        return running_text(
            node.stage,
            self._labels(node),
            r.get("epoch"),
            r.get("epochs"),
            r.get("time_this_iter_s"),
            r.get("val_acc"),
        )

    def lost(self, node: Any, attempt: dict[str, Any]) -> None:
        self.printer(
            f"[{self._t()}] stage {node.stage} LOST   {self._labels(node)}: {lost_text(attempt)}; retrying"
        )

    def failed(self, node: Any, error: str, log: str) -> None:
        self.printer(f"[{self._t()}] stage {node.stage} FAILED {self._labels(node)}: {error}")
        if log:
            self.printer(f"{'':10} full log: {log}")

    def eta(self) -> Eta | None:
        """From this run's measured epochs and the part of the DAG that remains."""
        s = self.searcher
        at = {key: self.latest.get(tid, {}).get("epoch") or 0 for tid, key in s.running.items()}
        work = []
        for key in [*s.running.values(), *s.pending]:
            n = s.nodes[key]
            parents = tuple(k for k in (n.stage1_key, n.stage2_key) if k)
            epochs = int(n.config.optim.epochs)
            work.append(Work(key, n.stage, epochs, int(at.get(key, 0)), parents, key in at))
        for u in self.outside:
            work.extend(u.work())
        return estimate(work, self.measured, self.concurrency)

    def _t(self) -> str:
        return f"{time.monotonic() - self.start:6.1f}s"

    def status(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        self._snapshot()
        parts = []
        outside = {u.stage: u for u in self.outside}
        for n in (1, 2, 3):
            c = self.searcher.counts(n)
            extra = "".join(f" {c[k]} {k}" for k in ("stopped", "failed", "skipped") if c[k])
            u = outside.get(n)
            done, pending = c["done"] + (u.done if u else 0), c["pending"] + (u.pending if u else 0)
            parts.append(
                f"stage{n} {done} done {c['running']} running {pending} pending{extra}"
                + (u.note() if u else "")
            )
        best = ", ".join(f"{b}: {a:.4f}" for b, a in sorted(self.best.items()))
        self.printer(
            f"[{self._t()}] "
            + " | ".join(parts)
            + (f" | best val_acc by budget {best}" if best else "")
        )
        running = list(self.searcher.running.items())
        shown = [self.running(tid, self.searcher.nodes[key]) for tid, key in running[:_SHOWN]]
        if len(running) > _SHOWN:
            shown.append(f"{len(running) - _SHOWN} more")
        eta = self.eta()
        if shown or self.searcher.pending or any(u.pending for u in self.outside):
            estimate_text = eta.text() if eta else "ETA after the first measured epoch"
            self.printer(f"{'':10} " + "; ".join([*shown, estimate_text]))


# What a run does between Ray's start and the first epoch: for `senet status`, on plan.json.
WAITING = (
    "waiting for the first trials to report an epoch "
    "(Ray starts their actors, which import torch and load the data)"
)
_SHOWN = 4  # running stages named on the status line; the rest are counted


class StatusTicker(Callback):
    """Prints the status line every so often while trials run, feeds it the trials' epochs,
    and prints a failed stage as its own error in a line and the path of the full log: Tune
    logs Ray's whole traceback of it, which this ticker filters out of Tune's log."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def setup(self, **info: Any) -> None:
        logging.getLogger(_TUNE_CONTROLLER).addFilter(_drop_trial_tracebacks)
        logging.getLogger(_TUNE_STATE).addFilter(self._drop_full_disk_tracebacks)

    def _drop_full_disk_tracebacks(self, record: logging.LogRecord) -> bool:
        """Tune's traceback of its experiment state failing to save on a full disk: the run
        says it in one line (DiskFullError) and resumes from the store."""
        workdir = self.progress.workdir
        return workdir is None or full_disk(workdir) is None

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.progress.result(trial.trial_id, result)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self.progress.status(force=False)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        node = config_node(trial.config)
        if node is not None and node["key"] in self.progress.searcher.nodes:
            error, log = trial_failure(trial)
            self.progress.failed(self.progress.searcher.nodes[node["key"]], error, log)
        self.progress.status(force=False)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """An attempt failed and Tune retries it (`retries` in [resources]): say where it was
        lost. FailureRecorder (called first) has recorded the attempt by now."""
        node = config_node(trial.config)
        if node is None or node["key"] not in self.progress.searcher.nodes:
            return
        lost = [{"error": trial_failure(trial)[0]}]
        if self.progress.workdir is not None:
            mine = read_lost(self.progress.workdir, self.progress.run_id)
            lost += [a for a in mine if a.get("key") == node["key"]]
        self.progress.lost(self.progress.searcher.nodes[node["key"]], lost[-1])

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        logging.getLogger(_TUNE_CONTROLLER).removeFilter(_drop_trial_tracebacks)
        logging.getLogger(_TUNE_STATE).removeFilter(self._drop_full_disk_tracebacks)


_TUNE_CONTROLLER = "ray.tune.execution.tune_controller"
_TUNE_STATE = "ray.tune.execution.experiment_state"


def _drop_trial_tracebacks(record: logging.LogRecord) -> bool:
    """Tune's `Trial task failed for trial ...` record with Ray's traceback: replaced by the
    FAILED line (the stage's own error) and its log file."""
    return not str(record.msg).startswith("Trial task failed")


def trial_failure(trial: Any) -> tuple[str, str]:
    """(the stage's own error in one line, the path of Ray's error file with the whole
    traceback) of a trial that failed for good. The file is read where Ray wrote it (its
    session's staging folder, gone with the session); the path given is its copy in the
    trial's folder under <workdir>/tune/, which Tune syncs there and which stays."""
    staged = trial.error_file or ""
    text = Path(staged).read_text(errors="replace") if staged and os.path.exists(staged) else ""
    log = str(Path(trial.path, Path(staged).name)) if staged and trial.path else staged
    return (error_summary(text) if text else "(no error file)"), log


class FailureRecorder(Callback):
    """Records a stage execution that failed on its last attempt, with its error, and each
    earlier attempt that was lost and retried (its host, epoch and error: a node that died
    shows here, for `senet status` and the LOST line)."""

    def __init__(self, sweep: Sweep, spec: TrialSpec) -> None:
        self.sweep, self.spec = sweep, spec

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        node = config_node(trial.config)
        if node is None:
            return
        summary, log = trial_failure(trial)
        p = read_json(progress_path(self.spec.workdir, node["key"])) or {}
        attempt = {"run_id": self.spec.run_id, "stage": node["stage"], "key": node["key"]}
        attempt.update({k: p.get(k) for k in ("host", "pid", "epoch", "epochs")})
        attempt.update(error=summary, log=log, at=time.time())
        record_lost(self.spec.workdir, attempt)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        node = config_node(trial.config)
        if node is None:
            return
        summary, log = trial_failure(trial)  # the last attempt's error, in one line
        path = progress_path(self.spec.workdir, node["key"])
        progress = read_json(path) or {"stage": node["stage"], "key": node["key"]}
        unless_full(
            lambda: write_json(path, {**progress, "failed": {"error": summary, "log": log}})
        )
        prov = self.spec.provenance(trial.trial_id, config_extras(trial.config))
        unless_full(
            lambda: write_uncommitted(
                self.spec.workdir,
                self.spec.sweep,
                node,
                self.sweep.model,
                self.sweep.dataset,
                "failed",
                prov,
                summary,
                error_log=log or None,
            )
        )


class StoppedRecorder:
    """A DagSearcher listener that records the stage-3 trials ASHA stopped early: analysts
    see every sampled setting, with the validation accuracy Optuna was told. Once the record
    is written the trial's epoch checkpoint and progress file go: a stopped trial is never
    resumed (Optuna counts it PRUNED), and `senet status` shows it from its record."""

    def __init__(self, sweep: Sweep, spec: TrialSpec, searcher: DagSearcher) -> None:
        self.sweep, self.spec, self.searcher = sweep, spec, searcher

    def event(self, kind: str, node: Node, result: dict[str, Any] | None) -> None:
        if kind != "stopped":
            return
        result = result or {}
        prov = self.spec.provenance(
            result.get("trial_id"), self.searcher.provenance.get(node.key, {})
        )
        unless_full(
            lambda: write_uncommitted(
                self.spec.workdir,
                self.spec.sweep,
                node.to_dict(),
                self.sweep.model,
                self.sweep.dataset,
                "stopped",
                prov,
                last=result,
            )
        )
        if has_record(self.spec.workdir, self.spec.sweep, node.stage, node.key):
            Store(self.spec.store).checkpoint(node.stage, node.key).unlink(missing_ok=True)
            progress_path(self.spec.workdir, node.key).unlink(missing_ok=True)
