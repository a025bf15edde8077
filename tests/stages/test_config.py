"""stages/config.py: every stage config survives its JSON form (meta.json, the dict a Tune
trial receives) unchanged, so a config rebuilt by `config_from_dict` has the content key it
was planned under; every trial and every reuse of a stored stage relies on it."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from stages.artifacts import content_key, jsonable
from stages.config import (
    ConfigError,
    DataConfig,
    OptimConfig,
    Stage1Config,
    Stage2Config,
    Stage3Config,
    check_combination,
    choices,
    config_from_dict,
)

# Settings off every default: a field the round trip drops or retypes shows up in these.
OPTIM = OptimConfig(epochs=3, lr=0.125, momentum=0.5, weight_decay=0.0, milestones=(0.5,))
DATA = DataConfig(dataset="fashion-mnist", root="/data/fm", val_fraction=0.25, limit=500)


def _stage1() -> Iterator[Stage1Config]:
    for model, dataset, pruning in itertools.product(
        choices("model"), choices("dataset"), choices("pruning")
    ):
        yield Stage1Config(model=model, data=DataConfig(dataset=dataset), pruning=pruning)
    yield Stage1Config(data=DATA, seed=7, optim=OPTIM, density=0.5, include_stem=False)
    yield Stage1Config(optim=dataclasses.replace(OPTIM, milestones=()), prune_rounds=2)


def _stage2() -> Iterator[Stage2Config]:
    for allocation, method, granularity, init in itertools.product(
        choices("allocation"), choices("method"), choices("granularity"), choices("init")
    ):
        cfg = Stage2Config(
            budget=1443, allocation=allocation, method=method, granularity=granularity, init=init
        )
        try:
            check_combination(cfg)
        except ConfigError:
            continue  # a combination the sweep schema refuses is never planned
        yield cfg
    yield Stage2Config(budget=0, tau=2.5, ce_weight=1.0, augment=False, optim=OPTIM)
    yield Stage2Config(score_momentum=0.0, freeze=0.5, snl_lambda=1e-3, snl_growth=2.0)


def _stage3() -> Iterator[Stage3Config]:
    yield Stage3Config()
    yield Stage3Config(tau=1.0, gamma=0.0, alpha=0.0, beta=0.0, augment=False, optim=OPTIM)


VARIANTS: list[tuple[int, Any]] = [
    *((1, c) for c in _stage1()),
    *((2, c) for c in _stage2()),
    *((3, c) for c in _stage3()),
]


def test_the_variants_cover_every_choice() -> None:
    """The round trip below is only as wide as its variants: each value of every choice field
    appears in at least one of them."""
    seen: dict[str, set[str]] = {}
    for _, cfg in VARIANTS:
        for kind in ("model", "pruning", "allocation", "method", "granularity", "init"):
            if hasattr(cfg, kind):
                seen.setdefault(kind, set()).add(getattr(cfg, kind))
        if isinstance(cfg, Stage1Config):
            seen.setdefault("dataset", set()).add(cfg.data.dataset)
    for kind, values in seen.items():
        assert values == set(choices(kind)), kind


@pytest.mark.parametrize(("stage", "cfg"), VARIANTS)
def test_a_config_round_trips_through_json(stage: int, cfg: Any) -> None:
    wire = json.loads(json.dumps(jsonable(cfg)))  # what meta.json and a trial's dict hold
    rebuilt = config_from_dict(stage, wire)
    assert rebuilt == cfg
    assert type(rebuilt.optim.milestones) is tuple  # JSON gives a list; the key hashes either
    assert content_key(stage, rebuilt, ["parent"]) == content_key(stage, cfg, ["parent"])


def test_an_unknown_field_is_refused() -> None:
    """A meta.json of a newer config (a field this code lacks) is an error, not a silent drop
    that would rebuild a different config under the same key."""
    wire = jsonable(Stage3Config())
    wire["width"] = 0.5
    with pytest.raises(TypeError, match="width"):
        config_from_dict(3, wire)
