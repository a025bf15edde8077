"""Stage-3 nodes sampled by Optuna, through its ask-and-tell interface.

Each sampled setting becomes a stage-3 node of the DAG; its stage-1 and stage-2 parents are
computed once and shared by every trial that needs them (a repeated budget reuses stage 2).
The DAG searcher asks this source for the next stage-3 node when nothing else is ready, and
tells it how the node ended. Each in-flight node is keyed to its Optuna trial number (not a
Tune trial id): a sampled budget may first need a stage-2 run, which is a different Tune trial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Iterable
from typing import Any

from orchestrator.plan.plan import Node, stage1_node, stage2_node, stage3_node
from orchestrator.search.studies import open_study, storage, study_names
from orchestrator.spec.optuna_settings import Dist, OptunaSettings
from orchestrator.spec.sweep import Sweep
from stages.store import Store

log = logging.getLogger("senet.optuna")


def startup_trials(trials: int) -> int:
    """TPE's random start-up trials for a study of `trials`: a quarter of them, at least 3
    and at most Optuna's default 10. Optuna's default alone exceeds a sweep's usual 8-20
    trials, so every trial would be random; a quarter leaves most of them to the model (8
    trials: 3 random, 5 TPE). The floor: TPE models the best tenth of its history against the
    rest, and after only 1-2 trials that is one point (on an analytic 5-dimension stand-in
    for stage 3, 3 start-up trials of 8 beat 2)."""
    return min(10, max(3, trials // 4))


def population_size(trials: int) -> int:
    """NSGA-II's population for a study of `trials`: a quarter of them, at least 4 (binary
    tournaments need a few parents to choose from) and at most Optuna's default 50. Its first
    generation is random, so the default 50 would make a 16-trial study all random; a quarter
    leaves three generations bred from the front (16 trials: 4 random, 12 bred)."""
    return min(50, max(4, trials // 4))


def study_seed(seed: int, budget: int | None, history: int) -> int:
    """The sampler seed of one study: derived from the sweep's seed and the study's budget, so
    the per-budget studies draw different settings (one shared seed gave every budget the same
    start-up trials), and from its length, so a continued study does not replay its first
    run's draws. A hash, not Python's hash(): the same on every rerun."""
    text = f"{seed}/{budget}/{history}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "big")


def _sampler(settings: OptunaSettings, budget: int | None, history: int) -> Any:
    """The named sampler, seeded per study (study_seed) and sized to the study's trials
    (startup_trials, population_size). TPE's constant liar keeps the trials in flight at once
    (`max_concurrent`) from being sampled at the same spot."""
    import optuna

    seed = study_seed(settings.seed, budget, history)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=population_size(settings.trials)
        )
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup_trials(settings.trials), constant_liar=True
    )


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
            opened = open_study(st, name, directions, lambda n, b=budget: _sampler(settings, b, n))
            self.studies[budget] = opened.study
            self.finished[name] = opened.finished
            self.stale += opened.stale
            self.remaining[budget] = max(0, settings.trials - opened.finished)
        self.in_flight: dict[str, tuple[int | None, Any]] = {}  # stage-3 key -> (study, Trial)
        self.stage1 = stage1_node(sweep.stage1[0])

    def limit_in_flight(self, max_in_flight: int) -> None:
        """At most this many sampled trials at once (the run's concurrency, known once Ray is
        up): more would be sampled from less history for no gain in throughput."""
        self.max_in_flight = max(1, max_in_flight)

    def trials_left(self) -> int:
        return sum(self.remaining.values())

    def exhausted(self) -> bool:
        return not any(self.remaining.values()) and not self.in_flight

    def stage2_bound(self, store: Store, seen: Iterable[str] = ()) -> int:
        """The stage-2 runs this search may still add, at most (stage2_bound): `seen`, the
        stage-2 keys already among the run's nodes, are not new."""
        return stage2_bound(self.sweep, self.trials_left(), store, seen)

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
        n2 = sampled_stage2(self.sweep, budget)
        n3 = stage3_node(n2, cfg3)
        self.in_flight[n3.key] = (study, trial)
        provenance = {"optuna_study": self.names[study], "optuna_trial": trial.number}
        return [self.stage1, n2, n3], n3, provenance

    def tell(self, key: str, result: dict[str, Any] | None, error: bool) -> None:
        """Report how a stage-3 execution ended to its study: COMPLETE with its objectives
        when it finished (its final report, or the stored result of a setting sampled before);
        PRUNED when ASHA stopped it early, its last epoch's accuracy reported at that epoch
        (Optuna's TPE ranks pruned trials by it); FAIL on an error; PRUNED without a value for
        a result that lacks the objective."""
        import optuna

        if key not in self.in_flight:
            return
        study, trial = self.in_flight.pop(key)
        state = optuna.trial.TrialState
        values = [(result or {}).get(m) for m in self.metrics]
        try:
            if error:
                self.studies[study].tell(trial, state=state.FAIL)
            elif (result is not None and stopped_early(result)) or None in values:
                acc = (result or {}).get("val_acc")
                if not self.pareto and isinstance(acc, (int, float)) and math.isfinite(acc):
                    trial.report(float(acc), step=int((result or {}).get("epoch", 0)))
                self.studies[study].tell(trial, state=state.PRUNED)
            else:
                self.studies[study].tell(trial, values if self.pareto else values[0])
        except (ValueError, RuntimeError) as e:  # e.g. a NaN accuracy: the trial stays as is
            log.warning(
                "optuna: could not tell trial %s of %s: %s", trial.number, self.names[study], e
            )


def sampled_stage2(sweep: Sweep, budget: int) -> Node:
    """The stage-2 node a sampled `budget` needs (shared by every trial that draws it)."""
    n1 = stage1_node(sweep.stage1[0])
    return stage2_node(n1, dataclasses.replace(sweep.stage2[0], budget=budget))


def stage2_bound(sweep: Sweep, trials_left: int, store: Store, seen: Iterable[str] = ()) -> int:
    """The stage-2 runs `trials_left` unsampled trials may still add, at most: in
    `optuna-pareto` one per budget choice whose stage 2 is neither done nor among `seen`, and
    never more than the trials (a budget drawn again reuses its stage 2, so this is an upper
    bound); a continuous budget may need one per trial. A per-budget sweep's stage 2 is in
    its plan: 0."""
    settings = sweep.search.optuna
    if settings is None or settings.mode != "optuna-pareto":
        return 0
    dist = next(d for d in settings.space if d.name == "budget")
    if not dist.choices:
        return trials_left
    skip = set(seen)
    keys = (sampled_stage2(sweep, int(b)).key for b in dist.choices)
    new = sum(k not in skip and not store.is_done(2, k) for k in keys)
    return min(trials_left, new)


def stopped_early(result: dict[str, Any]) -> bool:
    """Whether a stage-3 trial's last result is an epoch's report (the trainable's per-epoch
    rows carry `epoch`), not its final `stage_done` one: the scheduler stopped it early."""
    return "epoch" in result and not result.get("stage_done")
