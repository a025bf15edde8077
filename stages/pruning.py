"""Stage 1's pruning: how the density d_l of each conv, and so its sensitivity 1 - d_l, is read.

`oneshot` is one global magnitude threshold on the trained weights. `iterative` is gradual
magnitude pruning with regrowth, after the sparse learning of the SENet group's code (Dettmers &
Zettlemoyer 2019, momentum redistribution): a masked copy of the model trains between pruning
rounds, and each round gives part of its pruned weights back to the layers whose momentum says
they still learn. Comparing the two shows whether the sensitivity estimate is the weak link.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .allocation import allocate
from .catalog import PRUNINGS
from .train import autocast

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def magnitude_densities(model: nn.Module, density: float) -> dict[str, float]:
    """Global magnitude pruning of all conv weights to `density`: the fraction of each conv's
    weights that survive one global threshold (so the per-layer densities come out uneven)."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    magnitudes = torch.cat(
        [m.weight.detach().abs().flatten().float().cpu() for m in convs.values()]
    )
    keep = max(1, int(round(density * magnitudes.numel())))
    threshold = torch.topk(magnitudes, keep, sorted=True).values[-1]
    return {
        n: float((m.weight.detach().abs().float().cpu() >= threshold).float().mean())
        for n, m in convs.items()
    }


def _top(score: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """A flat bool mask of exactly the k highest scores, ties at the threshold broken by a
    seeded draw (topk's tie order is unspecified); kthvalue is linear, a full sort of ResNet18's
    11M weights is not."""
    n = score.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=score.device)
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=score.device)
    threshold = torch.kthvalue(score, n - k + 1).values  # the k-th largest
    chosen = score > threshold
    ties = torch.nonzero(score == threshold).flatten()
    need = k - int(chosen.sum())
    draw = torch.randperm(ties.numel(), generator=gen)[:need].to(score.device)
    chosen[ties[draw]] = True
    return chosen


def _train_pass(
    net: nn.Module,
    convs: dict[str, nn.Conv2d],
    masks: dict[str, torch.Tensor],
    opt: torch.optim.SGD,
    batches: Batches,
) -> dict[str, torch.Tensor]:
    """One masked pass; returns each conv's summed dense |gradient|, pruned positions included
    (their masked gradient is zero, yet regrowth must rank them)."""
    grads = {n: torch.zeros_like(m.weight) for n, m in convs.items()}
    device = next(net.parameters()).device
    steps = 0
    for x, y in batches():
        with autocast(device):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for n, m in convs.items():
                if m.weight.grad is not None:
                    grads[n] += m.weight.grad.abs()
                    m.weight.grad.mul_(masks[n])
            opt.step()
            for n, m in convs.items():
                m.weight.mul_(masks[n])
        steps += 1
    if steps == 0:
        raise ValueError("iterative pruning needs training batches; batches() yielded none")
    return grads


def _mean_momentum(opt: torch.optim.Optimizer, weight: torch.Tensor, mask: torch.Tensor) -> float:
    """A layer's mean |momentum buffer| over its active weights: the group code's signal for
    where pruned capacity should go (an exponential average of gradients, less noisy than one)."""
    buf = opt.state.get(weight, {}).get("momentum_buffer")
    alive = mask > 0
    if buf is None or not bool(alive.any()):
        return 0.0
    return float(buf.abs()[alive].mean())


def _prune(
    convs: dict[str, nn.Conv2d], masks: dict[str, torch.Tensor], keep: int, gen: torch.Generator
) -> None:
    """Global magnitude pruning: keep the `keep` largest |w| among active weights (in place)."""
    score = torch.cat(
        [torch.where(masks[n] > 0, m.weight.abs(), -1.0).flatten() for n, m in convs.items()]
    )
    kept = _top(score.float(), keep, gen)
    start = 0
    for n, mask in masks.items():
        masks[n] = kept[start : start + mask.numel()].view_as(mask).to(mask.dtype)
        start += mask.numel()


