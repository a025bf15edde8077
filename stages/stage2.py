"""Stage 2: ReLU mask identification, deciding where each layer's r_l ReLUs go.

Default (`activation`): train a partial-ReLU student against the frozen AR teacher on
ce_weight * CE + (1 - ce_weight) * KD_tau while summing |a_T - a_S| of every budgeted ReLU
layer's post-activation over the epoch; after each epoch the mask becomes the top-r_l positions
of that sum (where the student differs most from the teacher, a ReLU matters most). The
(weights, mask) pair with the best validation accuracy is kept. Variant `scores`: trainable
real-valued scores per position, mask = top-r_l with a straight-through gradient.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .allocation import ALLOCATIONS, allocate
from .config import Stage2Config, StageResult
from .losses import kd_loss
from .partial_relu import GRANULARITIES, PartialReLU, mask_hamming, model_relu_count, topk_mask
from .stage1 import build_from_meta, data_config, load_stage_data, load_teacher
from .train import (
    EpochCallback,
    EpochLoop,
    Timer,
    commit,
    evaluate,
    loaders,
    make_optimizer,
    pick_device,
    train_epoch,
)

METHODS = ("activation", "scores")
INITS = ("random", "teacher")


def check_config(cfg: Stage2Config) -> None:
    """Refuse unknown choices up front: before any data is read or any epoch trained (the
    pipeline calls this before stage 1, so a typo never costs a teacher training)."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown mask method {cfg.method!r}; choose one of: {METHODS}")
    if cfg.granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {cfg.granularity!r}; choose one of: {GRANULARITIES}")
    if cfg.allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {cfg.allocation!r}; choose one of: {ALLOCATIONS}")
    if cfg.init not in INITS:
        raise ValueError(f"unknown init {cfg.init!r}; choose one of: {INITS}")
    if cfg.tau <= 0:
        raise ValueError(f"temperature tau must be > 0, got {cfg.tau}")


def layer_budgets(cfg: Stage2Config, stage1_meta: dict[str, Any]) -> dict[str, int]:
    """r_l for every budgeted ReLU layer (the stage-1 layer list already honours include_stem)."""
    layers = stage1_meta["layers"]
    counts = [lay["count"] for lay in layers]
    sens = [lay["sensitivity"] for lay in layers]
    r = allocate(cfg.budget, counts, sens, cfg.allocation)
    return {lay["name"]: r_l for lay, r_l in zip(layers, r)}


def _masks(mods: dict[str, PartialReLU]) -> dict[str, torch.Tensor]:
    return {n: m.mask.detach().clone() for n, m in mods.items()}


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
    dev = pick_device(device)
    teacher, meta1 = load_teacher(Path(stage1_dir), dev)
    budgets = layer_budgets(cfg, meta1)
    seed = int(meta1["seed"])
    torch.manual_seed(seed)
    data = load_stage_data(data_config(meta1), seed)
    student = build_from_meta(meta1, dev)
    if cfg.init == "teacher":
        student.load_state_dict(teacher.state_dict())
    named = dict(student.named_modules())
    mods: dict[str, PartialReLU] = {n: named[n] for n in budgets}  # type: ignore[misc]
    t_named = dict(teacher.named_modules())
    if cfg.method == "scores":
        for n, m in mods.items():
            m.enable_scores(budgets[n], cfg.granularity)

    # Post-activations of the budgeted layers, captured by forward hooks on both models.
    acts_s: dict[str, torch.Tensor] = {}
    acts_t: dict[str, torch.Tensor] = {}
    for n in budgets:
        named[n].register_forward_hook(lambda _m, _i, o, n=n: acts_s.__setitem__(n, o))
        t_named[n].register_forward_hook(lambda _m, _i, o, n=n: acts_t.__setitem__(n, o))
    score = {n: torch.zeros_like(m.mask) for n, m in mods.items()}

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z_t = teacher(x)
        z_s = student(x)
        if cfg.method == "activation":
            with torch.no_grad():
                for n in budgets:
                    score[n] += (acts_t[n].float() - acts_s[n].float()).abs().sum(dim=0)
        ce = F.cross_entropy(z_s.float(), y)
        return cfg.ce_weight * ce + (1.0 - cfg.ce_weight) * kd_loss(z_s, z_t, cfg.tau)

    train, val, test = loaders(data, cfg.optim.batch_size, dev, seed)
    opt, sched = make_optimizer(student, cfg.optim)
    loop = EpochLoop(student, opt, sched, cfg.optim.epochs, checkpoint, on_epoch, train.generator)
    for epoch in range(loop.resume(dev), cfg.optim.epochs):
        before = _masks(mods)
        for s in score.values():
            s.zero_()
        loss = train_epoch(student, train, opt, step)
        for n, m in mods.items():
            if cfg.method == "activation":
                m.set_mask(topk_mask(score[n], budgets[n], cfg.granularity))
            else:
                m.set_mask(topk_mask(m.scores.detach(), budgets[n], cfg.granularity))  # type: ignore[union-attr]
        hamming = mask_hamming(before, _masks(mods))
        loop.end_epoch(epoch, {"loss": loss, "val_acc": evaluate(student, val), "hamming": hamming})

    for m in mods.values():
        m.finalize_scores()
    best = {k: v for k, v in loop.best_state.items() if not k.endswith(".scores")}
    student.load_state_dict(best, strict=False)
    total, per_layer = model_relu_count(student, meta1["include_stem"])
    val_acc, test_acc = evaluate(student, val), evaluate(student, test)
    meta = {
        "parent_key": meta1["key"],
        "model": meta1["model"],
        "dataset": meta1["dataset"],
        "seed": seed,
        "budget": cfg.budget,
        "layer_budgets": budgets,
        "relu_count": total,
        "relu_total": meta1["relu_total"],
        "relu_per_layer": list(per_layer.values()),
        "val_acc": val_acc,
        "test_acc": test_acc,
        "hamming": [row["hamming"] for row in loop.history],
    }
    return commit(out_dir, 2, key, cfg, student, meta, loop, timer, dev, provenance)
