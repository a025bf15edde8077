"""The DAG searcher without a Ray cluster: Tune's side of the conversation (suggest, then
on_trial_complete) played by hand over a real plan, a real store folder and a fake Optuna
source. What a node waits for, what a failure skips, when the sweep is FINISHED."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import Searcher

from orchestrator.plan.dag import DagSearcher, config_extras, config_node
from orchestrator.plan.plan import Node, Plan, build_plan, stage2_node, stage3_node
from orchestrator.spec.sweep import parse_sweep
from stages.artifacts import artifact_dir, save_artifact

DONE = {"stage_done": 1, "val_acc": 0.5, "relu_count": 1000}


def _plan(budgets: list[int], taus: list[float]) -> Plan:
    doc = {
        "sweep": {"model": "resnet20", "dataset": "digits", "budgets": budgets},
        "stage3": {"tau": taus},
    }
    return build_plan(parse_sweep(doc))


def _by_labels(plan: Plan, stage: int, **labels: Any) -> Node:
    (node,) = [n for n in plan.stage(stage) if all(n.labels[k] == v for k, v in labels.items())]
    return node


class Tune:
    """Tune's calls into a searcher, with made-up trial ids and a log of what ran."""

    def __init__(self, searcher: DagSearcher) -> None:
        self.searcher, self.n = searcher, 0
        self.running: dict[str, str] = {}  # trial id -> node key
        self.events: list[tuple[str, str]] = []
        searcher.listeners.append(lambda kind, node, _r: self.events.append((kind, node.key)))

    def suggest(self) -> str | None:
        """The key of the node suggested next; None when nothing is ready; FINISHED."""
        self.n += 1
        trial_id = f"t{self.n}"
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return config
        node = config_node(config)
        assert node is not None
        self.running[trial_id] = node["key"]
        return node["key"]

    def finish(self, key: str, result: dict[str, Any] | None = DONE, error: bool = False) -> None:
        trial_id = next(t for t, k in self.running.items() if k == key)
        del self.running[trial_id]
        self.searcher.on_trial_complete(trial_id, result, error)


def test_a_node_runs_only_once_its_parents_are_done_deepest_first(tmp_path: Path) -> None:
    plan = _plan([1000, 2000], [2.0, 4.0])
    tune = Tune(DagSearcher(list(plan.nodes.values()), set(), tmp_path / "store"))
    (n1,) = plan.stage(1)
    assert tune.suggest() == n1.key
    assert tune.suggest() is None  # stage 2 waits for stage 1, and the sweep is not over
    tune.finish(n1.key)
    first = tune.suggest()
    assert first in {n.key for n in plan.stage(2)}
    second = tune.suggest()
    assert second in {n.key for n in plan.stage(2)} - {first}
    tune.finish(first)
    # Deepest stage first: a child of the finished stage 2 before anything else.
    child = tune.suggest()
    assert plan.nodes[child].stage == 3 and plan.nodes[child].stage2_key == first
    assert tune.searcher.counts(3) == {
        "done": 0,
        "running": 1,
        "pending": 3,
        "failed": 0,
        "skipped": 0,
        "stopped": 0,
    }


def test_a_failure_skips_exactly_its_descendants(tmp_path: Path) -> None:
    plan = _plan([1000, 2000], [2.0, 4.0])
    (n1,) = plan.stage(1)
    bad, good = _by_labels(plan, 2, budget=1000), _by_labels(plan, 2, budget=2000)
    tune = Tune(DagSearcher(list(plan.nodes.values()), {n1.key}, tmp_path / "store"))
    assert {tune.suggest(), tune.suggest()} == {bad.key, good.key}
    tune.finish(bad.key, result=None, error=True)
    tune.finish(good.key)
    ran = []
    while (key := tune.suggest()) not in (None, Searcher.FINISHED):
        ran.append(key)
        tune.finish(key)
    assert key == Searcher.FINISHED
    assert {plan.nodes[k].stage2_key for k in ran} == {good.key} and len(ran) == 2
    searcher = tune.searcher
    assert searcher.failed == {bad.key}
    assert searcher.skipped == {n.key for n in plan.stage(3) if n.stage2_key == bad.key}
    assert searcher.executed == {1: 0, 2: 1, 3: 2}
    assert ("failed", bad.key) in tune.events
    assert not any(k in searcher.skipped for _, k in tune.events)  # skipped: never started


