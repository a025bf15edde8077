"""Choosing models from finished records: the ReLU/val_acc Pareto front and the best run per
budget. Both read val_acc only; test_acc is reported, never used to choose, so that it stays
an unbiased estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from orchestrator.analysis.results import Row


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates, minimising x and
    maximising y. q dominates p if q.x <= p.x and q.y >= p.y with one strict; so exact
    duplicates never dominate each other and are all kept. Points with a NaN are never kept.
    O(n log n): walk x upwards and keep, at each x, the top-y points if they beat every
    smaller x."""
    order = sorted(
        (i for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))),
        key=lambda i: points[i][0],
    )
    front: list[int] = []
    best_before = -math.inf
    start = 0
    while start < len(order):
        x = points[order[start]][0]
        end = start
        while end < len(order) and points[order[end]][0] == x:
            end += 1
        group = order[start:end]
        top = max(points[i][1] for i in group)
        if top > best_before:
            front.extend(i for i in group if points[i][1] == top)
            best_before = top
        start = end
    return sorted(front)


def pareto_rows(rows: Sequence[Row]) -> list[Row]:
    """Rows on the (relu_count, val_acc) front of their (dataset, model): runs on different
    data or architectures do not compete, runs of different sweeps on the same do."""
    kept: list[Row] = []
    for group in _groups(rows, ("dataset", "model")).values():
        points = [(float(r["relu_count"]), float(r["val_acc"])) for r in group]
        kept.extend(group[i] for i in pareto_front(points))
    return kept


def best_per_budget(rows: Sequence[Row]) -> list[Row]:
    """The best record by val_acc per (sweep, budget); ties go to fewer ReLUs, then to the
    lower key so that the answer is the same on every run."""
    best: list[Row] = []
    for group in _groups(rows, ("sweep", "budget")).values():
        best.append(min(group, key=lambda r: (-r["val_acc"], r["relu_count"], r["key"])))
    return best


def _groups(rows: Iterable[Row], by: tuple[str, ...]) -> dict[tuple, list[Row]]:
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(c) for c in by), []).append(r)
    return groups
