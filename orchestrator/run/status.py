"""How much of a sweep is planned and done, from the store, the records and the Optuna
journal alone: no Ray. What `senet validate` and `senet status` print."""

from __future__ import annotations

from orchestrator.plan.plan import build_plan
from orchestrator.spec.sweep import Sweep


def plan_summary(sweep: Sweep) -> dict[str, dict[str, int]]:
    """Stage runs planned and done. In the Optuna modes stage 3 is the studies' trial quota
    (and, with a sampled budget, stage 2 is bounded by the distinct budgets it can draw)."""
    optuna = sweep.search.optuna
    summary = build_plan(sweep, [] if optuna else None).summary()
    if optuna is None:
        return summary
    from orchestrator.records.read import read_records  # pyarrow: only the Optuna modes need it
    from orchestrator.search.studies import finished_counts, study_names

    names = list(study_names(sweep.name, optuna, sweep.budgets).values())
    finished = finished_counts(sweep.workdir, names)
    summary["stage3"] = {
        "total": optuna.trials * len(names),
        "done": sum(min(optuna.trials, n) for n in finished.values()),
    }
    if optuna.mode == "optuna-pareto":
        budget = next(d for d in optuna.space if d.name == "budget")
        bound = min(optuna.trials, len(budget.choices)) if budget.choices else optuna.trials
        done = read_records(sweep.workdir, sweep=sweep.name, stage=2).num_rows
        summary["stage2"] = {"total": max(bound, done), "done": done}
    return summary