def _regrow(
    masks: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    momenta: list[float],
    grow: int,
    gen: torch.Generator,
) -> None:
    """Reactivate `grow` pruned positions: shared across layers by mean |momentum| and capped by
    each layer's pruned room (Dettmers' redistribution), within a layer at the largest |grad|."""
    if grow <= 0:
        return
    rooms = [int(mask.numel() - mask.sum()) for mask in masks.values()]
    for (n, mask), share in zip(masks.items(), allocate(grow, rooms, momenta)):
        if share > 0:
            free = torch.where(mask > 0, -1.0, grads[n].float()).flatten()
            mask += _top(free, share, gen).view_as(mask).to(mask.dtype)


def iterative_densities(
    model: nn.Module,
    density: float,
    batches: Batches,
    rounds: int = 5,
    regrow: float = 0.3,
    lr: float = 0.01,
    momentum: float = 0.9,
    seed: int = 0,
) -> dict[str, float]:
    """Gradual global magnitude pruning with momentum-redistributed regrowth, on a copy.

    Densities follow the cubic schedule d_k = density + (1 - density) * (1 - k/rounds)^3 from
    d_0 = 1 (N conv weights, T_k = round(d_k * N) kept). Round k: (a) one SGD pass over
    `batches()` on the masked copy; (b) global magnitude pruning to T_k - G active weights;
    (c) regrowth of G pruned positions at value 0 (see `_regrow`), so exactly T_k stay.
    G = round(regrow * min(active - T_k, T_k)): the regrow share of this round's step, so churn
    anneals as the schedule flattens (Dettmers anneals his prune rate) and the last mask stays
    close to weights that trained; but never more than that share of the survivors, or a big
    early step would prune below zero. `model` (the teacher) is not touched: only the copy
    trains and updates BN statistics. `seed` breaks ties only; the global RNG is not used.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if not 0.0 <= regrow <= 1.0:
        raise ValueError(f"regrow must be in [0, 1], got {regrow}")
    net = copy.deepcopy(model).requires_grad_(True).train()
    net.zero_grad(set_to_none=True)
    convs = {n: m for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    masks = {n: torch.ones_like(m.weight) for n, m in convs.items()}
    total = sum(mask.numel() for mask in masks.values())
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)

    for k in range(1, rounds + 1):
        d_k = density + (1.0 - density) * (1.0 - k / rounds) ** 3 if k < rounds else density
        target = max(1, int(round(d_k * total)))
        grads = _train_pass(net, convs, masks, opt, batches)
        active = sum(int(mask.sum()) for mask in masks.values())
        grow = int(round(regrow * min(max(active - target, 0), target)))
        with torch.no_grad():
            momenta = [_mean_momentum(opt, m.weight, masks[n]) for n, m in convs.items()]
            _prune(convs, masks, target - grow, gen)
            _regrow(masks, grads, momenta, grow, gen)
            for n, m in convs.items():  # pruned and regrown weights restart at 0, no momentum
                m.weight.mul_(masks[n])
                buf = opt.state.get(m.weight, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(masks[n])
    return {n: float(mask.mean()) for n, mask in masks.items()}


def pruned_densities(
    model: nn.Module,
    density: float,
    method: str,
    batches: Batches | None = None,
    **kw: Any,
) -> dict[str, float]:
    """Per-conv densities by `method` (one of PRUNINGS); `batches` and `kw` serve `iterative`
    only (one-shot reads the weights alone and ignores them)."""
    if method == "oneshot":
        return magnitude_densities(model, density)
    if method == "iterative":
        if batches is None:
            raise ValueError("iterative pruning needs batches (a callable giving (x, y) batches)")
        return iterative_densities(model, density, batches, **kw)
    raise ValueError(f"unknown pruning {method!r}; choose one of: {', '.join(PRUNINGS)}")
