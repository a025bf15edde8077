"""SNL (Cho et al., ICML 2022), the peer SENet is measured against: one global budget, no
per-layer allocation (`snl`); and the same relaxation inside SENet's per-layer budgets r_l
(`alpha`), which tells whether SENet loses to SNL on its allocation or on its mask search.

Every budgeted ReLU becomes y = alpha * relu(x) + (1 - alpha) * x with a trainable alpha per
position, starting at 1 from the all-ReLU teacher's weights. Adam trains weights and alphas on
the distillation loss plus lambda * L1(alpha); lambda grows by `snl_growth` after every epoch in
which the count of alphas above `snl_threshold` did not fall. The search stops as soon as that
count fits the budget (or the epochs run out); the top-B alphas over all layers become the
mask, so the count is exactly B and the per-layer counts are whatever SNL ended with.
`alpha` counts each layer's excess over r_l instead, and keeps each layer's top-r_l alphas.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import Stage2Config
from .partial_relu import PartialReLU, topk_mask
from .train import Optimizer

CHECK_EVERY = 5  # steps between counts of the live alphas (a reduction over every layer)


class SNLSearch:
    """The state of one SNL search: its L1 weight, its count, and the hooks `fit` calls.

    "Whenever the count stalls" is judged every CHECK_EVERY steps against the pace the budget
    needs: a check whose drop is short of (count - B) / (checks left) grows lambda. SNL's own
    runs judge it per epoch over hundreds of epochs; a sweep's search has a few, so the pace
    rule is what lets the search reach B within the epochs it is given."""

    def __init__(
        self,
        cfg: Stage2Config,
        mods: dict[str, PartialReLU],
        total_steps: int,
        budgets: dict[str, int] | None = None,
    ) -> None:
        self.cfg, self.mods, self.total_steps = cfg, mods, max(total_steps, 1)
        self.budgets = budgets  # None: SNL's one global budget; else r_l per layer (`alpha`)
        for m in mods.values():
            m.enable_alpha()
        self.lam = cfg.snl_lambda
        self.steps = 0
        self.count = self.over()

    def named_alphas(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, m.alpha) for n, m in self.mods.items() if m.alpha is not None]

    def alphas(self) -> list[nn.Parameter]:
        return [a for _, a in self.named_alphas()]

    def optimizer(self, model: nn.Module) -> Optimizer:
        """Adam at constant rates, as SNL trains: `snl_lr` for the weights, `snl_alpha_lr` for
        the alphas (Adam moves an alpha about one learning rate per step, so a short search
        needs a larger alpha rate to reach a small budget at all)."""
        ids = {id(a) for a in self.alphas()}
        weights = [p for p in model.parameters() if id(p) not in ids]
        groups = [
            {"params": weights, "lr": self.cfg.snl_lr},
            {"params": self.alphas(), "lr": self.cfg.snl_alpha_lr},
        ]
        opt = torch.optim.Adam(groups)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _epoch: 1.0)

    @torch.no_grad()
    def live(self) -> int:
        """Positions still counted as ReLUs: alpha above the threshold."""
        return sum(int((a > self.cfg.snl_threshold).sum()) for a in self.alphas())

    @torch.no_grad()
    def over(self) -> int:
        """Live positions beyond the budget: globally, or summed over the layers' r_l."""
        if self.budgets is None:
            return max(self.live() - self.cfg.budget, 0)
        thr, budgets = self.cfg.snl_threshold, self.budgets
        return sum(max(int((a > thr).sum()) - budgets[n], 0) for n, a in self.named_alphas())

    @torch.no_grad()
    def clamp(self) -> None:
        """Keep alphas in [0, 1] (called before each forward pass, i.e. after the last step)."""
        for a in self.alphas():
            a.clamp_(0.0, 1.0)

    def penalty(self) -> torch.Tensor:
        """lambda * L1(alpha) for this step (alphas lie in [0, 1], so L1 is their sum); every
        CHECK_EVERY steps, recount and grow lambda if the count is behind its pace."""
        if self.steps % CHECK_EVERY == 0 and self.steps > 0:
            before, self.count = self.count, self.over()
            checks_left = max((self.total_steps - self.steps) / CHECK_EVERY, 1.0)
            if before - self.count < before / checks_left:
                self.lam *= self.cfg.snl_growth
        self.steps += 1
        return self.lam * sum(a.sum() for a in self.alphas())  # type: ignore[return-value]

    def reached(self) -> bool:
        """fit's stop test: the count fits the budget."""
        return self.count <= 0

    def end_epoch(self, _epoch: int) -> dict[str, Any]:
        self.count = self.over()
        return {"snl_count": self.live(), "snl_lambda": self.lam}

    def state(self) -> dict[str, Any]:
        return {"lam": self.lam, "steps": self.steps}

    def load(self, state: dict[str, Any]) -> None:
        self.lam = float(state.get("lam", self.lam))
        self.steps = int(state.get("steps", self.steps))
        self.count = self.over()

    @torch.no_grad()
    def finalize(self) -> dict[str, Any]:
        """Binarise: the top-B alphas over all layers (`alpha`: each layer's top-r_l) become
        ReLUs, the rest linear. Returns what the record keeps: whether the count reached the
        budget by itself, lambda, and the live count at the end."""
        self.count = self.over()
        live = self.live()
        if self.budgets is not None:
            for n, a in self.named_alphas():
                self.mods[n].finalize_alpha(topk_mask(a.detach(), self.budgets[n], "pixel"))
            return {"snl_converged": self.count <= 0, "snl_lambda": self.lam, "snl_live": live}
        flat = torch.cat([a.detach().float().flatten() for a in self.alphas()])
        keep = torch.zeros_like(flat)
        if self.cfg.budget > 0:
            keep[torch.topk(flat, min(self.cfg.budget, flat.numel()), sorted=False).indices] = 1
        start = 0
        for m in self.mods.values():
            size = m.mask.numel()
            m.finalize_alpha(keep[start : start + size].view_as(m.mask))
            start += size
        return {"snl_converged": self.count <= 0, "snl_lambda": self.lam, "snl_live": live}
