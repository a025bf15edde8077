"""NewestPendingFirst on a real local Ray: the actor started for a waiting trial is kept."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from ray.tune.experiment import Trial

from orchestrator.plan.start_order import NewestPendingFirst


class Controller:
    def __init__(self, statuses: list[str]) -> None:
        self.trials = [Trial("t", stub=True) for _ in statuses]
        for trial, status in zip(self.trials, statuses):
            trial.status = status

    def get_trials(self) -> list[Trial]:
        return self.trials


def test_the_newest_pending_trial_is_chosen_then_the_oldest_paused() -> None:
    s = NewestPendingFirst()
    c = Controller([Trial.TERMINATED, Trial.PENDING, Trial.PAUSED, Trial.PENDING, Trial.RUNNING])
    assert s.choose_trial_to_run(c) is c.trials[3]
    c = Controller([Trial.PAUSED, Trial.RUNNING, Trial.PAUSED])
    assert s.choose_trial_to_run(c) is c.trials[0]
    assert s.choose_trial_to_run(Controller([Trial.RUNNING, Trial.TERMINATED])) is None


def wait_for(path: Path, what: str) -> None:
    """Wait on a state another process creates; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + 300
    while not path.exists():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


@pytest.mark.usefixtures("ray_cluster")
def test_a_trial_waiting_for_its_new_actor_keeps_it(tmp_path: Path) -> None:
    """The ramp of a sweep: trial A runs alone on actor X; B is suggested and Tune starts an
    actor Y for it; A then finishes at once, before Y can have started. FIFO would give X to B
    and drop Y, so the sweep stays on one actor; newest-first gives X to the next trial, C,
    and B runs on Y. C and D wait for B, so only the scheduler decides where B runs."""
    from ray import tune
    from ray.tune.search import Searcher

    flags = tmp_path

    def trainable(config: dict[str, Any]) -> None:
        i = config["i"]
        (flags / f"started-{i}").write_text(str(os.getpid()))
        if i == 0:
            wait_for(flags / "suggested-1", "B's suggestion")
        elif i >= 2:
            wait_for(flags / "started-1", "B's start")
        tune.report({"pid": os.getpid()})

    class Ramp(Searcher):
        def __init__(self) -> None:
            super().__init__(metric="pid", mode="max")
            self.i = 0

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            if self.i == 4:
                return Searcher.FINISHED
            if self.i == 1 and not (flags / "started-0").exists():
                return None  # B only once A runs on its actor
            if self.i == 1:
                (flags / "suggested-1").touch()
            self.i += 1
            return {"i": self.i - 1}

        def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
            pass

    tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=Ramp(),
            num_samples=-1,
            max_concurrent_trials=2,
            reuse_actors=True,
            scheduler=NewestPendingFirst(),
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0),
    ).fit()
    pid = {i: (flags / f"started-{i}").read_text() for i in range(4)}
    assert pid[2] == pid[0], "the trial after A took A's actor"
    assert pid[1] != pid[0], "B kept the actor started for it"
