"""The sweep's ETA on hand-made DAGs: the slots, the dependencies and the measured epochs each
decide it where they are the bottleneck."""

from __future__ import annotations

import pytest

from orchestrator.run.eta import Eta, Work, add_epoch, duration, estimate


def _chain() -> list[Work]:
    """One stage 1 (10 epochs), two stage 2s under it (5 epochs), a stage 3 under each (2)."""
    return [
        Work("s1", 1, 10),
        Work("a2", 2, 5, parents=("s1",)),
        Work("b2", 2, 5, parents=("s1",)),
        Work("a3", 3, 2, parents=("a2",)),
        Work("b3", 3, 2, parents=("b2",)),
    ]


def test_no_measured_epoch_means_no_estimate() -> None:
    assert estimate(_chain(), {}, 2) is None


def test_nothing_left_is_zero() -> None:
    eta = estimate([], {1: (3, 30.0)}, 4)
    assert eta == Eta(0.0, 3, 0, 4)


def test_the_dag_bounds_it_when_slots_are_plenty() -> None:
    """With 8 slots the chain s1 -> x2 -> x3 is the critical path: 10 + 5 + 2 epochs of 1 s,
    not the 24 epochs of work divided by 8."""
    eta = estimate(_chain(), {1: (4, 4.0)}, 8)
    assert eta is not None and eta.seconds == pytest.approx(17.0)
    assert eta.executions_left == 5 and eta.measured_epochs == 4


def test_one_slot_serialises_everything() -> None:
    eta = estimate(_chain(), {1: (2, 2.0)}, 1)
    assert eta is not None and eta.seconds == pytest.approx(24.0)


def test_per_stage_speeds_and_a_borrowed_mean() -> None:
    """Stage 1 at 2 s/epoch, stage 2 at 4 s/epoch; stage 3 is unmeasured and borrows the mean
    of all 4 measured epochs ((2*2 + 2*4) / 4 = 3 s). Two slots: s1 20 s, both stage 2s side
    by side 20 s, both stage 3s side by side 6 s."""
    measured: dict[int, tuple[int, float]] = {}
    for stage, seconds in ((1, 2.0), (1, 2.0), (2, 4.0), (2, 4.0)):
        add_epoch(measured, stage, seconds)
    assert measured == {1: (2, 4.0), 2: (2, 8.0)}
    eta = estimate(_chain(), measured, 2)
    assert eta is not None and eta.seconds == pytest.approx(20 + 20 + 6)


def test_running_work_counts_only_its_epochs_left() -> None:
    """s1 is running at epoch 8 of 10 and done epochs are not repaid: 2 + 5 + 2 epochs."""
    work = _chain()
    work[0] = Work("s1", 1, 10, done_epochs=8, running=True)
    eta = estimate(work, {1: (8, 8.0)}, 8)
    assert eta is not None and eta.seconds == pytest.approx(9.0)


def test_deepest_stage_first_like_the_searcher() -> None:
    """One slot, a ready stage 3 (1 epoch) and a ready stage 1 (1 epoch) whose stage 2 child
    (1 epoch) follows: every order takes 3 epochs, but a running stage 2 occupying the only slot
    delays all of them by its epochs left."""
    work = [
        Work("x3", 3, 1),
        Work("y1", 1, 1),
        Work("y2", 2, 1, parents=("y1",)),
        Work("z2", 2, 4, done_epochs=1, running=True),
    ]
    eta = estimate(work, {2: (1, 1.0)}, 1)
    assert eta is not None and eta.seconds == pytest.approx(3 + 3)


def test_parents_outside_the_work_are_done() -> None:
    """A stage 3 whose stage 2 is already done (not in the list) is ready at once."""
    eta = estimate([Work("a3", 3, 3, parents=("done2",))], {3: (1, 2.0)}, 1)
    assert eta is not None and eta.seconds == pytest.approx(6.0)


def test_text_names_the_basis() -> None:
    text = Eta(720.0, 14, 9, 2).text()
    assert text == "ETA 12 min (from 14 measured epochs; 9 executions left, 2 at a time)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (89, "89 s"),
        (91, "2 min"),
        (5300, "88 min"),
        (5399, "1 h 30 min"),
        (11100, "3 h 05 min"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
