"""The invariants a stage result must hold before it is committed: a result that trained no
epoch, or whose masks break its budget, raises InvariantError and leaves no artifact (so it
never counts as done); the rules themselves on a real model's masks. These are the second line
of defence: stages.config.check refuses epochs < 1 before a stage starts, so these tests reach
commit the ways that check cannot see."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from stages.allocation import allocate
from stages.artifacts import META, WEIGHTS, artifact_dir, content_key, read_meta
from stages.config import DataConfig, OptimConfig, Stage1Config, Stage2Config
from stages.invariants import InvariantError, check_result, expected_count
from stages.models import build_model
from stages.partial_relu import init_masks, model_relu_count, partial_relus, topk_mask
from stages.pipeline import execute
from stages.train import Timer, commit, context

DIGITS_TOTAL = 1024 + 6 * 1024 + 6 * 512 + 6 * 256  # resnet20 on 8x8 digits


def _optim(epochs: int) -> OptimConfig:
    return OptimConfig(epochs=epochs, lr=0.05, batch_size=50)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store holding one committed one-epoch stage-1 result."""
    root = tmp_path_factory.mktemp("store")
    s1 = Stage1Config("resnet20", DataConfig("digits", limit=100), optim=_optim(1))
    k1 = content_key(1, s1)
    execute(1, s1, root, k1, device="cpu")
    return root, k1


def _no_artifact(folder: Path) -> None:
    assert read_meta(folder) is None
    assert not (folder / META).exists() and not (folder / WEIGHTS).exists()


def test_commit_of_an_untrained_result_writes_nothing(tmp_path: Path) -> None:
    """The issue's case (epochs = 0 committed an all-ReLU model at budget 1,500) at the one
    place every stage finishes: whatever input got there, no epoch trained means no commit.
    The same model with one epoch in its history commits."""
    cfg = Stage2Config(budget=2000, optim=_optim(0))
    ctx = context(DataConfig("digits", limit=100), 0, 50, "cpu", Timer())
    model, meta = _searched(2000)
    for m in partial_relus(model):
        m[1].set_mask(torch.ones_like(m[1].mask))  # no search ran: every ReLU still on
    total, per_layer = model_relu_count(model)
    meta.update(relu_count=total, relu_per_layer=list(per_layer.values()))
    meta = {k: v for k, v in meta.items() if k not in ("key", "config", "val_acc", "test_acc")}
    out = tmp_path / "s2"
    with pytest.raises(InvariantError) as e:
        commit(ctx, out, 2, "k", cfg, model, meta, [])
    msg = str(e.value)
    assert "no epoch trained (epochs = 0)" in msg and "\n" not in msg  # one line: the error
    assert f"relu_count {DIGITS_TOTAL} > budget 2000" in msg
    _no_artifact(out)
    good, meta = _searched(2000)
    meta = {k: v for k, v in meta.items() if k not in ("key", "config", "val_acc", "test_acc")}
    commit(ctx, out, 2, "k", cfg, good, meta, HISTORY)
    assert read_meta(out)["relu_count"] == 2000  # type: ignore[index]


def test_stage2_whose_parent_misstates_its_layers_is_refused(
    store: tuple[Path, str], tmp_path: Path
) -> None:
    """A stage-1 artifact whose layer table says the stem holds 100x its ReLUs (a damaged
    store, or one written by other code): the allocation gives the stem more than its masks
    can keep, so the layer ends below its r_l. Before, this committed as `completed`."""
    root, k1 = store
    bad = tmp_path / "store"
    shutil.copytree(artifact_dir(root, 1, k1), artifact_dir(bad, 1, k1))
    meta_path = artifact_dir(bad, 1, k1) / META
    meta1 = json.loads(meta_path.read_text())
    stem = meta1["layers"][0]
    meta1["relu_total"] += 99 * stem["count"]
    stem["count"] *= 100
    meta_path.write_text(json.dumps(meta1))
    cfg = Stage2Config(budget=2000, allocation="uniform", optim=_optim(1))
    key = content_key(2, cfg, [k1])
    with pytest.raises(
        InvariantError, match=rf"off their share: {stem['name']} keeps 1024, its r_l is"
    ):
        execute(2, cfg, bad, key, k1, device="cpu")
    _no_artifact(artifact_dir(bad, 2, key))
    good = execute(2, cfg, root, key, k1, device="cpu")  # the true table: at budget, committed
    assert good.metrics["relu_count"] == 2000


# --- the rules on a real model's masks --------------------------------------------------------


def _searched(budget: int, granularity: str = "pixel") -> tuple[torch.nn.Module, dict[str, Any]]:
    """resnet20 on 8x8 digits with masks holding a uniform allocation of `budget`, and the
    metadata stage 2 would commit for it."""
    model = build_model("resnet20", 10, 1)
    init_masks(model, 8, 1)
    layers = partial_relus(model)
    counts = [int(m.mask.numel()) for _, m in layers]
    r = allocate(budget, counts, counts, "uniform")
    gen = torch.Generator().manual_seed(0)
    for (_, m), r_l in zip(layers, r):
        m.set_mask(topk_mask(torch.rand(m.mask.shape, generator=gen), r_l, granularity))
    total, per_layer = model_relu_count(model)
    meta = {
        "key": "k",
        "config": Stage2Config(budget=budget, granularity=granularity, optim=_optim(1)),
        "budget": budget,
        "allocation": "uniform",
        "granularity": granularity,
        "layer_budgets": {n: r_l for (n, _), r_l in zip(layers, r)},
        "relu_count": total,
        "relu_per_layer": list(per_layer.values()),
        "val_acc": 0.5,
        "test_acc": 0.5,
    }
    return model, meta


