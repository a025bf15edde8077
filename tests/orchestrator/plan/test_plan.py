"""The plan: one node per distinct stage execution."""

from __future__ import annotations

from orchestrator.plan.plan import build_plan
from orchestrator.spec.sweep import parse_sweep

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
        (0, "activation-ema", "uniform"),
        (1000, "activation-ema", "proportional"),
        (1000, "activation-ema", "sensitivity"),
        (1000, "activation-ema", "uniform"),
        (1000, "snl", "global"),
    ]
    assert len(plan.stage(3)) == 5
