"""Stage 2's mask searches that pick each layer's top-r_l positions by a score (SNL's
relaxed search lives in stages/snl.py). Both observe the post-activations the forward hooks
capture on the teacher (a_T) and the student (a_S, and x_S before the partial ReLU)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .config import Stage2Config
from .partial_relu import PartialReLU, mask_hamming, topk_mask

Acts = dict[str, torch.Tensor]


def _masks(mods: dict[str, PartialReLU]) -> dict[str, torch.Tensor]:
    return {n: m.mask.detach().clone() for n, m in mods.items()}


def at_budget(mods: dict[str, PartialReLU], budgets: dict[str, int]) -> bool:
    """Whether every mask holds at most its r_l: only then may an epoch be picked as best."""
    return all(int(m.mask.sum()) <= budgets[n] for n, m in mods.items())


class EpochSearch:
    """The note's searches, `activation` and `scores`: once per epoch every layer's mask
    becomes the top-r_l of the scores gathered over the epoch's steps (`activation`: the
    summed |a_T - a_S| of the post-activations; `scores`: trainable scores)."""

    def __init__(
        self, cfg: Stage2Config, mods: dict[str, PartialReLU], budgets: dict[str, int]
    ) -> None:
        self.cfg, self.mods, self.budgets = cfg, mods, budgets
        self.epoch_score = {n: torch.zeros_like(m.mask) for n, m in mods.items()}
        self.images = 0
        if cfg.method == "scores":
            for n, m in mods.items():
                m.enable_scores(budgets[n], cfg.granularity)

    @torch.no_grad()
    def observe(self, acts_t: Acts, acts_s: Acts, pre_s: Acts) -> None:
        if self.cfg.method == "scores":
            return
        for n in self.budgets:
            self.epoch_score[n] += (acts_t[n].float() - acts_s[n].float()).abs().sum(dim=0)
        self.images += next(iter(acts_t.values())).shape[0] if acts_t else 0

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> dict[str, Any]:
        before = _masks(self.mods)
        for n, m in self.mods.items():
            if self.cfg.method == "scores":
                score = m.scores.detach()  # type: ignore[union-attr]
            else:
                score = self.epoch_score[n] / max(self.images, 1)
            m.set_mask(topk_mask(score, self.budgets[n], self.cfg.granularity))
        for s in self.epoch_score.values():
            s.zero_()
        self.images = 0
        kept = sum(int(m.mask.sum()) for m in self.mods.values())
        return {"hamming": mask_hamming(before, _masks(self.mods)), "mask_relus": kept}

    def at_budget(self) -> bool:
        return at_budget(self.mods, self.budgets)

    def state(self) -> dict[str, Any]:
        return {}  # the masks travel in the model's state

    def load(self, state: dict[str, Any]) -> None:
        pass


ANNEALED = ("taylor-ema", "activation-ema")  # the methods AnnealedSearch runs, by score


class AnnealedSearch:
    """taylor-ema and activation-ema: the student is linearised gradually, a few positions at
    a time.

    Every step adds the batch's score of each position to a running average with momentum
    `score_momentum` per epoch. taylor-ema's score is the first-order change of the loss if
    the position were linear, g * min(x_S, 0), g the loss gradient at the layer's output
    (signed, so a ReLU the loss would rather lose scores below zero); activation-ema's is
    |a_T - x_S| (the teacher's post-activation against the student's pre-activation: what the
    output would be if the position were linear, so a kept position scores the damage its
    ReLU prevents). About UPDATES times over the search the mask is reset to the top-k of
    those scores, k falling from all ReLUs to r_l (cubic: fast first, gently last, as gradual
    pruning); the last `freeze` of the epochs train with the mask fixed. Per-step updates
    matter on short schedules: a per-epoch anneal drops over half the ReLUs at once.

    With `total` (allocation `search`) there are no per-layer r_l: one top-k over every
    budgeted layer's positions, k falling from all ReLUs to `total`, so the per-layer counts are
    whatever the scores make them. taylor-ema's score is a change of the loss, the same unit in
    every layer, which is what makes one ranking across layers meaningful.
    """

    UPDATES = 50

    def __init__(
        self,
        cfg: Stage2Config,
        mods: dict[str, PartialReLU],
        budgets: dict[str, int],
        steps_per_epoch: int,
        total: int | None = None,
    ) -> None:
        self.cfg, self.mods, self.budgets, self.total = cfg, mods, budgets, total
        epochs = max(1, math.ceil((1.0 - cfg.freeze) * cfg.optim.epochs))
        self.search_steps = epochs * steps_per_epoch
        self.every = max(1, math.ceil(self.search_steps / self.UPDATES))
        self.momentum = cfg.score_momentum ** (1.0 / max(1, steps_per_epoch))
        self.score = {n: torch.zeros_like(m.mask) for n, m in mods.items()}
        self.steps = 0
        self.epoch_start = _masks(mods)
        self.taylor = cfg.method == "taylor-ema"
        if self.taylor:
            for n, m in mods.items():
                m.register_forward_hook(self._taylor_hook(n))

    def _taylor_hook(self, n: str) -> Any:
        """taylor-ema's score, gathered as the loss's gradient g reaches the layer's output:
        linearising a position changes its output by x - relu(x) = min(x, 0), so the loss by
        g * min(x, 0) to first order; the batch's mean goes into the running score."""

        def forward(_m: Any, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if not out.requires_grad or self.steps >= self.search_steps:
                return
            x = inputs[0].detach()

            def backward(g: torch.Tensor) -> None:
                with torch.no_grad():
                    batch = (g.float() * x.float().clamp(max=0)).mean(dim=0)
                    self.score[n].mul_(self.momentum).add_(batch, alpha=1.0 - self.momentum)

            out.register_hook(backward)

        return forward

    @torch.no_grad()
    def observe(self, acts_t: Acts, acts_s: Acts, pre_s: Acts) -> None:
        if self.steps >= self.search_steps:
            return
        if not self.taylor:  # taylor-ema's scores come from the backward pass (_taylor_hook)
            for n, score in self.score.items():
                batch = (acts_t[n].float() - pre_s[n].float()).abs().mean(dim=0)
                score.mul_(self.momentum).add_(batch, alpha=1.0 - self.momentum)
        self.steps += 1
        if self.steps % self.every == 0 or self.steps == self.search_steps:
            left = 1.0 - self.steps / self.search_steps
            if self.total is not None:
                self._reset_global(self.total, left)
                return
            for n, m in self.mods.items():
                r = self.budgets[n]
                k = r + round((m.mask.numel() - r) * left**3)
                m.set_mask(topk_mask(self.score[n], k, self.cfg.granularity))

    def _reset_global(self, total: int, left: float) -> None:
        """Every mask from one top-k over all budgeted layers' scores (pixel granularity)."""
        names = list(self.mods)
        flat = torch.cat([self.score[n].reshape(-1) for n in names])
        k = total + round((flat.numel() - total) * left**3)
        keep = torch.zeros_like(flat)
        if k > 0:
            keep[torch.topk(flat.float(), k, sorted=False).indices] = 1.0
        for n, part in zip(names, keep.split([self.score[n].numel() for n in names])):
            self.mods[n].set_mask(part.view_as(self.score[n]))

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        now = _masks(self.mods)
        hamming = mask_hamming(self.epoch_start, now)
        self.epoch_start = now
        return {"hamming": hamming, "mask_relus": sum(int(m.sum()) for m in now.values())}

    def at_budget(self) -> bool:
        if self.total is not None:
            return sum(int(m.mask.sum()) for m in self.mods.values()) <= self.total
        return at_budget(self.mods, self.budgets)

    def state(self) -> dict[str, Any]:
        return {"score": {n: t.cpu() for n, t in self.score.items()}, "steps": self.steps}

    def load(self, state: dict[str, Any]) -> None:
        device = next(iter(self.mods.values())).mask.device
        for n, t in state.get("score", {}).items():
            self.score[n] = t.to(device)
        self.steps = int(state.get("steps", 0))
        self.epoch_start = _masks(self.mods)
