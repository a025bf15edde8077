"""Configs of the three stages and the result every stage returns.

Defaults are the method note's (group code); every one is exposed to sweep files. A stage's
content key hashes its config, so changing any field here means new work, never a stale hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class OptimConfig:
    """SGD with step decay; milestones are fractions of `epochs` (150/180/210 of 240 in the
    group code), so short runs keep the same schedule shape."""

    epochs: int = 240
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.625, 0.75, 0.875)
    batch_size: int = 128


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    root: str | None = None
    val_fraction: float = 0.1
    limit: int | None = None  # at most this many training images (quick runs)


@dataclass(frozen=True)
class Stage1Config:
    """Train the all-ReLU teacher, prune it, read off per-layer ReLU sensitivity."""

    model: str = "resnet18"
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=240, lr=0.05))
    density: float = 0.05  # global parameter density of the magnitude pruning
    pruning: str = "oneshot"  # oneshot | iterative (magnitude pruning with regrowth)
    prune_rounds: int = 5  # iterative: prune/regrow rounds, one training pass each
    include_stem: bool = True  # False: SNL's convention, the stem ReLU is kept and not counted


@dataclass(frozen=True)
class Stage2Config:
    """Find where each layer's r_l ReLUs go."""

    budget: int = 50_000  # 0 is the linearised network (no ReLU at all): a floor to compare
    allocation: str = "sensitivity"  # sensitivity | uniform | proportional (SNL: global)
    granularity: str = "pixel"  # pixel | channel
    # activation-ema: top-k of |a_T - a_S| accumulated across epochs (settles);
    # activation: the note's per-epoch top-k (oscillates); scores: trainable, STE; snl: SNL
    method: str = "activation-ema"
    init: str = "random"  # random | teacher: the student's starting weights (SNL: teacher)
    tau: float = 4.0
    ce_weight: float = 0.5  # loss = ce_weight * CE + (1 - ce_weight) * KD_tau
    score_momentum: float = 0.9  # activation-ema: weight of the past epochs' scores
    freeze: float = 0.25  # activation-ema: last fraction of epochs trained with the mask fixed
    snl_lr: float = 1e-3  # snl: Adam learning rate of the weights
    snl_alpha_lr: float = 1e-3  # snl: Adam learning rate of the alphas
    snl_lambda: float = 1e-5  # snl: initial L1 weight on the alphas
    snl_growth: float = 1.1  # snl: lambda's factor after an epoch whose count did not fall
    snl_threshold: float = 0.01  # snl: a position counts as a ReLU while its alpha exceeds this
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=150, lr=0.05))


@dataclass(frozen=True)
class Stage3Config:
    """Fine-tune the partial-ReLU model with the mask frozen, distilling from the teacher."""

    tau: float = 4.0
    gamma: float = 0.1  # cross-entropy weight
    alpha: float = 0.9  # KL weight
    beta: float = 1000.0  # post-activation (attention transfer) weight
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=240, lr=0.01))


@dataclass
class StageResult:
    """What a stage hands on: its artifact folder and the metrics of its record."""

    stage: int
    key: str
    artifact: str
    metrics: dict[str, Any]

    @classmethod
    def from_meta(cls, meta: dict[str, Any], artifact: Path | str) -> StageResult:
        metrics = {k: meta.get(k) for k in METRICS}
        return cls(int(meta["stage"]), meta["key"], str(artifact), metrics)


# The metrics every stage reports (and its record carries).
METRICS = ("val_acc", "test_acc", "relu_count", "relu_total", "relu_per_layer", "wall_s")


STAGE_CONFIGS: dict[int, type] = {1: Stage1Config, 2: Stage2Config, 3: Stage3Config}


def config_from_dict(stage: int, d: dict[str, Any]) -> Any:
    """Rebuild a stage config from its JSON form (as stored in meta.json or sent to a trial);
    round-trips exactly, so the content key of the rebuilt config is unchanged."""
    cls = STAGE_CONFIGS[stage]
    kw = dict(d)
    if "optim" in kw:
        o = dict(kw["optim"])
        o["milestones"] = tuple(o.get("milestones", OptimConfig().milestones))
        kw["optim"] = OptimConfig(**o)
    if "data" in kw:
        kw["data"] = DataConfig(**kw["data"])
    return cls(**kw)
