"""Which pending trial Tune starts next: the newest first, so that an actor being started for
a trial is never thrown away for a finished trial's actor.

With `reuse_actors`, Tune caches a finished trial's actor and gives it to the pending trial its
scheduler chooses; a trial that already has a new actor on the way then drops that actor.
FIFO chooses the oldest pending trial, which is exactly the one whose actor is on the way. When
a stage is shorter than an actor's start (a Ray worker, ray.tune and torch imported: seconds),
every new actor is dropped like this before it starts, and a sweep with two concurrent trials
runs all its trials one at a time in one actor (bench/scale.py measured 40 stage executions in
one worker process). Newest first, the trial just suggested takes the cached actor and the
older one keeps waiting for its own, which then starts and stays: both slots work.
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler


class NewestPendingFirst(FIFOScheduler):
    """FIFO's scheduler with the pending trials taken newest first (paused ones as FIFO)."""

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        trials = tune_controller.get_trials()
        for trial in reversed(trials):
            if trial.status == Trial.PENDING:
                return trial
        for trial in trials:
            if trial.status == Trial.PAUSED:
                return trial
        return None

    def debug_string(self) -> str:
        return "Newest pending trial first (keeps actors that are starting)."
