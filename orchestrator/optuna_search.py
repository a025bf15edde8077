"""Optuna search over SENet's distillation settings (and, in `optuna-pareto`, the budget).

Ray Tune's OptunaSearch does the sampling, with its study in a journal file in the workdir, so
rerunning the command continues the same study: trial numbers go on, finished trials count
toward the quota, and trials a killed run left RUNNING are marked FAIL first.
Each sampled setting becomes a stage-3 node of the DAG; its stage-1 and stage-2 parents are
computed once and shared by every trial that needs them (a repeated budget reuses stage 2).

- `optuna` (per budget): one study per budget, `trials` each, seeded TPE, maximise val_acc;
  ASHA stops weak stage-3 trials early on their per-epoch validation accuracy.
- `optuna-pareto`: one study sampling the budget too; objectives val_acc (max) and
  relu_count (min), seeded NSGA-II. No early stopping (Optuna ignores intermediate results
  of multi-objective studies).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import resolve_budget
from .sweep import SweepError

STAGE3_PARAMS = ("tau", "gamma", "alpha", "beta", "lr")
# Stage 3 also reports its per-epoch validation accuracy under this name, so ASHA sees only
# stage-3 trials (stages 1 and 2 report val_acc and must never be stopped early).
ASHA_METRIC = "stage3_val_acc"
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

    def to_optuna(self) -> Any:
        import optuna

        if self.choices:
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)  # type: ignore[arg-type]


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
    from stages.allocation import BudgetError

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


def journal_path(workdir: Path) -> Path:
    return Path(workdir) / "optuna" / "journal.log"


def storage(workdir: Path) -> Any:
    """The workdir's journal storage (one file for every study of the workdir)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def study_names(
    sweep_name: str, settings: OptunaSettings, budgets: tuple[int, ...]
) -> dict[int | None, str]:
    """budget -> study name (per-budget mode), or {None: name} for the Pareto study."""
    if settings.mode == "optuna-pareto":
        return {None: f"{sweep_name}-pareto"}
    return {b: f"{sweep_name}-budget{b}" for b in budgets}


def finished_counts(workdir: Path, names: list[str]) -> dict[str, int]:
    """Trials of each study that finished (COMPLETE or PRUNED); 0 for a study not started."""
    import optuna

    if not journal_path(workdir).exists():
        return dict.fromkeys(names, 0)
    st = storage(workdir)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    out = {}
    existing = {s.study_name for s in st.get_all_studies()}
    for name in names:
        if name not in existing:
            out[name] = 0
            continue
        study = optuna.load_study(study_name=name, storage=st)
        out[name] = len(study.get_trials(deepcopy=False, states=done))
    return out


def fail_stale_running(st: Any, name: str) -> int:
    """Mark trials left RUNNING by a killed run as FAIL (journal storage has no heartbeat)."""
    import optuna

    if name not in {s.study_name for s in st.get_all_studies()}:
        return 0
    study = optuna.load_study(study_name=name, storage=st)
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        st.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    return len(stale)


def study_length(st: Any, name: str) -> int:
    """How many trials a study holds, in any state (0 if it does not exist yet)."""
    import optuna

    if name not in {s.study_name for s in st.get_all_studies()}:
        return 0
    return len(optuna.load_study(study_name=name, storage=st).get_trials(deepcopy=False))
