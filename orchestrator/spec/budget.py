"""ReLU budgets as users write them: an absolute count, or a fraction of the model's ReLUs."""

from __future__ import annotations

from stages.allocation import BudgetError


def resolve_budget(value: int | float | str, relu_total: int) -> int:
    """An integer ReLU count from `value`: an int >= 0 is taken as is (0: the linearised
    network, a floor to compare with), a number in (0, 1) as a fraction of `relu_total`
    (rounded, at least 1). Raises BudgetError with the reason."""
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise BudgetError(f"budget {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BudgetError(f"budget {value!r} is not a number")
    if isinstance(value, float):
        if value.is_integer() and value >= 0:
            value = int(value)
        elif 0 < value < 1:
            return max(1, round(value * relu_total))
        else:
            raise BudgetError(
                f"budget {value} is neither a ReLU count (integer >= 0) nor a fraction in (0, 1)"
            )
    if value < 0:
        raise BudgetError(f"budget {value} is below 0 ReLUs")
    if value > relu_total:
        raise BudgetError(f"budget {value} exceeds the model's {relu_total} ReLUs")
    return value
