"""Stage 3: fine-tune the partial-ReLU model with its mask frozen, distilling from the teacher.

L = gamma * CE + alpha * tau^2 * KL(teacher || student) + beta * post-activation alignment of
the residual stages. Starts from the stage-2 weights; masks are buffers, so they never train.
The best-validation weights are kept; test accuracy is measured on them once, and only recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .artifacts import WEIGHTS, load_state, read_meta
from .config import Stage3Config, StageResult
from .losses import distill_loss
from .partial_relu import model_relu_count
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
    if cfg.tau <= 0:
        raise ValueError(f"temperature tau must be > 0, got {cfg.tau}")
    timer = Timer()
    dev = pick_device(device)
    teacher, meta1 = load_teacher(Path(stage1_dir), dev)
    meta2 = read_meta(Path(stage2_dir))
    if meta2 is None:
        raise FileNotFoundError(f"stage 2 artifact {stage2_dir} is not finished (no meta.json)")
    seed = int(meta1["seed"])
    torch.manual_seed(seed)
    data = load_stage_data(data_config(meta1), seed)
    student = build_from_meta(meta1, dev)
    student.load_state_dict(load_state(Path(stage2_dir) / WEIGHTS, dev))

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z_t, f_t = teacher.forward_features(x)
        z_s, f_s = student.forward_features(x)
        return distill_loss(z_s, z_t, y, cfg.tau, cfg.gamma, cfg.alpha, cfg.beta, f_s, f_t)

    train, val, test = loaders(data, cfg.optim.batch_size, dev, seed)
    opt, sched = make_optimizer(student, cfg.optim)
    loop = EpochLoop(student, opt, sched, cfg.optim.epochs, checkpoint, on_epoch, train.generator)
    for epoch in range(loop.resume(dev), cfg.optim.epochs):
        loss = train_epoch(student, train, opt, step)
        loop.end_epoch(epoch, {"loss": loss, "val_acc": evaluate(student, val)})

    if cfg.optim.epochs > 0:
        student.load_state_dict(loop.best_state)
    total, per_layer = model_relu_count(student, meta1["include_stem"])
    val_acc, test_acc = evaluate(student, val), evaluate(student, test)
    meta = {
        "parent_key": meta2["key"],
        "stage1_key": meta1["key"],
        "model": meta1["model"],
        "dataset": meta1["dataset"],
        "seed": seed,
        "budget": meta2["budget"],
        "relu_count": total,
        "relu_total": meta1["relu_total"],
        "relu_per_layer": list(per_layer.values()),
        "teacher_val_acc": meta1["val_acc"],
        "val_acc": val_acc,
        "test_acc": test_acc,
    }
    return commit(out_dir, 3, key, cfg, student, meta, loop, timer, dev, provenance)
