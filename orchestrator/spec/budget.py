"""ReLU budgets as users write them: an absolute count, or a fraction of the model's ReLUs."""

from __future__ import annotations

from stages.allocation import BudgetError, check_budget


def resolve_budget(value: int | float | str, relu_total: int) -> int:
    """An integer ReLU count from `value`: an int is a count (0: the linearised network, a
    floor to compare with), a number in (0, 1) a fraction of `relu_total` (rounded, at least
    1), a whole float a count (1000.0), except 1.0, which could mean 1 ReLU or 100 %: refused.
    The count's bounds are allocation.check_budget's. Raises BudgetError with the reason."""
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise BudgetError(f"budget {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BudgetError(f"budget {value!r} is not a number")
    if isinstance(value, float):
        if value == 1.0:
            raise BudgetError(
                "budget 1.0 is ambiguous (1 ReLU or 100 %?): write 1 for one ReLU, "
                f"or {relu_total} for all of them"
            )
        if 0 < value < 1:
            return max(1, round(value * relu_total))
        if not value.is_integer():
            raise BudgetError(
                f"budget {value} is neither a ReLU count (integer >= 0) nor a fraction in (0, 1)"
            )
        value = int(value)
    check_budget(value, relu_total)
    return value