def test_a_result_without_stage_done_is_stopped_not_failed(tmp_path: Path) -> None:
    plan = _plan([1000], [2.0])
    done = {n.key for n in plan.nodes.values() if n.stage < 3}
    tune = Tune(DagSearcher(list(plan.nodes.values()), done, tmp_path / "store"))
    (n3,) = plan.stage(3)
    assert tune.suggest() == n3.key
    tune.finish(n3.key, result={"val_acc": 0.3, "epoch": 1})  # ASHA stopped it after epoch 1
    assert tune.searcher.stopped == {n3.key} and not tune.searcher.failed
    assert tune.events[-1] == ("stopped", n3.key)
    assert tune.suggest() == Searcher.FINISHED


def test_finished_at_once_when_everything_is_done(tmp_path: Path) -> None:
    plan = _plan([1000], [2.0, 4.0])
    searcher = DagSearcher(list(plan.nodes.values()), set(plan.nodes), tmp_path / "store")
    assert searcher.suggest("t1") == Searcher.FINISHED
    assert searcher.counts(3)["done"] == 2


class FakeSource:
    """What OptunaSource is to the searcher: a queue of sampled stage-3 settings, each with its
    parents, and a log of what it was told about them (the searcher tells it every completion;
    like OptunaSource, it listens only to the nodes it sampled)."""

    def __init__(self, samples: list[tuple[list[Node], Node]]) -> None:
        self.samples = list(samples)
        self.told: list[tuple[str, dict[str, Any] | None, bool]] = []
        self.asked = 0
        self.in_flight: list[str] = []

    def ask(self) -> tuple[list[Node], Node, dict[str, Any]] | None:
        if not self.samples:
            return None
        self.asked += 1
        new, node = self.samples.pop(0)
        self.in_flight.append(node.key)
        return new, node, {"optuna_study": "s", "optuna_trial": self.asked - 1}

    def tell(self, key: str, result: dict[str, Any] | None, error: bool) -> None:
        if key in self.in_flight:
            self.in_flight.remove(key)
            self.told.append((key, result, error))

    def exhausted(self) -> bool:
        return not self.samples and not self.in_flight


def test_sampled_nodes_run_after_their_parents_and_are_told(tmp_path: Path) -> None:
    plan = _plan([1000], [2.0])
    (n1,) = plan.stage(1)
    cfg3 = plan.stage(3)[0].config
    n2a = _by_labels(plan, 2, budget=1000)
    n2b = stage2_node(n1, dataclasses.replace(n2a.config, budget=2000))
    a, b = stage3_node(n2a, cfg3), stage3_node(n2b, cfg3)
    source = FakeSource([([n1, n2a, a], a), ([n1, n2b, b], b), ([n1, n2a, a], a)])
    store = tmp_path / "store"
    tune = Tune(DagSearcher([], set(), store, source))
    order = []
    while (key := tune.suggest()) not in (None, Searcher.FINISHED):
        order.append(key)
        tune.finish(key)
    assert key == Searcher.FINISHED
    # Stage 1 once, each budget's stage 2 once, then its stage 3: never a child first.
    assert order.index(n1.key) == 0 and len(order) == len(set(order)) == 5
    assert order.index(n2a.key) < order.index(a.key) and order.index(n2b.key) < order.index(b.key)
    # The third sample repeats the first setting: told at once with its result, not rerun.
    assert source.told == [(a.key, DONE, False), (b.key, DONE, False), (a.key, DONE, False)]
    assert tune.searcher.provenance[b.key] == {"optuna_study": "s", "optuna_trial": 1}


def test_the_trial_config_carries_the_node_and_its_optuna_trial(tmp_path: Path) -> None:
    plan = _plan([1000], [2.0])
    done = {n.key for n in plan.nodes.values() if n.stage < 3}
    (n3,) = plan.stage(3)
    source = FakeSource([([n3], n3)])
    searcher = DagSearcher([n for n in plan.nodes.values() if n.stage < 3], done, tmp_path, source)
    config = searcher.suggest("t1")
    assert isinstance(config, dict)
    assert config_node(config) == n3.to_dict()
    assert config_extras(config) == {"optuna_study": "s", "optuna_trial": 0}
    searcher.on_trial_complete("t1", None, error=True)
    assert source.told == [(n3.key, None, True)] and searcher.failed == {n3.key}


