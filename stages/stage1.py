"""Stage 1: train the all-ReLU (AR) model, prune it, and read off each layer's ReLU sensitivity.

SENet's observation: a layer that keeps many weights under global magnitude pruning needs few
ReLUs, so sensitivity is w_l = 1 - d_l with d_l the density of the conv feeding ReLU layer l.
This stage does not depend on the budget: one result serves every budget of a sweep. Its model
is also the teacher of stages 2 and 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import WEIGHTS, load_state, read_meta
from .config import DataConfig, Stage1Config, StageResult
from .data import DataBundle, load_data
from .models import build_model
from .partial_relu import init_masks, relu_layers
from .train import (
    EpochCallback,
    EpochLoop,
    Timer,
    commit,
    evaluate,
    loaders,
    make_optimizer,
    pick_device,
    prepare,
    train_epoch,
)


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


def load_stage_data(data: DataConfig, seed: int) -> DataBundle:
    return load_data(data.dataset, data.root, data.val_fraction, seed, data.limit)


def data_config(meta: dict[str, Any]) -> DataConfig:
    return DataConfig(**meta["config"]["data"])


def build_from_meta(meta: dict[str, Any], device: torch.device) -> nn.Module:
    """A fresh model of the architecture a stage-1 artifact describes, masks all-ones."""
    model = build_model(meta["model"], meta["num_classes"], meta["in_channels"])
    init_masks(model, meta["input_size"], meta["in_channels"])
    return prepare(model, device)


def load_teacher(stage1_dir: Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen AR teacher and its stage-1 metadata."""
    meta = read_meta(stage1_dir)
    if meta is None:
        raise FileNotFoundError(f"stage 1 artifact {stage1_dir} is not finished (no meta.json)")
    teacher = build_from_meta(meta, device)
    teacher.load_state_dict(load_state(Path(stage1_dir) / WEIGHTS, device))
    teacher.eval().requires_grad_(False)
    return teacher, meta


def run_stage1(
    cfg: Stage1Config,
    out_dir: Path,
    key: str,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    timer = Timer()
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    data = load_stage_data(cfg.data, cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.in_channels)
    init_masks(model, data.input_size, data.in_channels)
    model = prepare(model, dev)
    train, val, test = loaders(data, cfg.optim.batch_size, dev, cfg.seed)
    opt, sched = make_optimizer(model, cfg.optim)
    loop = EpochLoop(model, opt, sched, cfg.optim.epochs, checkpoint, on_epoch, train.generator)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    for epoch in range(loop.resume(dev), cfg.optim.epochs):
        loss = train_epoch(model, train, opt, step)
        loop.end_epoch(epoch, {"loss": loss, "val_acc": evaluate(model, val)})

    # The teacher is the final model (the schedule has annealed); pruning reads its weights.
    densities = magnitude_densities(model, cfg.density)
    layers = []
    for layer in relu_layers(model, data.input_size, data.in_channels, cfg.include_stem):
        d = densities[layer.source]
        layers.append(
            {
                "name": layer.name,
                "shape": list(layer.shape),
                "count": layer.count,
                "source": layer.source,
                "density": d,
                "sensitivity": 1.0 - d,
            }
        )
    val_acc, test_acc = evaluate(model, val), evaluate(model, test)
    meta = {
        "model": cfg.model,
        "dataset": cfg.data.dataset,
        "seed": cfg.seed,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "input_size": data.input_size,
        "include_stem": cfg.include_stem,
        "layers": layers,
        "relu_total": sum(lay["count"] for lay in layers),
        "relu_count": sum(lay["count"] for lay in layers),
        "relu_per_layer": [lay["count"] for lay in layers],
        "val_acc": val_acc,
        "test_acc": test_acc,
    }
    return commit(out_dir, 1, key, cfg, model, meta, loop, timer, dev, provenance)
