"""ASHA kept per budget, through Ray's public scheduler hooks only, without a Ray cluster:
a trial is only ever stopped for losing to its own budget, and stages 1 and 2 never are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ray.tune.schedulers import TrialScheduler

from orchestrator.search.asha import ASHA_METRIC, PerBudgetASHA

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


@dataclass
class FakeTrial:
    """What the scheduler reads of a Tune trial: its id and its config (the plan node)."""

    trial_id: str
    stage: int = 3
    budget: int = 1000
    config: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.config = {"node": {"stage": self.stage, "labels": {"budget": self.budget}}}


def _result(epoch: int, acc: float) -> dict[str, Any]:
    return {"epoch": epoch, ASHA_METRIC: acc, "val_acc": acc}


def _added(asha: PerBudgetASHA, *trials: FakeTrial) -> None:
    for t in trials:
        asha.on_trial_add(None, t)


def test_a_trial_is_stopped_only_by_its_own_budget() -> None:
    asha = PerBudgetASHA(max_t=4, grace_period=1, reduction_factor=2)
    strong, weak, weaker = FakeTrial("a", budget=6000), FakeTrial("b"), FakeTrial("c")
    _added(asha, strong, weak, weaker)
    assert asha.on_trial_result(None, strong, _result(1, 0.9)) == CONTINUE
    # One shared ASHA would stop `weak` here (0.1 is below 6000's 0.9): per budget it goes on.
    assert asha.on_trial_result(None, weak, _result(1, 0.1)) == CONTINUE
    assert asha.on_trial_result(None, weaker, _result(1, 0.05)) == STOP  # below its own budget
    assert asha.stopped == {"c"}
    assert set(asha.by_budget) == {1000, 6000}


def test_stages_one_and_two_are_never_routed_or_stopped() -> None:
    asha = PerBudgetASHA(max_t=4, grace_period=1, reduction_factor=2)
    strong, teacher = FakeTrial("a"), FakeTrial("t", stage=1)
    _added(asha, strong, teacher)
    asha.on_trial_result(None, strong, _result(1, 0.9))
    assert asha.on_trial_result(None, teacher, _result(1, 0.01)) == CONTINUE
    assert "t" not in asha.routed and not asha.stopped


def test_completed_and_removed_trials_leave_their_asha() -> None:
    asha = PerBudgetASHA(max_t=4, grace_period=1, reduction_factor=2)
    a, b, never_added = FakeTrial("a"), FakeTrial("b"), FakeTrial("x")
    _added(asha, a, b)
    asha.on_trial_complete(None, a, _result(4, 0.9))
    asha.on_trial_remove(None, a)  # after completion: nothing left to remove, no error
    asha.on_trial_remove(None, b)
    asha.on_trial_remove(None, b)  # twice: no error
    assert asha.routed == {}
    # A trial the scheduler was never told about goes on untouched.
    assert asha.on_trial_result(None, never_added, _result(1, 0.0)) == CONTINUE


def _at_the_last_rung(asha: PerBudgetASHA) -> FakeTrial:
    """A trial that passed every rung but the top one, behind one that reached epoch 4."""
    strong, weak = FakeTrial("a"), FakeTrial("b")
    _added(asha, strong, weak)
    for epoch in (1, 2, 4):
        asha.on_trial_result(None, strong, _result(epoch, 0.9))
    for epoch in (1, 2):
        assert asha.on_trial_result(None, weak, _result(epoch, 0.95)) == CONTINUE
    return weak


def test_a_trial_at_its_last_epoch_is_never_stopped() -> None:
    """max_t = 4, grace 1, factor 2: ASHA's top rung sits at epoch 4, the last. A trial losing
    there has trained every epoch; stopping it would discard a finished model."""
    plain = PerBudgetASHA(max_t=4, grace_period=1, reduction_factor=2)
    weak = _at_the_last_rung(plain)
    # Ray's ASHA alone stops it here (0.1 is below the rung's 0.9) ...
    assert plain.by_budget[1000].on_trial_result(None, weak, _result(4, 0.1)) == STOP
    asha = PerBudgetASHA(max_t=4, grace_period=1, reduction_factor=2)
    weak = _at_the_last_rung(asha)
    # ... the per-budget wrapper lets it finish, commit its model and report stage_done.
    assert asha.on_trial_result(None, weak, _result(4, 0.1)) == CONTINUE
    assert not asha.stopped