def test_a_sampled_node_already_in_the_store_is_done_not_run(tmp_path: Path) -> None:
    plan = _plan([1000], [2.0])
    (n3,) = plan.stage(3)
    store = tmp_path / "store"
    meta = {"key": n3.key, "val_acc": 0.7, "relu_count": 1000}
    save_artifact(artifact_dir(store, 3, n3.key), {}, meta)
    done = {n.key for n in plan.nodes.values() if n.stage < 3}
    source = FakeSource([([n3], n3)])
    searcher = DagSearcher([n for n in plan.nodes.values() if n.stage < 3], done, store, source)
    searcher.add(n3)
    assert n3.key in searcher.done and n3.key not in searcher.pending
    assert searcher.suggest("t1") == Searcher.FINISHED
    assert source.told == [(n3.key, {"val_acc": 0.7, "relu_count": 1000}, False)]


@pytest.mark.parametrize("state", ["pending", "failed"])
def test_save_and_restore_round_trip(tmp_path: Path, state: str) -> None:
    plan = _plan([1000], [2.0])
    searcher = DagSearcher(list(plan.nodes.values()), set(), tmp_path / "store")
    key = config_node(searcher.suggest("t1") or {})["key"]  # type: ignore[index]
    if state == "failed":
        searcher.on_trial_complete("t1", None, error=True)
    searcher.save(str(tmp_path / "ckpt"))
    fresh = DagSearcher([], set(), tmp_path / "elsewhere")
    fresh.restore(str(tmp_path / "ckpt"))
    assert (fresh.pending, fresh.failed, fresh.running) == (
        searcher.pending,
        searcher.failed,
        searcher.running,
    )
    assert (key in fresh.failed) == (state == "failed")


def _synthetic_dag(seeds: int, budgets: int, taus: int) -> list[Node]:
    """A plan's shape (seed -> budget -> tau) without building configs: sizes up to 10^5."""
    nodes = []
    for s in range(seeds):
        n1 = Node(1, f"s{s}", None)
        nodes.append(n1)
        for b in range(budgets):
            n2 = Node(2, f"s{s}b{b}", None, n1.key)
            nodes.append(n2)
            nodes.extend(Node(3, f"{n2.key}t{t}", None, n1.key, n2.key) for t in range(taus))
    return nodes


def _examined_per_trial(nodes: list[Node], store: Path, fail: str) -> tuple[float, DagSearcher]:
    """Play Tune with 4 trials in flight until FINISHED; `fail` fails. Nodes examined per
    suggest + complete, construction excluded."""
    searcher = DagSearcher(nodes, set(), store)
    searcher.examined = 0
    running: list[tuple[str, str]] = []
    trials = 0
    while True:
        while len(running) < 4:
            config = searcher.suggest(f"t{trials}")
            if not isinstance(config, dict):
                break
            running.append((f"t{trials}", config["node"]["key"]))
            trials += 1
        if not running:
            assert config == Searcher.FINISHED
            return searcher.examined / trials, searcher
        trial_id, key = running.pop(0)
        searcher.on_trial_complete(trial_id, None if key == fail else DONE, error=key == fail)


def test_the_work_per_trial_does_not_grow_with_the_sweep(tmp_path: Path) -> None:
    """Scheduling is O(1) amortised per trial: the nodes the searcher looks at per suggest +
    complete stay bounded from 10^3 to 10^5 nodes (a count of work, not a timing)."""
    per_trial = {}
    for size, (seeds, budgets, taus) in {10**3: (1, 10, 99), 10**5: (10, 100, 99)}.items():
        nodes = _synthetic_dag(seeds, budgets, taus)
        assert size <= len(nodes) < 1.01 * size
        per_trial[size], searcher = _examined_per_trial(nodes, tmp_path, fail="s0b1")
        assert searcher.failed == {"s0b1"} and len(searcher.skipped) == taus
        assert sum(searcher.executed.values()) == len(nodes) - 1 - taus
        assert searcher.counts(3)["skipped"] == taus and searcher.counts(3)["done"] == (
            seeds * budgets * taus - taus
        )
    # The old scan of every pending node looked at ~N/2 nodes per trial (about 50,000 here).
    assert per_trial[10**5] <= 6 and per_trial[10**5] <= 1.1 * per_trial[10**3]
