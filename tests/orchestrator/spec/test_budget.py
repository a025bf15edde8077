"""ReLU budgets as users write them: counts, fractions, and the ambiguous or impossible ones
refused with the reason."""

from __future__ import annotations

import pytest

from orchestrator.spec.budget import resolve_budget
from stages.allocation import BudgetError

TOTAL = 10_000


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (0, 0),  # the linearised network
        (1, 1),
        (2500, 2500),
        (TOTAL, TOTAL),  # all of them, written as a count
        (2500.0, 2500),  # a whole float is a count
        (0.25, 2500),  # a fraction of the total
        (0.00001, 1),  # a fraction never rounds to no ReLU at all
        (0.33333, 3333),  # rounded, not truncated up or down blindly
        (0.99996, 10_000),
        ("2500", 2500),  # strings as a CLI gives them
        ("0.25", 2500),
        ("2.5e3", 2500),
    ],
)
def test_counts_and_fractions(value: int | float | str, count: int) -> None:
    got = resolve_budget(value, TOTAL)
    assert got == count and isinstance(got, int)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.0, "ambiguous"),  # 1 ReLU or 100 %?
        ("1.0", "ambiguous"),
        (-1, "below 0"),
        (TOTAL + 1, f"exceeds the model's {TOTAL} ReLUs"),
        (2.5, "neither a ReLU count"),
        (-0.5, "neither a ReLU count"),
        ("many", "not a number"),
        (True, "not a number"),  # a TOML boolean is not a count of 1
        (None, "not a number"),
    ],
)
def test_refused_with_the_reason(value: object, reason: str) -> None:
    with pytest.raises(BudgetError, match=reason):
        resolve_budget(value, TOTAL)  # type: ignore[arg-type]
