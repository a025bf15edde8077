"""What a committed stage result promises, checked before it is committed.

A record that says `completed` is read as the truth: a model at its budget, trained, with real
accuracies. Whatever input reached the stage (a sweep file, `senet pipeline`, the Python API),
a result that breaks one of these rules raises `InvariantError` instead of being committed, so
it never gets a meta.json, never counts as done and is never selected."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from .catalog import OWN_COUNTS
from .partial_relu import partial_relus


class InvariantError(RuntimeError):
    """A stage result that must not be committed; the message lists every broken rule."""


def expected_count(r_l: int, shape: tuple[int, ...], granularity: str) -> int:
    """The ReLUs a layer keeps for its share r_l: exactly r_l per pixel, or the whole channels
    that fit (floor(r_l / HW) channels of HW positions each)."""
    if granularity == "channel":
        hw = int(shape[-1]) * int(shape[-2])
        return (r_l // hw) * hw
    return r_l


def _accuracy(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    ok = isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0
    return [] if ok else [f"{name} {value!r} is not in [0, 1]"]


def _diverged(history: list[dict[str, Any]]) -> list[str]:
    """A NaN or infinite training loss: the weights are garbage, yet argmax still gives an
    accuracy in [0, 1] (chance), so only the loss tells a diverged model from a trained one."""
    for row in history:
        loss = row.get("loss")
        if loss is not None and not (isinstance(loss, (int, float)) and math.isfinite(loss)):
            return [f"training diverged: epoch {row.get('epoch')} loss is {loss!r} (lower the lr)"]
    return []


def _relu_problems(stage: int, meta: dict[str, Any], model: nn.Module) -> list[str]:
    """The recorded counts agree with the model's masks, and (stages 2, 3) fit the budget with
    each budgeted layer at its r_l (SNL's `global` allocation: the counts it recorded)."""
    problems: list[str] = []
    count, per_layer = meta.get("relu_count"), meta.get("relu_per_layer")
    if count is None or per_layer is None:
        return [f"no relu_count / relu_per_layer in the metadata of a stage-{stage} result"]
    if sum(per_layer) != count:
        problems.append(f"relu_per_layer sums to {sum(per_layer)}, not relu_count {count}")
    if stage == 1:
        if count != meta.get("relu_total"):
            problems.append(f"the all-ReLU teacher keeps {count} of {meta.get('relu_total')} ReLUs")
        return problems
    budget, budgets = meta.get("budget"), meta.get("layer_budgets")
    if budget is None or not budgets:
        return problems + ["no budget / layer_budgets in the metadata of a budgeted result"]
    if count > budget:
        problems.append(f"relu_count {count} > budget {budget}")
    masks = {n: m for n, m in partial_relus(model) if n in budgets}
    actual = {n: masks[n].relu_count() for n in budgets if n in masks}
    if list(actual.values()) != list(per_layer):
        problems.append("relu_per_layer is not what the model's masks keep")
    granularity = meta.get("granularity") or "pixel"
    own = meta.get("allocation") in OWN_COUNTS  # the search's own r_l: the counts it recorded
    wrong = []
    for n, r_l in budgets.items():
        if n not in masks:
            wrong.append(f"{n} (no such layer)")
            continue
        want = r_l if own else expected_count(int(r_l), tuple(masks[n].mask.shape), granularity)
        if actual[n] != want:
            wrong.append(f"{n} keeps {actual[n]}, its r_l is {want}")
    if wrong:
        shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
        problems.append(f"{len(wrong)} layer(s) off their share: {shown}")
    if own and sum(budgets.values()) != count:
        searched = sum(budgets.values())
        problems.append(f"the searched per-layer counts sum to {searched}, not {count}")
    return problems


def check_result(
    stage: int, meta: dict[str, Any], history: list[dict[str, Any]], model: nn.Module
) -> None:
    """Raise InvariantError unless the result may be committed: at least one epoch trained,
    accuracies in [0, 1], a finite training loss every epoch, and its ReLU counts true and within budget."""
    problems: list[str] = []
    if not history:
        epochs = getattr(getattr(meta.get("config"), "optim", None), "epochs", "?")
        problems.append(f"no epoch trained (epochs = {epochs})")
    for name in ("val_acc", "test_acc", "teacher_val_acc"):
        problems += _accuracy(name, meta.get(name))
    for row in history:
        problems += _accuracy(f"epoch {row.get('epoch')} val_acc", row.get("val_acc"))
    problems += _diverged(history)
    problems += _relu_problems(stage, meta, model)
    if problems:
        raise InvariantError(
            f"stage {stage} result {meta.get('key')} not committed: " + "; ".join(problems)
        )
