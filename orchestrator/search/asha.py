"""ASHA early stopping of stage-3 trials, kept per budget (the `optuna` mode's `asha`).

Light on purpose: the Tune trainable imports ASHA_METRIC in every Ray worker, and this module
needs nothing that the trainable has not loaded already.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from orchestrator.plan.dag import config_node
from orchestrator.plan.start_order import NewestPendingFirst

# Stage 3 also reports its per-epoch validation accuracy under this name, so ASHA sees only
# stage-3 trials (stages 1 and 2 report val_acc and must never be stopped early).
ASHA_METRIC = "stage3_val_acc"


class PerBudgetASHA(NewestPendingFirst):
    """ASHA on stage-3 trials, one instance per budget: accuracies of different budgets are not
    comparable, so a low-budget trial is only ever stopped for losing to its own budget. Which
    trial starts next is NewestPendingFirst's choice, as without ASHA."""

    def __init__(self, max_t: int, grace_period: int, reduction_factor: int) -> None:
        super().__init__()
        self.kw = {
            "max_t": max(1, max_t),
            "grace_period": max(1, min(grace_period, max_t)),
            "reduction_factor": reduction_factor,
        }
        self.by_budget: dict[Any, AsyncHyperBandScheduler] = {}
        self.routed: dict[str, AsyncHyperBandScheduler] = {}  # Tune trial id -> its ASHA
        self.stopped: set[str] = set()

    def _route(self, trial: Any) -> AsyncHyperBandScheduler | None:
        node = config_node(trial.config) or {}
        if node.get("stage") != 3:
            return None
        budget = node.get("labels", {}).get("budget")
        if budget not in self.by_budget:
            self.by_budget[budget] = AsyncHyperBandScheduler(
                time_attr="epoch", metric=ASHA_METRIC, mode="max", stop_last_trials=False, **self.kw
            )
        return self.by_budget[budget]

    # Each stage-3 trial is routed to its budget's ASHA when added and forwarded only while it
    # is there (`self.routed`): ASHA's own hooks expect a trial it was told about, exactly once.
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        asha = self._route(trial)
        if asha is not None:
            asha.on_trial_add(tune_controller, trial)
            self.routed[trial.trial_id] = asha

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        asha = self.routed.get(trial.trial_id)
        if asha is None:
            return TrialScheduler.CONTINUE
        action = asha.on_trial_result(tune_controller, trial, result)
        if result.get("epoch", 0) >= self.kw["max_t"]:
            # Its last epoch is trained (ASHA's top rung can sit at max_t): stopping it now
            # would discard a finished model; it ends by itself once the stage commits.
            action = TrialScheduler.CONTINUE
        if action == TrialScheduler.STOP:
            self.stopped.add(trial.trial_id)
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        asha = self.routed.pop(trial.trial_id, None)
        if asha is not None:
            asha.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        asha = self.routed.pop(trial.trial_id, None)
        if asha is not None:
            asha.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"PerBudgetASHA: {len(self.stopped)} stage-3 trials stopped early"
