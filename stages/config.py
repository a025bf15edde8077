"""Configs of the three stages and the result every stage returns.

Defaults are the method note's (group code); every one is exposed to sweep files. A stage's
content key hashes its config, so changing any field here means new work, never a stale hit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .catalog import (
    ALLOCATIONS,
    DATASETS,
    GLOBAL,
    GRANULARITIES,
    INITS,
    METHODS,
    MODELS,
    PRUNINGS,
    RELAXED,
    SEARCHED,
)


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
    # sensitivity | uniform | proportional (water-filled r_l) | search (the r_l fall out of
    # taylor-ema's scores, one top-k over all layers) | global (SNL's own)
    allocation: str = "sensitivity"
    granularity: str = "pixel"  # pixel | channel
    # taylor-ema: top-k of g * min(x_S, 0) accumulated across steps, annealed (settles);
    # activation-ema: the same on |a_T - x_S|; activation: the note's per-epoch top-k
    # (oscillates); scores: trainable, STE; snl: SNL; alpha: SNL's relaxation within the r_l
    method: str = "taylor-ema"
    init: str = "random"  # random | teacher: the student's starting weights (SNL: teacher)
    tau: float = 4.0
    ce_weight: float = 0.5  # loss = ce_weight * CE + (1 - ce_weight) * KD_tau
    score_momentum: float = 0.9  # *-ema: the running score's momentum per epoch of steps
    freeze: float = 0.25  # *-ema: last fraction of epochs trained with the mask fixed
    snl_lr: float = 1e-3  # snl: Adam learning rate of the weights
    snl_alpha_lr: float = 1e-3  # snl: Adam learning rate of the alphas
    snl_lambda: float = 1e-5  # snl: initial L1 weight on the alphas
    snl_growth: float = 1.1  # snl: lambda's factor after an epoch whose count did not fall
    snl_threshold: float = 0.01  # snl: a position counts as a ReLU while its alpha exceeds this
    augment: bool = True  # the student trains on cropped/flipped images (see Stage3Config)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=150, lr=0.05))


@dataclass(frozen=True)
class Stage3Config:
    """Fine-tune the partial-ReLU model with the mask frozen, distilling from the teacher."""

    tau: float = 4.0
    gamma: float = 0.1  # cross-entropy weight
    alpha: float = 0.9  # KL weight
    beta: float = 1000.0  # post-activation (attention transfer) weight
    # Crops and flips of the training images, as the teacher had. A student with few ReLUs is
    # nearly linear and cannot learn their invariance: on Fashion-MNIST at 1 % it reached
    # 77 % test with them and 82 % without (docs/fidelity.md).
    augment: bool = True
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


# --- value rules: the one home of every range and choice a config field must meet -----------


class ConfigError(ValueError):
    """A config value outside its rule: names the field, the problem and the value given."""

    def __init__(self, key: str, problem: str, value: Any) -> None:
        self.key, self.problem, self.value = key, problem, value
        super().__init__(f"{key}: {problem} (got {value!r})")


def choices(kind: str) -> tuple[str, ...]:
    """What exists for a choice field (stages.catalog names them, torch-free)."""
    return {
        "model": MODELS,
        "dataset": DATASETS,
        "pruning": PRUNINGS,
        # global: SNL's, only with method snl; search: taylor-ema's scores decide the r_l
        "allocation": ALLOCATIONS,
        "granularity": GRANULARITIES,
        "method": METHODS,
        "init": INITS,
    }[kind]


@dataclass(frozen=True)
class Rule:
    """What one field's value must be: within bounds (each open or closed) or one of a choice's
    values; a path has no control characters. A number is finite (inf passes `lr > 0` and
    trains on a NaN loss) and an integer fits 64 bits. Sweep files (orchestrator.spec.schema)
    and the stages (for direct Python callers) both check through `problem`, so no rule has
    a copy."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is refused
    high_open: bool = False
    choice: str = ""  # a kind of `choices`
    path: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks the rule, or None."""
        if self.choice:
            options = choices(self.choice)
            return None if value in options else f"must be one of: {', '.join(options)}"
        if self.path:
            bad = not isinstance(value, str) or not value
            bad = bad or any(ord(c) < 32 or ord(c) == 127 for c in value)
            return "must be a path without control characters" if bad else None
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not INT_MIN <= value < INT_MAX
        ):
            return "must be below 2^63 in size (torch, numpy and Ray hold 64-bit integers)"
        try:
            ok = (
                self.low is None or (value > self.low if self.low_open else value >= self.low)
            ) and (
                self.high is None or (value < self.high if self.high_open else value <= self.high)
            )
        except TypeError:
            return "must be a number"
        return None if ok else f"must be {self.says()}"

    def says(self) -> str:
        """The range in words: '> 0', '>= 1', 'in (0, 1]'."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        assert self.high is not None, "a rule has a bound, a choice or a path"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


