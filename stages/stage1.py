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

from .artifacts import WEIGHTS, load_state, read_meta
from .config import DataConfig, Stage1Config, StageResult
from .models import Net, build_model
from .partial_relu import init_masks, relu_layers
from .pruning import magnitude_densities, pruned_densities
from .train import EpochCallback, Timer, commit, context, fit, prepare

__all__ = ["build_from_meta", "finished_meta", "load_teacher", "magnitude_densities", "run_stage1"]


def data_config(meta: dict[str, Any]) -> DataConfig:
    return DataConfig(**meta["config"]["data"])


def build_from_meta(meta: dict[str, Any], device: torch.device) -> Net:
    """A fresh model of the architecture a stage-1 artifact describes, masks all-ones."""
    model = build_model(meta["model"], meta["num_classes"], meta["in_channels"])
    init_masks(model, meta["input_size"], meta["in_channels"])
    return prepare(model, device)


def finished_meta(folder: Path, stage: int) -> dict[str, Any]:
    """A parent artifact's metadata, read once by the stage that builds on it."""
    meta = read_meta(Path(folder))
    if meta is None:
        raise FileNotFoundError(f"stage {stage} artifact {folder} is not finished (no meta.json)")
    return meta


def load_teacher(stage1_dir: Path, meta: dict[str, Any], device: torch.device) -> Net:
    """The frozen AR teacher of a finished stage-1 artifact whose metadata the caller read."""
    teacher = build_from_meta(meta, device)
    teacher.load_state_dict(load_state(Path(stage1_dir) / WEIGHTS, device))
    teacher.eval().requires_grad_(False)
    return teacher


def run_stage1(
    cfg: Stage1Config,
    out_dir: Path,
    key: str,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    ctx = context(cfg.data, cfg.seed, cfg.optim.batch_size, device, Timer())
    data = ctx.data
    model = build_model(cfg.model, data.num_classes, data.in_channels)
    init_masks(model, data.input_size, data.in_channels)
    model = prepare(model, ctx.device)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    done = fit(ctx, model, step, cfg.optim, checkpoint, on_epoch)

    # The teacher is the final model (the schedule has annealed); pruning reads its weights
    # (the iterative variant prunes a copy, training it on the same loader).
    densities = pruned_densities(
        model, cfg.density, cfg.pruning, lambda: ctx.train, rounds=cfg.prune_rounds, seed=cfg.seed
    )
    layers: list[dict[str, Any]] = []
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
    total = sum(lay["count"] for lay in layers)
    meta = {
        "model": cfg.model,
        "dataset": cfg.data.dataset,
        "seed": cfg.seed,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "input_size": data.input_size,
        "include_stem": cfg.include_stem,
        "layers": layers,
        "relu_total": total,
        "relu_count": total,
        "relu_per_layer": [lay["count"] for lay in layers],
    }
    return commit(ctx, out_dir, 1, key, cfg, model, meta, done.history, checkpoint, provenance)
