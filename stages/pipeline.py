"""One entry point per stage execution, and the three stages chained in one process (no Ray):
the debug path, and the code the orchestrator's Tune trials call. Results go to a
content-addressed store, so a stage whose artifact exists is loaded, never recomputed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .allocation import check_budget
from .artifacts import content_key
from .catalog import INPUT_SHAPES, relu_total
from .config import Stage1Config, Stage2Config, Stage3Config, StageResult, canonical, check
from .stage1 import run_stage1
from .stage2 import check_config, run_stage2
from .stage3 import run_stage3
from .store import Store
from .train import EpochCallback


def stage_keys(s1: Stage1Config, s2: Stage2Config, s3: Stage3Config) -> tuple[str, str, str]:
    """Content keys of the chain: each hashes its config and its parent's key (stage 2's
    config in its canonical form, so equal work shares one key)."""
    k1 = content_key(1, s1)
    k2 = content_key(2, canonical(s2), [k1])
    return k1, k2, content_key(3, s3, [k2])


def execute(
    stage: int,
    cfg: Any,
    store: Path,
    key: str,
    stage1_key: str | None = None,
    stage2_key: str | None = None,
    on_epoch: EpochCallback | None = None,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    """Run one stage into `store` unless its artifact is already committed there, whole (a
    damaged one is quarantined and recomputed). The parents it loads are checked in full
    first: a damaged parent is quarantined and raises DamagedArtifact naming the file."""
    st = Store(store)
    out = st.folder(stage, key)
    meta = st.meta(stage, key)
    if meta is not None:
        return StageResult.from_meta(meta, out)
    ckpt = st.checkpoint(stage, key)
    if stage == 1:
        return run_stage1(cfg, out, key, on_epoch, ckpt, device, provenance)
    assert stage1_key is not None, "stages 2 and 3 need their stage-1 key"
    d1 = st.require(1, stage1_key)
    if stage == 2:
        return run_stage2(cfg, d1, out, key, on_epoch, ckpt, device, provenance)
    assert stage2_key is not None, "stage 3 needs its stage-2 key"
    d2 = st.require(2, stage2_key)
    return run_stage3(cfg, d2, d1, out, key, on_epoch, ckpt, device, provenance)


def run_pipeline(
    s1: Stage1Config,
    s2: Stage2Config,
    s3: Stage3Config,
    store: Path,
    on_epoch: EpochCallback | None = None,
    device: str = "auto",
) -> list[StageResult]:
    """Stages 1, 2, 3 in order; `on_epoch` rows carry their stage number. The budget and the
    stage-2/3 choices are checked first, so a bad value fails before stage 1 trains."""
    validate(s1, s2, s3)
    s2 = canonical(s2)
    k1, k2, k3 = stage_keys(s1, s2, s3)
    results = []
    for stage, cfg in ((1, s1), (2, s2), (3, s3)):
        cb = None if on_epoch is None else (lambda row, s=stage: on_epoch({"stage": s, **row}))
        results.append(execute(stage, cfg, store, (k1, k2, k3)[stage - 1], k1, k2, cb, device))
    return results


def validate(s1: Stage1Config, s2: Stage2Config, s3: Stage3Config) -> None:
    """What stages 2 and 3 would refuse after stage 1 has trained, refused now: BudgetError for
    a budget outside [0, the model's ReLU count], ConfigError (a ValueError) for a value outside
    its rule (stages.config.RULES) or a stage-2 combination that cannot run."""
    check(s1)
    check_config(s2)
    check(s3)
    if s1.data.dataset in INPUT_SHAPES:  # an unknown dataset is load_data's error to raise
        check_budget(s2.budget, relu_total(s1.model, s1.data.dataset, s1.include_stem))
