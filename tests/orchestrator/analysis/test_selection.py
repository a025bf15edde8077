"""Choosing models: the Pareto front and the best run per budget, by val_acc only."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.analysis import results as R
from orchestrator.analysis import selection as S


@pytest.mark.parametrize(
    ("points", "front"),
    [
        ([], []),
        ([(5.0, 0.5)], [0]),
        ([(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)], [0, 1, 2]),  # a staircase: all on it
        ([(1.0, 0.7), (2.0, 0.6), (3.0, 0.5)], [0]),  # the first dominates the rest
        ([(1.0, 0.5), (1.0, 0.5), (2.0, 0.4)], [0, 1]),  # exact duplicates both kept
        ([(2.0, 0.5), (2.0, 0.6)], [1]),  # same x, lower y: dominated
        ([(1.0, 0.6), (2.0, 0.6)], [0]),  # same y, more x: dominated
        ([(3.0, 0.9), (1.0, 0.2), (2.0, 0.2), (2.0, 0.95)], [1, 3]),  # order-independent
        ([(1.0, 0.5), (2.0, float("nan")), (3.0, 0.8)], [0, 2]),  # NaN never kept
    ],
)
def test_pareto_front(points: list[tuple[float, float]], front: list[int]) -> None:
    assert S.pareto_front(points) == front


def test_pareto_front_matches_the_definition_on_random_points() -> None:
    import random

    rnd = random.Random(1)
    points = [(float(rnd.randint(1, 8)), float(rnd.randint(1, 8))) for _ in range(60)]

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)

    assert S.pareto_front(points) == [i for i, p in enumerate(points) if not dominated(p)]


def test_best_per_budget_selects_by_val_acc_never_test_acc(work: Path) -> None:
    rows = R.finished(R.load(work, stage=3)).to_pylist()
    best = {(r["sweep"], r["budget"]): r["key"] for r in S.best_per_budget(rows)}
    # a3x has the best test_acc; a3y and a3z tie on val_acc and a3z has fewer ReLUs.
    assert best == {("a", 50000): "a3z", ("a", 100000): "a3w", ("b", 50000): "b3a"}


def test_best_per_budget_tie_on_everything_goes_to_the_lower_key() -> None:
    rows = [{"sweep": "s", "budget": 1, "relu_count": 5, "val_acc": 0.5, "key": k} for k in "qbz"]
    assert [r["key"] for r in S.best_per_budget(rows)] == ["b"]


def test_pareto_rows_keep_datasets_apart() -> None:
    rows = [
        {"dataset": "c10", "model": "m", "relu_count": 10, "val_acc": 0.9, "key": "big"},
        {"dataset": "c100", "model": "m", "relu_count": 20, "val_acc": 0.6, "key": "other"},
        {"dataset": "c10", "model": "m", "relu_count": 20, "val_acc": 0.8, "key": "beaten"},
    ]
    assert sorted(r["key"] for r in S.pareto_rows(rows)) == ["big", "other"]