# An integer setting reaches torch, numpy and Ray as a signed 64-bit integer (a seed too).
INT_MIN, INT_MAX = -(2**63), 2**63

_POSITIVE = Rule(low=0, low_open=True)
_NONNEGATIVE = Rule(low=0)
_AT_LEAST_ONE = Rule(low=1)

# Keyed by field name (a name means the same in every config that has it: `tau` of stage 2
# and stage 3, `epochs` of every OptimConfig). A tuple field's rule holds for each element.
RULES: dict[str, Rule] = {
    "epochs": _AT_LEAST_ONE,
    "lr": _POSITIVE,
    "momentum": Rule(low=0, high=1, high_open=True),
    "weight_decay": _NONNEGATIVE,
    "milestones": Rule(low=0, high=1, low_open=True),
    "batch_size": _AT_LEAST_ONE,
    "dataset": Rule(choice="dataset"),
    "root": Rule(path=True),
    "val_fraction": Rule(low=0, high=1, low_open=True, high_open=True),
    "limit": _AT_LEAST_ONE,
    "model": Rule(choice="model"),
    "seed": _NONNEGATIVE,
    "density": Rule(low=0, high=1, low_open=True),
    "pruning": Rule(choice="pruning"),
    "prune_rounds": _AT_LEAST_ONE,
    "allocation": Rule(choice="allocation"),
    "granularity": Rule(choice="granularity"),
    "method": Rule(choice="method"),
    "init": Rule(choice="init"),
    "tau": _POSITIVE,
    "ce_weight": Rule(low=0, high=1),
    "score_momentum": Rule(low=0, high=1, high_open=True),
    "freeze": Rule(low=0, high=1, high_open=True),
    "snl_lr": _POSITIVE,
    "snl_alpha_lr": _POSITIVE,
    "snl_lambda": _POSITIVE,
    "snl_growth": _AT_LEAST_ONE,
    "snl_threshold": Rule(low=0, high=1, low_open=True, high_open=True),
    "gamma": _NONNEGATIVE,
    "alpha": _NONNEGATIVE,
    "beta": _NONNEGATIVE,
}


def check(cfg: Any) -> None:
    """Raise ConfigError for the first field of `cfg` (and of its nested configs) that breaks
    its rule in RULES. A budget's bounds need the model's ReLU count: allocation.check_budget."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            check(value)
            continue
        rule = RULES.get(f.name)
        if rule is None or value is None:
            continue
        for item in value if isinstance(value, tuple) else (value,):
            problem = rule.problem(item)
            if problem:
                raise ConfigError(f.name, problem, item)


# --- the stage-2 rules between fields (here, torch-free: sweep files are checked by them) ---


def check_combination(cfg: Stage2Config) -> None:
    """The stage-2 rules between fields (sweep files are checked by them too)."""
    if cfg.method in RELAXED and cfg.granularity != "pixel":
        problem = f"{cfg.method} searches one alpha per position; use pixel"
        raise ConfigError("granularity", problem, cfg.granularity)
    if cfg.allocation == GLOBAL and cfg.method != "snl":
        raise ConfigError("allocation", "global is SNL's own; only with method snl", GLOBAL)
    if cfg.allocation == SEARCHED and cfg.method not in ("taylor-ema", "snl"):
        problem = "search ranks every layer's positions by taylor-ema's loss scores; use taylor-ema"
        raise ConfigError("method", problem, cfg.method)
    if cfg.allocation == SEARCHED and cfg.granularity != "pixel":
        problem = "search ranks single positions across layers; use pixel"
        raise ConfigError("granularity", problem, cfg.granularity)


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
