"""Dependent stage executions as Ray Tune trials.

Ray Tune has no DAG of trials, so this Searcher is one: it hands Tune a stage execution only
once its parents are done, so no trial ever holds CPUs or GPUs while waiting for another, and
independent work runs concurrently up to `max_concurrent_trials` and the cluster's resources.
A failed execution (after Tune's retries) skips its descendants; the rest carries on.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from .plan import Node


class DagSearcher(Searcher):
    """Suggests ready nodes, deepest stage first (results sooner); FINISHED when all are
    done, failed or blocked by a failure."""

    def __init__(self, nodes: list[Node], done: set[str], trial_config: dict[str, Any]) -> None:
        super().__init__(metric="val_acc", mode="max")
        self.nodes: dict[str, Node] = {n.key: n for n in nodes}
        self.trial_config = trial_config  # fields every trial gets (store, sweep, run id…)
        self.done: set[str] = set(done)
        self.pending: list[str] = [k for k in self.nodes if k not in self.done]
        self.running: dict[str, str] = {}  # trial id -> key
        self.failed: set[str] = set()
        self.skipped: set[str] = set()
        self.executed: dict[int, int] = {1: 0, 2: 0, 3: 0}
        self.listeners: list[Callable[[str, Node, dict[str, Any] | None], None]] = []

    def add(self, node: Node) -> None:
        """Add a node while the sweep runs (a newly sampled Optuna setting)."""
        if node.key in self.nodes:
            return
        self.nodes[node.key] = node
        self.pending.append(node.key)

    def _parents(self, node: Node) -> list[str]:
        return [k for k in (node.stage1_key, node.stage2_key) if k is not None]

    def _ready(self, node: Node) -> bool:
        return all(p in self.done for p in self._parents(node))

    def _blocked(self, node: Node) -> bool:
        return any(p in self.failed or p in self.skipped for p in self._parents(node))

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        for key in list(self.pending):
            node = self.nodes[key]
            if self._blocked(node):
                self.pending.remove(key)
                self.skipped.add(key)
        ready = [k for k in self.pending if self._ready(self.nodes[k])]
        if ready:
            key = max(ready, key=lambda k: self.nodes[k].stage)
            self.pending.remove(key)
            self.running[trial_id] = key
            self._emit("started", self.nodes[key], None)
            return {**self.trial_config, "node": self.nodes[key].to_dict()}
        if not self.running and not self.pending:
            return Searcher.FINISHED
        return None

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        key = self.running.pop(trial_id, None)
        if key is None:
            return
        node = self.nodes[key]
        if error or not result or not result.get("stage_done"):
            self.failed.add(key)
            self._emit("failed", node, result)
        else:
            self.done.add(key)
            self.executed[node.stage] += 1
            self._emit("done", node, result)

    def _emit(self, event: str, node: Node, result: dict[str, Any] | None) -> None:
        for listener in self.listeners:
            listener(event, node, result)

    def counts(self, stage: int) -> dict[str, int]:
        """done / running / pending / failed / skipped of one stage, for progress lines."""
        keys = [k for k, n in self.nodes.items() if n.stage == stage]
        running = set(self.running.values())
        return {
            "done": sum(k in self.done for k in keys),
            "running": sum(k in running for k in keys),
            "pending": sum(k in self.pending for k in keys),
            "failed": sum(k in self.failed for k in keys),
            "skipped": sum(k in self.skipped for k in keys),
        }

    # Tune checkpoints its search algorithm with the experiment; the store is the real state,
    # so this only has to round-trip.
    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k != "listeners"}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
