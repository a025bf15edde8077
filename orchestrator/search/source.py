"""Stage-3 nodes sampled by Optuna, through its ask-and-tell interface.

Each sampled setting becomes a stage-3 node of the DAG; its stage-1 and stage-2 parents are
computed once and shared by every trial that needs them (a repeated budget reuses stage 2).
The DAG searcher asks this source for the next stage-3 node when nothing else is ready, and
tells it how the node ended. Each in-flight node is keyed to its Optuna trial number (not a
Tune trial id): a sampled budget may first need a stage-2 run, which is a different Tune trial.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from orchestrator.plan.plan import Node, stage1_node, stage2_node, stage3_node
from orchestrator.search.studies import open_study, storage, study_names
from orchestrator.spec.optuna_settings import Dist, OptunaSettings
from orchestrator.spec.sweep import Sweep

log = logging.getLogger("senet.optuna")


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
    """Samples stage-3 settings (and budgets) until each study has its quota of trials. Opening
    the studies reads the journal once: how many trials each has finished, and the trials a
    killed run left RUNNING (marked FAIL here)."""

    def __init__(self, sweep: Sweep, settings: OptunaSettings, max_in_flight: int = 1) -> None:
        self.sweep, self.settings, self.max_in_flight = sweep, settings, max(1, max_in_flight)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress lines say enough
        st = storage(sweep.workdir)
        self.names = study_names(sweep.name, settings, sweep.budgets)
        self.pareto = settings.mode == "optuna-pareto"
        self.metrics = ("val_acc", "relu_count") if self.pareto else ("val_acc",)
        directions = ["maximize", "minimize"] if self.pareto else ["maximize"]
        self.space = {d.name: _distribution(d) for d in settings.space}
        self.studies: dict[int | None, Any] = {}  # budget (None: Pareto) -> optuna.Study
        self.finished: dict[str, int] = {}  # study name -> COMPLETE or PRUNED trials
        self.remaining: dict[int | None, int] = {}
        self.stale = 0
        for budget, name in self.names.items():
            opened = open_study(st, name, directions, lambda n: _sampler(settings, n))
            self.studies[budget] = opened.study
            self.finished[name] = opened.finished
            self.stale += opened.stale
            self.remaining[budget] = max(0, settings.trials - opened.finished)
        self.in_flight: dict[str, tuple[int | None, int]] = {}  # stage-3 key -> (study, number)
        self.stage1 = stage1_node(sweep.stage1[0])

    def limit_in_flight(self, max_in_flight: int) -> None:
        """At most this many sampled trials at once (the run's concurrency, known once Ray is
        up): more would be sampled from less history for no gain in throughput."""
        self.max_in_flight = max(1, max_in_flight)

    def trials_left(self) -> int:
        return sum(self.remaining.values())

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
        trial = self.studies[study].ask(self.space)
        params = dict(trial.params)
        budget = int(params.pop("budget")) if "budget" in params else study
        assert budget is not None
        base3 = self.sweep.stage3[0]
        lr = params.pop("lr", None)
        cfg3 = dataclasses.replace(base3, **params)
        if lr is not None:
            cfg3 = dataclasses.replace(cfg3, optim=dataclasses.replace(base3.optim, lr=float(lr)))
        n2 = stage2_node(self.stage1, dataclasses.replace(self.sweep.stage2[0], budget=budget))
        n3 = stage3_node(n2, cfg3)
        self.in_flight[n3.key] = (study, trial.number)
        provenance = {"optuna_study": self.names[study], "optuna_trial": trial.number}
        return [self.stage1, n2, n3], n3, provenance

    def tell(self, key: str, result: dict[str, Any] | None, error: bool) -> None:
        """Report a finished (or failed, or stopped-early) stage-3 execution to its study: the
        objectives from its last result (COMPLETE; a stopped trial's last epoch), FAIL on an
        error, PRUNED for a result without the objective."""
        import optuna

        if key not in self.in_flight:
            return
        study, number = self.in_flight.pop(key)
        values: Any = None
        if result and not error:
            got = [result.get(m) for m in self.metrics]
            values = got if self.pareto else got[0]
        state = optuna.trial.TrialState.COMPLETE
        if values is None:
            state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
        try:
            self.studies[study].tell(number, values, state=state)
        except (ValueError, RuntimeError) as e:  # e.g. a NaN accuracy: the trial stays as is
            log.warning("optuna: could not tell trial %s of %s: %s", number, self.names[study], e)
