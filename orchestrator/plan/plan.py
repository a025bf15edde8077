"""From a validated sweep to the stage executions it needs, as a dependency graph.

Stage 1 runs once per seed; stage 2 once per (stage-1 result, budget, stage-2 setting);
stage 3 once per (stage-2 result, stage-3 setting). Every node is named by its content key,
so equal work collapses to one node, and a node whose artifact is committed and whole in the
store (stages.store.Store) is done.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from orchestrator.spec.sweep import Sweep
from stages.artifacts import content_key, jsonable
from stages.config import canonical, config_from_dict
from stages.store import Store


@dataclass(frozen=True, slots=True)
class Node:
    """One stage execution (slots: a sweep plans up to 10^5 of them)."""

    stage: int
    key: str
    config: Any  # Stage1Config | Stage2Config | Stage3Config
    stage1_key: str | None = None
    stage2_key: str | None = None
    labels: dict[str, Any] = field(default_factory=dict, compare=False)  # seed, budget, tau…

    @property
    def parents(self) -> tuple[str, ...]:
        """The keys this execution needs done first: stage 1's for stage 2, both for stage 3
        (the teacher distils into the stage-3 student too)."""
        return tuple(k for k in (self.stage1_key, self.stage2_key) if k is not None)

    @property
    def parent_key(self) -> str | None:
        """The execution this one trains on from: stage 2's for stage 3, stage 1's for 2."""
        return self.stage2_key if self.stage == 3 else self.stage1_key

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Node:
        """The node back from its JSON form (`to_dict`), its config rebuilt as the dataclass:
        what a Tune trial receives is the node the plan made, key included."""
        stage = int(d["stage"])
        return cls(
            stage,
            d["key"],
            config_from_dict(stage, d["config"]),
            d.get("stage1_key"),
            d.get("stage2_key"),
            dict(d.get("labels") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as sent to a Tune trial."""
        return {
            "stage": self.stage,
            "key": self.key,
            "config": jsonable(self.config),
            "stage1_key": self.stage1_key,
            "stage2_key": self.stage2_key,
            "labels": self.labels,
        }


def stage1_node(cfg: Any) -> Node:
    return Node(1, content_key(1, cfg), cfg, labels={"seed": cfg.seed})


def stage2_node(parent: Node, cfg: Any) -> Node:
    cfg = canonical(cfg)  # equal work, one key: SNL's global budget, budget 0's no search
    labels = {**parent.labels, "budget": cfg.budget, "allocation": cfg.allocation}
    labels.update(granularity=cfg.granularity, method=cfg.method, init=cfg.init)
    return Node(2, content_key(2, cfg, [parent.key]), cfg, parent.key, labels=labels)


def stage3_node(parent: Node, cfg: Any) -> Node:
    labels = {**parent.labels, "tau": cfg.tau, "gamma": cfg.gamma, "alpha": cfg.alpha}
    labels.update(beta=cfg.beta, lr=cfg.optim.lr, epochs=cfg.optim.epochs)
    key = content_key(3, cfg, [parent.key])
    return Node(3, key, cfg, parent.stage1_key, parent.key, labels)


@dataclass
class Plan:
    sweep: Sweep
    nodes: dict[str, Node]  # by key, parents before children

    @property
    def store(self) -> Store:
        return Store.of_workdir(self.sweep.workdir)

    def stage(self, n: int) -> list[Node]:
        return [node for node in self.nodes.values() if node.stage == n]

    def is_done(self, node: Node, deep: bool = False) -> bool:
        """Committed and whole; a damaged artifact is quarantined and reads as not done."""
        return self.store.is_done(node.stage, node.key, deep)

    def done_keys(self, deep: bool = False) -> set[str]:
        """The finished nodes. `deep` (the driver, before a run) also checks the sha256 of
        stage-1 and stage-2 artifacts, the ones later stages load; stage-3 models are read by
        no stage, so their sizes are checked, not their hashes (see stages.store)."""
        return {k for k, n in self.nodes.items() if self.is_done(n, deep and n.stage < 3)}

    def summary(self) -> dict[str, dict[str, int]]:
        """{"stage1": {"total": n, "done": k}, ...}: what `senet validate --json` prints."""
        done = self.done_keys()
        return {
            f"stage{n}": {
                "total": len(self.stage(n)),
                "done": sum(1 for node in self.stage(n) if node.key in done),
            }
            for n in (1, 2, 3)
        }


def build_plan(sweep: Sweep, stage3_configs: list[Any] | None = None) -> Plan:
    """Every node the sweep needs. `stage3_configs` overrides the sweep's stage-3 grid (the
    Optuna modes add their sampled settings one at a time)."""
    nodes: dict[str, Node] = {}
    s3 = list(sweep.stage3) if stage3_configs is None else stage3_configs
    for c1 in sweep.stage1:
        n1 = stage1_node(c1)
        nodes.setdefault(n1.key, n1)
        for budget in sweep.budgets:
            for c2 in sweep.stage2:
                n2 = stage2_node(n1, dataclasses.replace(c2, budget=budget))
                nodes.setdefault(n2.key, n2)
                for c3 in s3:
                    n3 = stage3_node(n2, c3)
                    nodes.setdefault(n3.key, n3)
    return Plan(sweep, nodes)
