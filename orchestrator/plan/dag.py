"""Dependent stage executions as Ray Tune trials.

Ray Tune has no DAG of trials, so this Searcher is one: it hands Tune a stage execution only
once its parents are done, so no trial ever holds CPUs or GPUs while waiting for another, and
independent work runs concurrently up to `max_concurrent_trials` and the cluster's resources.
A failed execution (after Tune's retries) skips its descendants; the rest carries on.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ray.tune.search import Searcher

from orchestrator.plan.plan import Node
from stages.store import Store


class NodeSource(Protocol):
    """Nodes sampled while the sweep runs (orchestrator.search.source.OptunaSource): a
    protocol, so that the plan never imports the search that feeds it."""

    def ask(self) -> tuple[list[Node], Node, dict[str, Any]] | None: ...

    def tell(self, key: str, result: dict[str, Any] | None, error: bool) -> None: ...

    def exhausted(self) -> bool: ...


class DagSearcher(Searcher):
    """Suggests ready nodes, deepest stage first (results sooner); FINISHED when all are
    done, failed or blocked by a failure."""

    def __init__(
        self,
        nodes: list[Node],
        done: set[str],
        store: Store | Path,
        source: NodeSource | None = None,
    ) -> None:
        super().__init__(metric="val_acc", mode="max")
        self.source = source  # samples stage-3 nodes on demand (None: grid)
        self.provenance: dict[str, dict[str, Any]] = {}  # per-node extras (Optuna trial)
        self.stopped: set[str] = set()
        self.nodes: dict[str, Node] = {n.key: n for n in nodes}
        self.store = Store(store)  # what is done (a sampled node an earlier run computed)
        self.done: set[str] = set(done)
        self.pending: list[str] = [k for k in self.nodes if k not in self.done]
        self.running: dict[str, str] = {}  # trial id -> key
        self.failed: set[str] = set()
        self.skipped: set[str] = set()
        self.executed: dict[int, int] = {1: 0, 2: 0, 3: 0}
        self.results: dict[str, dict[str, Any]] = {}
        self.listeners: list[Callable[[str, Node, dict[str, Any] | None], None]] = []

    def add(self, node: Node) -> None:
        """Add a node while the sweep runs (a newly sampled Optuna setting)."""
        if node.key in self.nodes:
            return
        self.nodes[node.key] = node
        if self.store.is_done(node.stage, node.key):
            self.done.add(node.key)  # computed by an earlier run: never again
            return
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
        while not ready and self.source is not None:
            asked = self.source.ask()
            if asked is None:
                break
            new, node3, provenance = asked
            for node in new:
                if node.key not in self.nodes and node.key not in self.done:
                    self.add(node)
            if node3.key in self.done or node3.key in self.running.values():
                # The same setting was sampled before: its result stands, nothing to run.
                self.source.tell(node3.key, self._stored_result(node3), error=False)
                continue
            if node3.key not in self.pending:
                self.pending.append(node3.key)
            self.provenance[node3.key] = provenance
            ready = [k for k in self.pending if self._ready(self.nodes[k])]
        if ready:
            key = max(ready, key=lambda k: self.nodes[k].stage)
            self.pending.remove(key)
            self.running[trial_id] = key
            self._emit("started", self.nodes[key], None)
            return trial_config(self.nodes[key], self.provenance.get(key))
        source_done = self.source is None or self.source.exhausted()
        if not self.running and not self.pending and source_done:
            return Searcher.FINISHED
        return None

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        key = self.running.pop(trial_id, None)
        if key is None:
            return
        node = self.nodes[key]
        if error or not result:
            self.failed.add(key)
            self._emit("failed", node, result)
        elif not result.get("stage_done"):
            self.stopped.add(key)  # stopped early by the scheduler (ASHA): not a failure
            self._emit("stopped", node, result)
        else:
            self.done.add(key)
            self.results[key] = result
            self.executed[node.stage] += 1
            self._emit("done", node, result)
        if self.source is not None:
            self.source.tell(key, result, error)

    def _stored_result(self, node: Node) -> dict[str, Any] | None:
        """The metrics of a finished node, from this run or from the store."""
        if node.key in self.results:
            return self.results[node.key]
        meta = self.store.meta(node.stage, node.key)
        return None if meta is None else {k: meta.get(k) for k in ("val_acc", "relu_count")}

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
            "stopped": sum(k in self.stopped for k in keys),
        }

    # Tune checkpoints its search algorithm with the experiment; the store is the real state,
    # so this only has to round-trip.
    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k not in ("listeners", "source")}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


# A trial's Tune config is its plan node (Node.to_dict()) and the node's provenance extras
# (the Optuna trial that sampled it); what every trial of the run shares goes to the trainable
# as a typed TrialSpec (orchestrator.run.trial). These three functions are its one home.
def trial_config(node: Node, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Tune config of the trial that runs `node`."""
    return {"node": node.to_dict(), **({"provenance": extras} if extras else {})}


def config_node(config: dict[str, Any]) -> dict[str, Any] | None:
    """The plan node a trial's Tune config carries (None: not a trial of this searcher)."""
    return config.get("node")


def config_extras(config: dict[str, Any]) -> dict[str, Any]:
    """The provenance extras a trial's Tune config carries (optuna_study, optuna_trial)."""
    return dict(config.get("provenance") or {})