HISTORY = [{"epoch": 1, "epochs": 1, "val_acc": 0.5}]


@pytest.mark.parametrize("granularity", ["pixel", "channel"])
def test_a_result_at_its_shares_passes(granularity: str) -> None:
    model, meta = _searched(3001, granularity)
    check_result(2, meta, HISTORY, model)
    check_result(3, meta, HISTORY, model)


def test_expected_count_is_whole_channels_for_channel_granularity() -> None:
    assert expected_count(100, (8, 4, 4), "pixel") == 100
    assert expected_count(100, (8, 4, 4), "channel") == 96  # 6 channels of 16
    assert expected_count(15, (8, 4, 4), "channel") == 0


def test_one_layer_off_its_share_is_refused_even_under_budget() -> None:
    model, meta = _searched(3001)
    name, mod = partial_relus(model)[4]
    mask = mod.mask.clone().flatten()
    mask[torch.nonzero(mask)[0]] = 0.0  # one ReLU fewer: under budget, but not at r_l
    mod.set_mask(mask.view(mod.mask.shape))
    meta["relu_count"] -= 1
    meta["relu_per_layer"][4] -= 1
    with pytest.raises(InvariantError, match=rf"1 layer\(s\) off their share: {name} keeps"):
        check_result(2, meta, HISTORY, model)


def test_a_record_that_misstates_the_masks_is_refused() -> None:
    model, meta = _searched(3001)
    meta["relu_per_layer"] = meta["relu_per_layer"][::-1]  # same sum, wrong layers
    with pytest.raises(InvariantError, match="not what the model's masks keep"):
        check_result(2, meta, HISTORY, model)
    model, meta = _searched(3001)
    meta["relu_count"] += 5
    with pytest.raises(InvariantError, match="sums to 3001, not relu_count 3006"):
        check_result(2, meta, HISTORY, model)


def test_snl_counts_are_its_own_but_must_sum_and_fit() -> None:
    model, meta = _searched(3001)
    per_layer = dict(zip(meta["layer_budgets"], meta["relu_per_layer"]))
    snl = dict(meta, allocation="global", layer_budgets=per_layer)
    check_result(2, snl, HISTORY, model)
    first = next(iter(per_layer))
    with pytest.raises(InvariantError, match="searched per-layer counts sum to"):
        check_result(
            2, dict(snl, layer_budgets={**per_layer, first: per_layer[first] + 1}), HISTORY, model
        )
    with pytest.raises(InvariantError, match="relu_count 3001 > budget 3000"):
        check_result(2, dict(snl, budget=3000), HISTORY, model)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_accuracies_outside_0_1_are_refused(bad: float) -> None:
    model, meta = _searched(3001)
    with pytest.raises(InvariantError, match="test_acc .* is not in"):
        check_result(2, dict(meta, test_acc=bad), HISTORY, model)
    rows = [dict(HISTORY[0], val_acc=bad)]
    with pytest.raises(InvariantError, match="epoch 1 val_acc .* is not in"):
        check_result(2, meta, rows, model)


def test_stage1_teacher_must_keep_every_relu() -> None:
    model = build_model("resnet20", 10, 1)
    init_masks(model, 8, 1)
    total, per_layer = model_relu_count(model)
    meta = {"key": "k", "relu_count": total, "relu_total": total, "val_acc": 0.9}
    meta["relu_per_layer"] = list(per_layer.values())
    meta["config"] = dataclasses.replace(Stage1Config(), optim=_optim(1))
    check_result(1, meta, HISTORY, model)
    with pytest.raises(InvariantError, match=f"keeps {total} of {total + 1}"):
        check_result(1, dict(meta, relu_total=total + 1), HISTORY, model)


def test_a_stage_whose_training_diverges_is_never_committed(tmp_path: Path) -> None:
    """The issue's case, trained for real: a huge (finite) lr on synthetic images drives the
    loss to NaN, yet argmax still gives an accuracy in [0, 1], so the stage committed a chance
    model. Now the loss is checked before commit: no artifact, one line saying why."""
    cfg = Stage1Config(
        "resnet20",
        DataConfig("synthetic", limit=48),
        optim=OptimConfig(epochs=1, lr=1e30, batch_size=16),
    )
    key = content_key(1, cfg)
    with pytest.raises(InvariantError) as e:
        execute(1, cfg, tmp_path, key, device="cpu")
    msg = str(e.value)
    assert "training diverged: epoch 1 loss is nan" in msg and "\n" not in msg, msg
    _no_artifact(artifact_dir(tmp_path, 1, key))
