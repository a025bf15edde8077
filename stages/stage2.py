"""Stage 2: ReLU mask identification, deciding where each layer's r_l ReLUs go.

A partial-ReLU student trains against the frozen AR teacher on
ce_weight * CE + (1 - ce_weight) * KD_tau while a search decides its masks:
- `taylor-ema` (default, stages/search.py): linearise the student gradually, resetting every
  layer's mask about 50 times over the search to the top-k of a running average of
  g * min(x_S, 0), the first-order loss change of linearising a position (g: the loss
  gradient at the layer's output), k annealed from all ReLUs down to r_l; for the last
  `freeze` of the epochs the mask stays fixed while the weights adapt.
- `activation-ema`: the same anneal on |a_T - x_S| (teacher post-activation against the
  student's pre-activation, so a kept position scores the damage its ReLU prevents); it chose
  worse positions than taylor-ema on Fashion-MNIST (docs/fidelity.md).
- `activation`: the method note's per-epoch top-r_l of sum |a_T - a_S| (post-activations),
  kept as a named variant.
- `scores`: trainable real-valued scores per position, top-r_l with a straight-through gradient.
- `snl`: SNL's global L1 search (stages/snl.py), the peer SENet is measured against;
  `alpha`: the same relaxation within SENet's per-layer budgets r_l.
The (weights, mask) pair with the best validation accuracy is kept (SNL: its final pair).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .allocation import allocate, check_budget
from .catalog import OWN_COUNTS, RELAXED, SEARCHED
from .config import Stage2Config, StageResult, check, check_combination
from .losses import kd_loss
from .partial_relu import PartialReLU, model_relu_count
from .search import ANNEALED, AnnealedSearch, EpochSearch
from .snl import SNLSearch
from .stage1 import build_from_meta, data_config, finished_meta, load_teacher
from .train import EpochCallback, Timer, commit, context, fit


def check_config(cfg: Stage2Config) -> None:
    """Refuse bad values up front: before any data is read or any epoch trained (the
    pipeline calls this before stage 1, so a typo never costs a teacher training). Ranges and
    choices are stages.config's rules; the rules between fields are `check_combination`'s."""
    check(cfg)
    check_combination(cfg)


def layer_budgets(cfg: Stage2Config, stage1_meta: dict[str, Any]) -> dict[str, int]:
    """r_l for every budgeted ReLU layer (the stage-1 layer list already honours include_stem).
    SNL and allocation `search` decide their per-layer counts themselves; here they only get
    the layers, each capped at its size."""
    layers = stage1_meta["layers"]
    counts = [lay["count"] for lay in layers]
    if cfg.allocation in OWN_COUNTS:
        check_budget(cfg.budget, sum(counts))
        return {lay["name"]: lay["count"] for lay in layers}
    sens = [lay["sensitivity"] for lay in layers]
    r = allocate(cfg.budget, counts, sens, cfg.allocation)
    return {lay["name"]: r_l for lay, r_l in zip(layers, r)}


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
    meta1 = finished_meta(stage1_dir, 1)
    budgets = layer_budgets(cfg, meta1)  # a budget the model cannot meet fails before any data
    seed = int(meta1["seed"])
    ctx = context(data_config(meta1), seed, cfg.optim.batch_size, device, timer, cfg.augment)
    teacher = load_teacher(stage1_dir, meta1, ctx.device)
    student = build_from_meta(meta1, ctx.device)
    if cfg.init == "teacher" or cfg.method in RELAXED:
        student.load_state_dict(teacher.state_dict())
    named, t_named = dict(student.named_modules()), dict(teacher.named_modules())
    mods: dict[str, PartialReLU] = {n: named[n] for n in budgets}

    # Post-activations of the budgeted layers, captured by forward hooks on both models.
    acts_s: dict[str, torch.Tensor] = {}
    acts_t: dict[str, torch.Tensor] = {}
    pre_s: dict[str, torch.Tensor] = {}
    for n in budgets:
        named[n].register_forward_hook(lambda _m, _i, o, n=n: acts_s.__setitem__(n, o))
        named[n].register_forward_hook(lambda _m, i, _o, n=n: pre_s.__setitem__(n, i[0]))
        t_named[n].register_forward_hook(lambda _m, _i, o, n=n: acts_t.__setitem__(n, o))
    relaxed = cfg.method in RELAXED
    search: SNLSearch | EpochSearch | AnnealedSearch
    if relaxed:
        targets = None if cfg.method == "snl" else budgets  # snl: one global budget
        search = SNLSearch(cfg, mods, cfg.optim.epochs * len(ctx.train), targets)
    elif cfg.method in ANNEALED:
        total = cfg.budget if cfg.allocation == SEARCHED else None
        search = AnnealedSearch(cfg, mods, budgets, len(ctx.train), total)
    else:
        search = EpochSearch(cfg, mods, budgets)

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
        search.observe(acts_t, acts_s, pre_s)
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
    own = cfg.method == "snl" or cfg.allocation == SEARCHED
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
        # snl and `search` decide their per-layer counts themselves: record those they ended with
        "layer_budgets": {n: per_layer[n] for n in budgets} if own else budgets,
        "relu_count": total,
        "relu_total": meta1["relu_total"],
        "relu_per_layer": list(per_layer.values()),
        "hamming": hamming,
        **extra,
    }
    return commit(ctx, out_dir, 2, key, cfg, student, meta, done.history, checkpoint, provenance)
