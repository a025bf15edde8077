"""Stage 2: ReLU mask identification, deciding where each layer's r_l ReLUs go.

A partial-ReLU student trains against the frozen AR teacher on
ce_weight * CE + (1 - ce_weight) * KD_tau while a search decides its masks:
- `activation-ema` (default): sum |a_T - a_S| of every budgeted layer's post-activation over
  each epoch, accumulate those scores across epochs with momentum, set the mask to the top-r_l
  positions, annealing the count from all ReLUs down to r_l over the search (the student is
  linearised step by step); for the last `freeze` of the epochs the mask stays fixed while the
  weights adapt.
  The accumulation is what settles it: a kept position soon matches the teacher and scores
  low, so the per-epoch score alone flips it back out (a period-2 oscillation).
- `activation`: the method note's per-epoch top-r_l of that sum, kept as a named variant.
- `scores`: trainable real-valued scores per position, top-r_l with a straight-through gradient.
- `snl`: SNL's global L1 search (stages/snl.py), the peer SENet is measured against;
  `alpha`: the same relaxation within SENet's per-layer budgets r_l.
The (weights, mask) pair with the best validation accuracy is kept (SNL: its final pair).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .allocation import ALLOCATIONS, allocate, check_budget
from .artifacts import read_meta
from .config import Stage2Config, StageResult
from .losses import kd_loss
from .partial_relu import GRANULARITIES, PartialReLU, mask_hamming, model_relu_count, topk_mask
from .snl import SNLSearch
from .stage1 import build_from_meta, data_config, load_teacher
from .train import EpochCallback, Timer, commit, context, fit

METHODS = ("activation-ema", "activation", "scores", "snl", "alpha")
RELAXED = ("snl", "alpha")  # SNL's L1-relaxed alphas: from the teacher's weights, Adam
INITS = ("random", "teacher")
GLOBAL = "global"  # SNL's allocation: one budget over all layers


def check_config(cfg: Stage2Config) -> None:
    """Refuse unknown choices up front: before any data is read or any epoch trained (the
    pipeline calls this before stage 1, so a typo never costs a teacher training)."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown mask method {cfg.method!r}; choose one of: {METHODS}")
    if cfg.granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {cfg.granularity!r}; choose one of: {GRANULARITIES}")
    if cfg.allocation not in ALLOCATIONS + (GLOBAL,):
        raise ValueError(f"unknown allocation {cfg.allocation!r}; choose one of: {ALLOCATIONS}")
    if cfg.init not in INITS:
        raise ValueError(f"unknown init {cfg.init!r}; choose one of: {INITS}")
    if cfg.tau <= 0:
        raise ValueError(f"temperature tau must be > 0, got {cfg.tau}")
    if cfg.method in RELAXED and cfg.granularity != "pixel":
        raise ValueError(f"{cfg.method} searches one alpha per position: granularity must be pixel")


def canonical(cfg: Stage2Config) -> Stage2Config:
    """The one config for equal work, so equal work gets one content key: SNL spends one
    global budget from the teacher's weights (allocation and init do not apply), and at budget
    0 (the linearised network) there is no mask to search."""
    if cfg.budget == 0:
        base = dataclasses.replace(Stage2Config(), allocation="uniform")
        search = ("allocation", "granularity", "method", "score_momentum", "freeze")
        snl = ("snl_lr", "snl_alpha_lr", "snl_lambda", "snl_growth", "snl_threshold")
        return dataclasses.replace(cfg, **{k: getattr(base, k) for k in search + snl})
    if cfg.method == "snl":
        return dataclasses.replace(cfg, allocation=GLOBAL, init="teacher")
    if cfg.method == "alpha":
        return dataclasses.replace(cfg, init="teacher")
    return cfg


