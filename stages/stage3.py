"""Stage 3: fine-tune the partial-ReLU model with its mask frozen, distilling from the teacher.

L = gamma * CE + alpha * tau^2 * KL(teacher || student) + beta * post-activation alignment of
the residual stages. Starts from the stage-2 weights; masks are buffers, so they never train.
The best-validation weights are kept, the stage-2 weights it starts from among the candidates;
test accuracy is measured on them once, and only recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .artifacts import WEIGHTS, load_state
from .config import Stage3Config, StageResult, check
from .losses import distill_loss
from .partial_relu import model_relu_count
from .stage1 import build_from_meta, data_config, finished_meta, load_teacher
from .train import EpochCallback, Timer, commit, context, fit

# What a stage-3 record says of the stage-2 search it fine-tunes (to filter and plot by).
SEARCH_FIELDS = ("allocation", "granularity", "method", "init")


def run_stage3(
    cfg: Stage3Config,
    stage2_dir: Path,
    stage1_dir: Path,
    out_dir: Path,
    key: str,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    check(cfg)  # the values' rules (stages.config), before anything is read or trained
    timer = Timer()
    meta2 = finished_meta(stage2_dir, 2)
    meta1 = finished_meta(stage1_dir, 1)
    ctx = context(
        data_config(meta1), int(meta1["seed"]), cfg.optim.batch_size, device, timer, cfg.augment
    )
    teacher = load_teacher(stage1_dir, meta1, ctx.device)
    student = build_from_meta(meta1, ctx.device)
    student.load_state_dict(load_state(Path(stage2_dir) / WEIGHTS, ctx.device))

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z_t, f_t = teacher.forward_features(x)
        z_s, f_s = student.forward_features(x)
        return distill_loss(z_s, z_t, y, cfg.tau, cfg.gamma, cfg.alpha, cfg.beta, f_s, f_t)

    done = fit(ctx, student, step, cfg.optim, checkpoint, on_epoch, keep_start=True)
    student.load_state_dict(done.best_state)
    total, per_layer = model_relu_count(student, meta1["include_stem"])
    meta = {
        "parent_key": meta2["key"],
        "stage1_key": meta1["key"],
        "model": meta1["model"],
        "dataset": meta1["dataset"],
        "seed": meta1["seed"],
        "budget": meta2["budget"],
        **{k: meta2.get(k, meta2["config"].get(k)) for k in SEARCH_FIELDS},
        "layer_budgets": meta2.get("layer_budgets"),  # the r_l its mask keeps (invariants)
        "relu_count": total,
        "relu_total": meta1["relu_total"],
        "relu_per_layer": list(per_layer.values()),
        "teacher_val_acc": meta1["val_acc"],
    }
    return commit(ctx, out_dir, 3, key, cfg, student, meta, done.history, checkpoint, provenance)
