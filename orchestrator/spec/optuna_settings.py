"""The [search] section of a sweep file in the Optuna modes: what to sample and how, checked
with the rest of the file (one SweepError line per problem). It describes the search; the
sampling itself is orchestrator.search's.

- `optuna` (per budget): one study per budget, `trials` each, seeded TPE, maximise val_acc;
  ASHA (`asha`, on by default) stops weak stage-3 trials early.
- `optuna-pareto`: one study sampling the budget too; objectives val_acc (max) and
  relu_count (min), seeded NSGA-II. No early stopping (Optuna ignores intermediate results
  of multi-objective studies).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import SweepError
from orchestrator.spec.budget import resolve_budget
from stages.allocation import BudgetError

STAGE3_PARAMS = ("tau", "gamma", "alpha", "beta", "lr")
SAMPLERS = ("tpe", "nsga2", "random")


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


def _dist(name: str, spec: Any, where: str) -> Dist:
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise SweepError(
            f"{where}: give {{low = .., high = ..}} or {{choices = [..]}}, got {spec!r}"
        )
    unknown = set(spec) - {"low", "high", "log", "choices"}
    if unknown:
        raise SweepError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; use low, high, log or choices"
        )
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SweepError(f"{where}: choices must be a non-empty list")
        return Dist(name, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise SweepError(f"{where}: a range needs both low and high")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
        raise SweepError(f"{where}: need numbers with low < high, got low={low!r} high={high!r}")
    if log and low <= 0:
        raise SweepError(f"{where}: a log range needs low > 0, got {low}")
    return Dist(name, float(low), float(high), log)


def parse_optuna(mode: str, options: dict[str, Any], relu_total: int) -> OptunaSettings:
    """Validate [search] for the Optuna modes; every problem names its key."""
    opts = dict(options)
    known = {"trials", "seed", "sampler", "space", "asha"}
    for key in opts:
        if key not in known:
            raise SweepError(
                f"[search] {key}: unknown key for mode {mode!r}; known keys: {', '.join(sorted(known))}"
            )
    trials = opts.get("trials", 8)
    if not isinstance(trials, int) or trials < 1:
        raise SweepError(f"[search] trials: a positive integer, got {trials!r}")
    seed = opts.get("seed", 0)
    if not isinstance(seed, int):
        raise SweepError(f"[search] seed: an integer, got {seed!r}")
    sampler = opts.get("sampler", "nsga2" if mode == "optuna-pareto" else "tpe")
    if sampler not in SAMPLERS:
        raise SweepError(
            f"[search] sampler: unknown {sampler!r}; choose one of: {', '.join(SAMPLERS)}"
        )
    space_doc = opts.get("space", {})
    if not isinstance(space_doc, dict) or not space_doc:
        raise SweepError(
            "[search.space]: missing; name at least one of tau, gamma, alpha, beta, lr to sample"
        )
    allowed = STAGE3_PARAMS + (("budget",) if mode == "optuna-pareto" else ())
    space = []
    for name, spec in space_doc.items():
        where = f"[search.space] {name}"
        if name not in allowed:
            hint = " (the budget is sampled only in mode optuna-pareto)" if name == "budget" else ""
            raise SweepError(f"{where}: cannot be sampled{hint}; choose from: {', '.join(allowed)}")
        dist = _dist(name, spec, where)
        if name == "tau" and not dist.choices and dist.low is not None and dist.low <= 0:
            raise SweepError(f"{where}: the temperature must be > 0, got low = {dist.low}")
        if name == "budget":
            dist = _budget_dist(dist, relu_total, where)
        space.append(dist)
    if mode == "optuna-pareto" and not any(d.name == "budget" for d in space):
        raise SweepError(
            "[search.space] budget: mode optuna-pareto samples the budget; give {low = .., high = ..} or {choices = [..]}"
        )
    asha_doc = opts.get("asha", {} if mode == "optuna" else False)
    asha = None
    if asha_doc is not False:
        if mode == "optuna-pareto":
            raise SweepError(
                "[search] asha: early stopping needs one objective; remove it for optuna-pareto"
            )
        if not isinstance(asha_doc, dict) or set(asha_doc) - {"grace_period", "reduction_factor"}:
            raise SweepError(
                "[search] asha: a table with grace_period and reduction_factor, or false"
            )
        asha = {
            "grace_period": int(asha_doc.get("grace_period", 1)),
            "reduction_factor": int(asha_doc.get("reduction_factor", 2)),
        }
    return OptunaSettings(mode, trials, seed, sampler, tuple(space), asha)


def _budget_dist(dist: Dist, relu_total: int, where: str) -> Dist:
    try:
        if dist.choices:
            return dataclasses.replace(
                dist, choices=tuple(sorted({resolve_budget(c, relu_total) for c in dist.choices}))
            )
        low, high = (
            resolve_budget(_num(dist.low), relu_total),
            resolve_budget(_num(dist.high), relu_total),
        )
    except BudgetError as e:
        raise SweepError(f"{where}: {e}") from None
    return dataclasses.replace(dist, low=low, high=high, integer=True)


def _num(x: float | None) -> int | float:
    assert x is not None
    return int(x) if float(x).is_integer() else x
