"""The plan: one node per distinct stage execution."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.plan.plan import Node, build_plan
from orchestrator.spec.shipped import shipped_sweeps
from orchestrator.spec.sweep import load_sweep, parse_sweep
from stages.config import Stage2Config, Stage3Config
from stages.pipeline import stage_keys

BASE = {"sweep": {"model": "resnet20", "dataset": "digits", "budgets": [1000]}}


def _doc(**sections: dict) -> dict:
    doc = {k: dict(v) for k, v in BASE.items()}
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    return doc


def test_plan_gives_equal_work_one_node() -> None:
    """SNL ignores the allocation axis and budget 0 has no search: a 3-allocation x 2-method
    grid over budgets 0 and 1000 is 1 + (3 + 1) stage-2 runs, not 12."""
    sweep = parse_sweep(
        _doc(
            sweep={"budgets": [0, 1000]},
            stage2={
                "allocation": ["sensitivity", "uniform", "proportional"],
                "method": ["activation-ema", "snl"],
            },
        )
    )
    plan = build_plan(sweep)
    got = sorted(
        (n.config.budget, n.labels["method"], n.labels["allocation"]) for n in plan.stage(2)
    )
    assert got == [
        (0, "taylor-ema", "uniform"),  # budget 0: the default search, no mask to search
        (1000, "activation-ema", "proportional"),
        (1000, "activation-ema", "sensitivity"),
        (1000, "activation-ema", "uniform"),
        (1000, "snl", "global"),
    ]
    assert len(plan.stage(3)) == 5


def test_a_grid_links_each_stage_to_its_parent() -> None:
    """Two seeds x two budgets x two temperatures: 2 + 4 + 8 nodes, each stage-3 node under
    the stage-2 node of its own seed and budget."""
    plan = build_plan(
        parse_sweep(
            _doc(sweep={"seeds": [0, 1], "budgets": [500, 1000]}, stage3={"tau": [2.0, 4.0]})
        )
    )
    assert [len(plan.stage(n)) for n in (1, 2, 3)] == [2, 4, 8]
    for n2 in plan.stage(2):
        n1 = plan.nodes[n2.stage1_key]
        assert n1.stage == 1 and n2.labels["seed"] == n1.labels["seed"]
    for n3 in plan.stage(3):
        n2 = plan.nodes[n3.stage2_key]
        assert n3.stage1_key == n2.stage1_key
        assert (n3.labels["seed"], n3.labels["budget"]) == (n2.labels["seed"], n2.labels["budget"])
    labels = {(n.labels["seed"], n.labels["budget"], n.labels["tau"]) for n in plan.stage(3)}
    assert len(labels) == 8
    keys = list(plan.nodes)
    assert all(keys.index(n.stage2_key) < keys.index(n.key) for n in plan.stage(3))  # parents first


def test_keys_are_content_addressed() -> None:
    """The same settings give the same keys in another plan; a stage-1 change reaches every
    descendant's key, a stage-3 change only stage 3's."""
    base = build_plan(parse_sweep(_doc()))
    same = build_plan(parse_sweep(_doc()))
    assert list(base.nodes) == list(same.nodes)
    teacher = build_plan(parse_sweep(_doc(stage1={"epochs": 7})))
    assert not set(teacher.nodes) & set(base.nodes)
    student = build_plan(parse_sweep(_doc(stage3={"tau": 8.0})))
    assert [n.key for n in student.stage(2)] == [n.key for n in base.stage(2)]
    assert [n.key for n in student.stage(3)] != [n.key for n in base.stage(3)]


def test_the_optuna_modes_plan_no_stage3() -> None:
    """Stage 3 is sampled while the sweep runs: the plan holds its parents only."""
    plan = build_plan(parse_sweep(_doc(sweep={"budgets": [500, 1000]})), [])
    assert [len(plan.stage(n)) for n in (1, 2, 3)] == [1, 2, 0]


@pytest.mark.parametrize("name", sorted(shipped_sweeps()))
def test_the_plan_and_the_pipeline_derive_equal_keys(name: str, tmp_path) -> None:
    """`senet pipeline` (stages.pipeline.stage_keys) and a sweep (the plan) must name the same
    work alike, or a stage run one way is recomputed the other way: for every chain the
    shipped sweep file plans, the three keys agree and the plan's parents are those keys."""
    path = tmp_path / name
    path.write_bytes(shipped_sweeps()[name].read_bytes())
    sweep = load_sweep(path, find_data=False)
    plan = build_plan(sweep)
    derived: set[str] = set()
    for c1 in sweep.stage1:
        derived.add(stage_keys(c1, Stage2Config(), Stage3Config())[0])  # Optuna: budgets later
        for budget in sweep.budgets:
            for c2 in sweep.stage2:
                for c3 in sweep.stage3:
                    k1, k2, k3 = stage_keys(c1, dataclasses.replace(c2, budget=budget), c3)
                    n3 = plan.nodes[k3]
                    assert (n3.stage1_key, n3.stage2_key) == (k1, k2)
                    assert plan.nodes[k2].stage1_key == k1 and plan.nodes[k1].stage == 1
                    derived.update((k1, k2, k3))
    assert derived == set(plan.nodes)  # and the plan holds nothing the pipeline would not name


def test_a_node_round_trips_through_its_trial_config() -> None:
    """A Tune trial receives `to_dict()` as JSON; `from_dict` gives back the plan's node, the
    config as its dataclass, so the trial rebuilds the work the key names."""
    import json

    from stages.artifacts import content_key

    plan = build_plan(parse_sweep(_doc(stage3={"tau": [2.0, 4.0]})))
    for node in plan.nodes.values():
        back = Node.from_dict(json.loads(json.dumps(node.to_dict())))
        assert back == node and back.labels == node.labels
        upstream = [back.parent_key] if back.parent_key else []  # a key hashes its parent's
        assert content_key(back.stage, back.config, upstream) == node.key
        assert back.parent_key == {1: None, 2: node.stage1_key, 3: node.stage2_key}[node.stage]
