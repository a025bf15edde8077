"""Share a ReLU budget B among layers: r_l = min(N_l, c * w_l), integers summing exactly to B.

The same capped water-filling serves every strategy; only the weights differ:
- `sensitivity` (SENet): w_l = 1 - d_l from stage 1's pruning densities.
- `uniform`: w_l = N_l, the same fraction of ReLUs kept in every layer (the paper's baseline).
- `proportional`: w_l = (1 - d_l) * N_l, sensitivity scaled by layer size, so a big layer is not
  starved just because its per-position sensitivity is moderate.
"""

from __future__ import annotations

from collections.abc import Sequence

from .catalog import WATER_FILLED


class BudgetError(ValueError):
    """A budget the model cannot meet."""


def allocation_weights(
    strategy: str, sensitivity: Sequence[float], counts: Sequence[int]
) -> list[float]:
    """Per-layer weights of a strategy (see module docstring)."""
    if strategy == "sensitivity":
        return [float(w) for w in sensitivity]
    if strategy == "uniform":
        return [float(n) for n in counts]
    if strategy == "proportional":
        return [float(w) * n for w, n in zip(sensitivity, counts)]
    raise ValueError(f"unknown allocation {strategy!r}; choose one of: {', '.join(WATER_FILLED)}")


def waterfill(weights: Sequence[float], caps: Sequence[int], budget: int) -> list[float]:
    """Real-valued r_l = min(N_l, c*w_l) with sum r_l = budget (caps re-share their overflow)."""
    n = len(caps)
    alloc = [0.0] * n
    capped = [False] * n
    remaining = float(budget)
    while True:
        free = [i for i in range(n) if not capped[i]]
        total_w = sum(max(weights[i], 0.0) for i in free)
        if not free:
            break
        if total_w <= 0.0:
            # Only zero-weight layers can still take ReLUs: fill them by their room left.
            room = sum(caps[i] for i in free)
            for i in free:
                alloc[i] = remaining * caps[i] / room if room else 0.0
            break
        c = remaining / total_w
        over = [i for i in free if c * max(weights[i], 0.0) >= caps[i]]
        if not over:
            for i in free:
                alloc[i] = c * max(weights[i], 0.0)
            break
        for i in over:
            capped[i] = True
            alloc[i] = float(caps[i])
            remaining -= caps[i]
    return alloc


def check_budget(budget: int, total: int) -> None:
    """Raise BudgetError unless 0 <= budget <= total: callable before any training, from the
    model's traced ReLU count alone. Budget 0 is the linearised network (every ReLU replaced by
    the identity): the floor every budgeted model must clear."""
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise BudgetError(f"budget must be an integer ReLU count, got {budget!r}")
    if budget < 0:
        raise BudgetError(f"budget {budget} is below 0 ReLUs")
    if budget > total:
        raise BudgetError(f"budget {budget} exceeds the model's {total} ReLUs")


def allocate(
    budget: int,
    counts: Sequence[int],
    sensitivity: Sequence[float] | None = None,
    strategy: str = "sensitivity",
) -> list[int]:
    """Integer per-layer ReLU counts for `budget`: capped at each layer's size, summing exactly
    to the budget (largest-remainder rounding of the water-filled real allocation)."""
    check_budget(budget, sum(counts))
    if sensitivity is None:
        if strategy != "uniform":
            raise ValueError(f"allocation {strategy!r} needs per-layer sensitivity")
        sensitivity = [1.0] * len(counts)
    if len(sensitivity) != len(counts):
        raise ValueError(f"{len(sensitivity)} sensitivities for {len(counts)} layers")
    real = waterfill(allocation_weights(strategy, sensitivity, counts), counts, budget)
    ints = [min(int(r), n) for r, n in zip(real, counts)]
    short = budget - sum(ints)
    # Hand the leftover ReLUs to the largest fractional parts, never past a layer's size.
    order = sorted(range(len(counts)), key=lambda i: (real[i] - ints[i], real[i]), reverse=True)
    while short > 0:
        progressed = False
        for i in order:
            if short == 0:
                break
            if ints[i] < counts[i]:
                ints[i] += 1
                short -= 1
                progressed = True
        if not progressed:  # cannot happen when budget <= total; guards an endless loop
            raise BudgetError(f"cannot place {short} ReLUs")
    return ints