def layer_budgets(cfg: Stage2Config, stage1_meta: dict[str, Any]) -> dict[str, int]:
    """r_l for every budgeted ReLU layer (the stage-1 layer list already honours include_stem).
    SNL decides its per-layer counts itself; here it only gets the layers."""
    layers = stage1_meta["layers"]
    counts = [lay["count"] for lay in layers]
    if cfg.allocation == GLOBAL:
        check_budget(cfg.budget, sum(counts))
        return {lay["name"]: lay["count"] for lay in layers}
    sens = [lay["sensitivity"] for lay in layers]
    r = allocate(cfg.budget, counts, sens, cfg.allocation)
    return {lay["name"]: r_l for lay, r_l in zip(layers, r)}


def _masks(mods: dict[str, PartialReLU]) -> dict[str, torch.Tensor]:
    return {n: m.mask.detach().clone() for n, m in mods.items()}


class ActivationSearch:
    """The activation searches (`activation-ema`, `activation`) and `scores`: per-epoch mask
    updates from scores gathered during the epoch's steps."""

    def __init__(
        self, cfg: Stage2Config, mods: dict[str, PartialReLU], budgets: dict[str, int]
    ) -> None:
        self.cfg, self.mods, self.budgets = cfg, mods, budgets
        self.epoch_score = {n: torch.zeros_like(m.mask) for n, m in mods.items()}
        self.ema: dict[str, torch.Tensor] = {}
        self.images = 0
        # activation-ema searches over the first (1 - freeze) of the epochs, at least one
        epochs = cfg.optim.epochs
        self.search_epochs = (
            max(1, math.ceil((1.0 - cfg.freeze) * epochs))
            if cfg.method == "activation-ema"
            else epochs
        )
        if cfg.method == "scores":
            for n, m in mods.items():
                m.enable_scores(budgets[n], cfg.granularity)

    @torch.no_grad()
    def observe(self, acts_t: dict[str, torch.Tensor], acts_s: dict[str, torch.Tensor]) -> None:
        if self.cfg.method == "scores":
            return
        for n in self.budgets:
            self.epoch_score[n] += (acts_t[n].float() - acts_s[n].float()).abs().sum(dim=0)
        self.images += next(iter(acts_t.values())).shape[0] if acts_t else 0

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> dict[str, Any]:
        before = _masks(self.mods)
        if epoch < self.search_epochs:
            for n, m in self.mods.items():
                if self.cfg.method == "scores":
                    score = m.scores.detach()  # type: ignore[union-attr]
                else:
                    score = self.epoch_score[n] / max(self.images, 1)
                    if self.cfg.method == "activation-ema":
                        prev = self.ema.get(n)
                        mom = self.cfg.score_momentum
                        score = score if prev is None else mom * prev + (1.0 - mom) * score
                        self.ema[n] = score
                m.set_mask(topk_mask(score, self.kept(n, epoch), self.cfg.granularity))
        for s in self.epoch_score.values():
            s.zero_()
        self.images = 0
        kept = sum(int(m.mask.sum()) for m in self.mods.values())
        return {"hamming": mask_hamming(before, _masks(self.mods)), "mask_relus": kept}

    def kept(self, name: str, epoch: int) -> int:
        """ReLUs layer `name` keeps after `epoch`: activation-ema anneals from all of them to
        r_l by the end of its search (cubic, as gradual pruning: fast first, gently last), so
        the student is linearised step by step, as SNL's alphas do, instead of all at once."""
        r = self.budgets[name]
        if self.cfg.method != "activation-ema":
            return r
        n = self.mods[name].mask.numel()
        left = max(0.0, 1.0 - (epoch + 1) / self.search_epochs)
        return r + round((n - r) * left**3)

    def at_budget(self) -> bool:
        """Whether the masks now hold exactly r_l: only then may an epoch be the best."""
        return all(int(m.mask.sum()) <= self.budgets[n] for n, m in self.mods.items())

    def state(self) -> dict[str, Any]:
        return {"ema": {n: t.cpu() for n, t in self.ema.items()}}

    def load(self, state: dict[str, Any]) -> None:
        device = next(iter(self.mods.values())).mask.device
        self.ema = {n: t.to(device) for n, t in state.get("ema", {}).items()}


