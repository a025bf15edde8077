"""The [search] section of a sweep file in the Optuna modes: what to sample and how, checked
with the rest of the file (one SchemaError line per problem; each value's type is the
schema's). It describes the search; the sampling itself is orchestrator.search's.

- `optuna` (per budget): one study per budget, `trials` each, seeded TPE, maximise val_acc;
  ASHA (`asha`, on by default) stops weak stage-3 trials early.
- `optuna-pareto`: one study sampling the budget too; objectives val_acc (max) and
  relu_count (min), seeded NSGA-II. No early stopping (Optuna ignores intermediate results
  of multi-objective studies).

How the samplers are seeded and sized to `trials` (TPE's start-up trials, NSGA-II's
population) is orchestrator.search.source's: startup_trials, population_size, study_seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.spec.budget import resolve_budget
from orchestrator.spec.schema import AshaTable, SchemaError, SearchTable, SpaceEntry
from stages.allocation import BudgetError
from stages.config import RULES

STAGE3_PARAMS = ("tau", "gamma", "alpha", "beta", "lr")


@dataclass(frozen=True)
class Dist:
    """One dimension of the search space, as the sweep file gives it."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    integer: bool = False


@dataclass(frozen=True)
class OptunaSettings:
    mode: str  # optuna | optuna-pareto
    trials: int  # per budget (optuna) or in all (optuna-pareto)
    seed: int
    sampler: str
    space: tuple[Dist, ...]
    asha: dict[str, int] | None  # grace_period, reduction_factor; None: no early stopping


def optuna_settings(table: SearchTable, relu_total: int) -> OptunaSettings:
    """The Optuna modes' settings from a typed [search] table (orchestrator.spec.schema has
    checked each value's type): what may be sampled, and each bound by its stage-3 rule."""
    mode = table.mode
    if not table.space:
        raise SchemaError(
            "search.space",
            "",
            "missing; name at least one of tau, gamma, alpha, beta, lr to sample",
        )
    allowed = STAGE3_PARAMS + (("budget",) if mode == "optuna-pareto" else ())
    space = []
    for name, entry in table.space.items():
        if name not in allowed:
            hint = " (the budget is sampled only in mode optuna-pareto)" if name == "budget" else ""
            raise SchemaError(
                "search.space", name, f"cannot be sampled{hint}; choose from: {', '.join(allowed)}"
            )
        space.append(_budget_dist(entry, relu_total) if name == "budget" else _dist(name, entry))
    if mode == "optuna-pareto" and not any(d.name == "budget" for d in space):
        raise SchemaError(
            "search.space",
            "budget",
            "mode optuna-pareto samples the budget; give {low = .., high = ..} or {choices = [..]}",
        )
    asha = None
    if table.asha is None or table.asha.enabled:
        if mode == "optuna-pareto" and table.asha is not None:
            raise SchemaError(
                "search", "asha", "early stopping needs one objective; remove it for optuna-pareto"
            )
        if mode == "optuna":
            a = table.asha or AshaTable()
            asha = {"grace_period": a.grace_period, "reduction_factor": a.reduction_factor}
    sampler = table.sampler or ("nsga2" if mode == "optuna-pareto" else "tpe")
    return OptunaSettings(mode, table.trials, table.seed, sampler, tuple(space), asha)


def _dist(name: str, entry: SpaceEntry) -> Dist:
    """One dimension; a stage-3 parameter's bounds and choices meet its rule (stages.config)."""
    rule = RULES.get(name)
    if entry.choices is not None:
        for c in entry.choices:
            if rule and (problem := rule.problem(c)):
                raise SchemaError("search.space", name, f"choices: {problem}", c)
        return Dist(name, choices=tuple(entry.choices))
    low, high = entry.low, entry.high
    if low is None or high is None:
        raise SchemaError("search.space", name, "a range needs both low and high")
    for bound, value in (("low", low), ("high", high)):
        if rule and (problem := rule.problem(value)):
            raise SchemaError("search.space", name, f"{bound}: {problem}", value)
    if low >= high:
        raise SchemaError("search.space", name, "need low < high", {"low": low, "high": high})
    if entry.log and low <= 0:
        raise SchemaError("search.space", name, "a log range needs low > 0", low)
    return Dist(name, float(low), float(high), entry.log)


def _budget_dist(entry: SpaceEntry, relu_total: int) -> Dist:
    """The budget's dimension in ReLU counts: each bound or choice as resolve_budget reads it
    (an int is a count, a number in (0, 1) a fraction), before any float conversion."""
    try:
        if entry.choices is not None:
            counts = sorted({resolve_budget(c, relu_total) for c in entry.choices})
            return Dist("budget", choices=tuple(counts))
        if entry.low is None or entry.high is None:
            raise SchemaError("search.space", "budget", "a range needs both low and high")
        low, high = resolve_budget(entry.low, relu_total), resolve_budget(entry.high, relu_total)
    except BudgetError as e:
        raise SchemaError("search.space", "budget", str(e)) from None
    if low >= high:
        raise SchemaError("search.space", "budget", "need low < high", {"low": low, "high": high})
    return Dist("budget", low, high, entry.log, integer=True)
