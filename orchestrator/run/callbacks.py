"""Tune callbacks of a sweep: progress lines, a periodic status line, the records of failed
and early-stopped trials."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.plan.dag import DagSearcher, config_extras, config_node
from orchestrator.plan.plan import Node
from orchestrator.records.write import write_uncommitted
from orchestrator.run.trial import TrialSpec
from orchestrator.spec.sweep import Sweep


class Progress:
    """Progress lines from the searcher's events, and a status line every `every` seconds."""

    def __init__(self, searcher: Any, printer: Callable[[str], None], every: float = 15.0) -> None:
        self.searcher, self.printer, self.every = searcher, printer, every
        self.start = time.monotonic()
        self.last = 0.0
        self.best: dict[int, float] = {}
        self._varying: set[tuple[int, str]] = set()
        self._varying_for = -1

    def _labels(self, node: Any) -> str:
        """Only the labels that tell this stage's executions apart (budget, tau, …). Which
        ones vary is recomputed only when nodes are added, not on every event: a sweep of
        thousands of executions would otherwise rescan them all per finished trial."""
        if self._varying_for != len(self.searcher.nodes):
            values: dict[tuple[int, str], set[str]] = {}
            for n in self.searcher.nodes.values():
                for k, v in n.labels.items():
                    values.setdefault((n.stage, k), set()).add(repr(v))
            self._varying = {sk for sk, vs in values.items() if len(vs) > 1}
            self._varying_for = len(self.searcher.nodes)
        varying = [k for k in node.labels if (node.stage, k) in self._varying]
        return " ".join(f"{k}={_short(node.labels[k])}" for k in varying) or f"key={node.key}"

    def event(self, kind: str, node: Any, result: dict[str, Any] | None) -> None:
        labels = self._labels(node)
        if kind == "started":
            return
        if kind == "done" and result is not None:
            if node.stage == 3:
                b = node.labels["budget"]
                self.best[b] = max(self.best.get(b, 0.0), float(result.get("val_acc", 0.0)))
            self.printer(
                f"[{self._t()}] stage {node.stage} done   {labels}  relu {result.get('relu_count')}"
                f"  val_acc {result.get('val_acc', 0):.4f}  ({result.get('wall_s', 0):.1f} s)"
            )
        elif kind == "failed":
            self.printer(f"[{self._t()}] stage {node.stage} FAILED {labels}  (key {node.key})")
        self.status(force=False)

    def _t(self) -> str:
        return f"{time.monotonic() - self.start:6.1f}s"

    def status(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        parts = []
        for n in (1, 2, 3):
            c = self.searcher.counts(n)
            extra = "".join(f" {c[k]} {k}" for k in ("failed", "skipped") if c[k])
            parts.append(
                f"stage{n} {c['done']} done {c['running']} running {c['pending']} pending{extra}"
            )
        best = ", ".join(f"{b}: {a:.4f}" for b, a in sorted(self.best.items()))
        self.printer(
            f"[{self._t()}] "
            + " | ".join(parts)
            + (f" | best val_acc by budget {best}" if best else "")
        )


class StatusTicker(Callback):
    """Prints the status line every so often while trials run."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self.progress.status(force=False)


class FailureRecorder(Callback):
    """Records a stage execution that failed on its last attempt, with its error."""

    def __init__(self, sweep: Sweep, spec: TrialSpec) -> None:
        self.sweep, self.spec = sweep, spec

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        node = config_node(trial.config)
        if node is None:
            return
        error = ""
        if trial.error_file and os.path.exists(trial.error_file):
            error = Path(trial.error_file).read_text()[-4000:]
        prov = self.spec.provenance(trial.trial_id, config_extras(trial.config))
        write_uncommitted(
            self.spec.workdir,
            self.spec.sweep,
            node,
            self.sweep.model,
            self.sweep.dataset,
            "failed",
            prov,
            error.strip(),
        )


class StoppedRecorder:
    """A DagSearcher listener that records the stage-3 trials ASHA stopped early: analysts
    see every sampled setting, with the validation accuracy Optuna was told."""

    def __init__(self, sweep: Sweep, spec: TrialSpec, searcher: DagSearcher) -> None:
        self.sweep, self.spec, self.searcher = sweep, spec, searcher

    def event(self, kind: str, node: Node, result: dict[str, Any] | None) -> None:
        if kind != "stopped":
            return
        result = result or {}
        prov = self.spec.provenance(
            result.get("trial_id"), self.searcher.provenance.get(node.key, {})
        )
        write_uncommitted(
            self.spec.workdir,
            self.spec.sweep,
            node.to_dict(),
            self.sweep.model,
            self.sweep.dataset,
            "stopped",
            prov,
            last=result,
        )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