def run_stage2(
    cfg: Stage2Config,
    stage1_dir: Path,
    out_dir: Path,
    key: str,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    check_config(cfg)
    timer = Timer()
    meta1 = read_meta(Path(stage1_dir))
    if meta1 is None:
        raise FileNotFoundError(f"stage 1 artifact {stage1_dir} is not finished (no meta.json)")
    budgets = layer_budgets(cfg, meta1)  # a budget the model cannot meet fails before any data
    seed = int(meta1["seed"])
    ctx = context(data_config(meta1), seed, cfg.optim.batch_size, device, timer)
    teacher, _ = load_teacher(Path(stage1_dir), ctx.device)
    student = build_from_meta(meta1, ctx.device)
    if cfg.init == "teacher" or cfg.method in RELAXED:
        student.load_state_dict(teacher.state_dict())
    named, t_named = dict(student.named_modules()), dict(teacher.named_modules())
    mods: dict[str, PartialReLU] = {n: named[n] for n in budgets}  # type: ignore[misc]

    # Post-activations of the budgeted layers, captured by forward hooks on both models.
    acts_s: dict[str, torch.Tensor] = {}
    acts_t: dict[str, torch.Tensor] = {}
    for n in budgets:
        named[n].register_forward_hook(lambda _m, _i, o, n=n: acts_s.__setitem__(n, o))
        t_named[n].register_forward_hook(lambda _m, _i, o, n=n: acts_t.__setitem__(n, o))
    relaxed = cfg.method in RELAXED
    search: SNLSearch | ActivationSearch
    if relaxed:
        targets = None if cfg.method == "snl" else budgets  # snl: one global budget
        search = SNLSearch(cfg, mods, cfg.optim.epochs * len(ctx.train), targets)
    else:
        search = ActivationSearch(cfg, mods, budgets)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(search, SNLSearch):
            search.clamp()
        with torch.no_grad():
            z_t = teacher(x)
        z_s = student(x)
        ce = F.cross_entropy(z_s.float(), y)
        loss = cfg.ce_weight * ce + (1.0 - cfg.ce_weight) * kd_loss(z_s, z_t, cfg.tau)
        if isinstance(search, SNLSearch):
            return loss + search.penalty()
        search.observe(acts_t, acts_s)
        return loss

    done = fit(
        ctx,
        student,
        step,
        cfg.optim,
        checkpoint,
        on_epoch,
        after_epoch=search.end_epoch,
        stop=search.reached if relaxed else None,  # type: ignore[union-attr]
        optimizer=search.optimizer(student) if relaxed else None,  # type: ignore[union-attr]
        extra_state=search.state,
        load_extra=search.load,
        selectable=None if relaxed else search.at_budget,  # type: ignore[union-attr]
    )

    extra: dict[str, Any] = {}
    if isinstance(search, SNLSearch):
        extra = search.finalize()  # a relaxed search's result: its final weights, binarised
    else:
        for m in mods.values():
            m.finalize_scores()
        best = {k: v for k, v in done.best_state.items() if not k.endswith(".scores")}
        student.load_state_dict(best, strict=False)
    total, per_layer = model_relu_count(student, meta1["include_stem"])
    hamming = [row["hamming"] for row in done.history if "hamming" in row]
    meta = {
        "parent_key": meta1["key"],
        "model": meta1["model"],
        "dataset": meta1["dataset"],
        "seed": seed,
        "budget": cfg.budget,
        "allocation": cfg.allocation,
        "granularity": cfg.granularity,
        "method": cfg.method,
        "init": "teacher" if relaxed else cfg.init,
        # snl decides its per-layer counts itself: record those it ended with
        "layer_budgets": {n: per_layer[n] for n in budgets} if cfg.method == "snl" else budgets,
        "relu_count": total,
        "relu_total": meta1["relu_total"],
        "relu_per_layer": list(per_layer.values()),
        "hamming": hamming,
        **extra,
    }
    return commit(ctx, out_dir, 2, key, cfg, student, meta, done.history, checkpoint, provenance)
