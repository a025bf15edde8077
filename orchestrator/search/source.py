"""Stage-3 nodes sampled by Ray Tune's OptunaSearch.

Each sampled setting becomes a stage-3 node of the DAG; its stage-1 and stage-2 parents are
computed once and shared by every trial that needs them (a repeated budget reuses stage 2).
The DAG searcher asks this source for the next stage-3 node when nothing else is ready. Each
Optuna trial is keyed by its own tag (not a Tune trial id): a sampled budget may first need a
stage-2 run, which is a different Tune trial, so the two must not be confused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from orchestrator.plan.plan import Node, stage1_node, stage2_node, stage3_node
from orchestrator.search.studies import (
    fail_stale_running,
    finished_counts,
    storage,
    study_length,
    study_names,
)
from orchestrator.spec.optuna_settings import Dist, OptunaSettings
from orchestrator.spec.sweep import Sweep


def _sampler(settings: OptunaSettings, history: int) -> Any:
    """The named sampler, seeded by the sweep's seed and the study's length: a continued study
    must not replay the random draws of its first run (they would repeat trial 0's setting)."""
    import optuna

    seed = settings.seed + 7919 * history
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _distribution(dist: Dist) -> Any:
    """The Optuna distribution of one dimension of the sweep file's search space."""
    import optuna

    if dist.choices:
        return optuna.distributions.CategoricalDistribution(list(dist.choices))
    if dist.integer:
        return optuna.distributions.IntDistribution(int(dist.low), int(dist.high), log=dist.log)  # type: ignore[arg-type]
    return optuna.distributions.FloatDistribution(dist.low, dist.high, log=dist.log)  # type: ignore[arg-type]


class OptunaSource:
    """Samples stage-3 settings (and budgets) until each study has its quota of trials."""

    def __init__(self, sweep: Sweep, settings: OptunaSettings, max_in_flight: int) -> None:
        self.sweep, self.settings, self.max_in_flight = sweep, settings, max(1, max_in_flight)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress lines say enough
        st = storage(sweep.workdir)
        names = study_names(sweep.name, settings, sweep.budgets)
        self.stale = sum(fail_stale_running(st, name) for name in names.values())
        finished = finished_counts(sweep.workdir, list(names.values()))
        space = {d.name: _distribution(d) for d in settings.space}
        pareto = settings.mode == "optuna-pareto"
        self.studies: dict[int | None, OptunaSearch] = {}
        self.remaining: dict[int | None, int] = {}
        for budget, name in names.items():
            self.studies[budget] = OptunaSearch(
                space=space,
                metric=["val_acc", "relu_count"] if pareto else "val_acc",
                mode=["max", "min"] if pareto else "max",
                sampler=_sampler(settings, study_length(st, name)),
                study_name=name,
                storage=st,
            )
            self.remaining[budget] = max(0, settings.trials - finished[name])
        self.names = names
        self.in_flight: dict[str, tuple[int | None, str]] = {}  # stage-3 key -> (study, tag)
        self.counter = 0
        self.stage1 = stage1_node(sweep.stage1[0])

    def exhausted(self) -> bool:
        return not any(self.remaining.values()) and not self.in_flight

    def ask(self) -> tuple[list[Node], Node, dict[str, Any]] | None:
        """New nodes to add (stage 2 if the budget is new, then stage 3), the stage-3 node and
        its provenance; None while the in-flight limit or the quotas say wait."""
        if len(self.in_flight) >= self.max_in_flight:
            return None
        open_ = [b for b, n in self.remaining.items() if n > 0]
        if not open_:
            return None
        study = max(open_, key=lambda b: self.remaining[b])  # spread trials over budgets
        self.remaining[study] -= 1
        self.counter += 1
        tag = f"senet-{self.counter}"
        params = dict(self.studies[study].suggest(tag))
        budget = int(params.pop("budget")) if "budget" in params else study
        assert budget is not None
        base3 = self.sweep.stage3[0]
        lr = params.pop("lr", None)
        cfg3 = dataclasses.replace(base3, **params)
        if lr is not None:
            cfg3 = dataclasses.replace(cfg3, optim=dataclasses.replace(base3.optim, lr=float(lr)))
        n2 = stage2_node(self.stage1, dataclasses.replace(self.sweep.stage2[0], budget=budget))
        n3 = stage3_node(n2, cfg3)
        self.in_flight[n3.key] = (study, tag)
        ot_trial = getattr(self.studies[study], "_ot_trials", {}).get(tag)  # Ray keeps it here
        provenance = {
            "optuna_study": self.names[study],
            "optuna_trial": getattr(ot_trial, "number", None),
        }
        return [self.stage1, n2, n3], n3, provenance

    def tell(self, key: str, result: dict[str, Any] | None, error: bool) -> None:
        """Report a finished (or failed, or stopped-early) stage-3 execution to its study."""
        if key not in self.in_flight:
            return
        study, tag = self.in_flight.pop(key)
        self.studies[study].on_trial_complete(tag, None if error else result, error=error)
