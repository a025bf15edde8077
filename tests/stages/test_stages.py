"""The three stages and the pipeline, run for real on CPU with tiny data: ReLU counts that are
exact, a content-addressed store that never recomputes, resumable stages, and errors that come
before any training."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import stages.stage2 as stage2_mod
from stages.allocation import BudgetError
from stages.artifacts import (
    META,
    WEIGHTS,
    artifact_dir,
    checkpoint_path,
    content_key,
    load_state,
    read_meta,
)
from stages.config import DataConfig, OptimConfig, Stage1Config, Stage2Config, Stage3Config
from stages.models import build_model
from stages.partial_relu import PartialReLU, model_relu_count, partial_relus, relu_layers
from stages.pipeline import execute, run_pipeline, stage_keys
from stages.stage1 import build_from_meta, magnitude_densities, run_stage1
from stages.stage2 import run_stage2

CPU = torch.device("cpu")
# resnet20 on 8x8 digits: stem 16x8x8 + 6 x 16x8x8 + 6 x 32x4x4 + 6 x 64x2x2 ReLUs.
DIGITS_TOTAL = 1024 + 6 * 1024 + 6 * 512 + 6 * 256


def _optim(epochs: int, batch_size: int = 50, lr: float = 0.05) -> OptimConfig:
    return OptimConfig(epochs=epochs, lr=lr, batch_size=batch_size)


def _tiny(limit: int = 100, epochs: int = 1) -> tuple[Stage1Config, Stage2Config, Stage3Config]:
    """A pipeline that runs in about a second: for store and resume behaviour, not accuracy."""
    s1 = Stage1Config("resnet20", DataConfig("digits", limit=limit), optim=_optim(epochs))
    return s1, Stage2Config(budget=2000, optim=_optim(epochs)), Stage3Config(optim=_optim(epochs))


def _load(folder: Path | str, meta1: dict[str, Any]) -> torch.nn.Module:
    """An artifact's weights in a fresh model: what a later user of the artifact sees."""
    model = build_from_meta(meta1, CPU)
    model.load_state_dict(load_state(Path(folder) / WEIGHTS))
    return model


def _masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.mask for n, m in partial_relus(model)}


def _mtimes(store: Path) -> dict[str, int]:
    return {
        str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()
    }


class Rows:
    """An on_epoch callback that records its rows and can interrupt at a chosen (stage, epoch)."""

    def __init__(self, stop_at: tuple[int, int] | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.stop_at = stop_at

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.stop_at == (row.get("stage", 0), row["epoch"]):
            raise KeyboardInterrupt

    def epochs(self, stage: int) -> list[int]:
        return [r["epoch"] for r in self.rows if r.get("stage", 0) == stage]


@pytest.fixture(scope="module")
def stage1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small stage-1 artifact (teacher + sensitivities) shared by the stage-2 tests."""
    out = tmp_path_factory.mktemp("store") / "stage1"
    cfg = Stage1Config("resnet20", DataConfig("digits", limit=200), optim=_optim(2))
    run_stage1(cfg, out, content_key(1, cfg), device="cpu")
    return out


# --- end to end -------------------------------------------------------------------------------


def test_pipeline_on_digits_meets_the_budget_exactly_and_learns(tmp_path: Path) -> None:
    budget = DIGITS_TOTAL // 4 + 7  # ~25%, and not a round number
    s1 = Stage1Config("resnet20", DataConfig("digits"), optim=_optim(8, 64))
    s2 = Stage2Config(budget=budget, optim=_optim(6, 64))
    s3 = Stage3Config(optim=_optim(6, 64, lr=0.01))
    r1, r2, r3 = run_pipeline(s1, s2, s3, tmp_path, device="cpu")
    meta1, meta2, meta3 = (read_meta(Path(r.artifact)) for r in (r1, r2, r3))
    assert meta1 and meta2 and meta3
    assert (
        meta1["relu_total"]
        == DIGITS_TOTAL
        == sum(layer.count for layer in relu_layers(build_model("resnet20", 10, 1), 8, 1))
    )

    final = _load(r3.artifact, meta1)
    total, per_layer = model_relu_count(final)
    assert total == budget == meta3["relu_count"] == r3.metrics["relu_count"]
    assert per_layer == meta2["layer_budgets"]  # pixel granularity: r_l exactly, every layer
    assert sum(meta2["layer_budgets"].values()) == budget
    # Stage 3 fine-tunes weights only: its masks are stage 2's, bit for bit.
    searched = _masks(_load(r2.artifact, meta1))
    assert all(torch.equal(m, searched[n]) for n, m in _masks(final).items())

    assert meta1["test_acc"] > 0.85  # the teacher
    assert meta3["test_acc"] > 0.7  # chance is 0.1
    # Stage 2 keeps its best-validation epoch among those past the anneal and reports its
    # accuracy; stage 3 its best epoch, or the model it started from (stage 2's) when no
    # epoch beats that.
    assert meta2["val_acc"] in {row["val_acc"] for row in meta2["history"]}
    assert meta3["val_acc"] == max(meta2["val_acc"], *(r["val_acc"] for r in meta3["history"]))


# --- stage 2: exact counts ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["activation", "scores"])
@pytest.mark.parametrize("granularity", ["pixel", "channel"])
def test_stage2_masks_hold_exact_counts(
    stage1_dir: Path, tmp_path: Path, granularity: str, method: str
) -> None:
    budget = 2999
    cfg = Stage2Config(budget=budget, granularity=granularity, method=method, optim=_optim(2))
    rows = Rows()
    result = run_stage2(cfg, stage1_dir, tmp_path / "s2", "k", rows, device="cpu")
    meta1, meta2 = read_meta(stage1_dir), read_meta(tmp_path / "s2")
    assert meta1 and meta2 and rows.epochs(0) == [1, 2]
    state = load_state(tmp_path / "s2" / WEIGHTS)
    assert not [k for k in state if k.endswith(".scores")]  # scores are frozen into the mask
    model = _load(tmp_path / "s2", meta1)
    shapes = {layer["name"]: layer["shape"] for layer in meta1["layers"]}
    r = meta2["layer_budgets"]
    assert sum(r.values()) == budget
    for name, mask in _masks(model).items():
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        c, h, w = shapes[name]
        assert mask.shape == (c, h, w)
        kept = int(mask.sum())
        if granularity == "pixel":
            assert kept == r[name], name
        else:
            assert kept == r[name] // (h * w) * (h * w), name
            per_channel = mask.sum(dim=(1, 2))
            assert set(per_channel.tolist()) <= {0.0, float(h * w)}, name  # whole channels
    counted = model_relu_count(model)[0]
    assert counted == result.metrics["relu_count"] == meta2["relu_count"]
    if granularity == "pixel":
        assert counted == budget
    else:
        assert counted <= budget and counted > 0
    assert len(meta2["hamming"]) == 2 and all(0.0 <= d <= 1.0 for d in meta2["hamming"])


# --- the store: no recomputation, resume ---------------------------------------------------


def test_rerun_recomputes_nothing_and_a_new_tau_runs_only_stage3(tmp_path: Path) -> None:
    s1, s2, s3 = _tiny()
    first = run_pipeline(s1, s2, s3, tmp_path, device="cpu")
    before = _mtimes(tmp_path)
    rows = Rows()
    again = run_pipeline(s1, s2, s3, tmp_path, rows, device="cpu")
    assert again == first and rows.rows == []
    assert _mtimes(tmp_path) == before

    other = run_pipeline(s1, s2, dataclasses.replace(s3, tau=2.0), tmp_path, rows, device="cpu")
    assert [r.key for r in other[:2]] == [r.key for r in first[:2]]
    assert other[2].key != first[2].key and other[2].artifact != first[2].artifact
    assert {r["stage"] for r in rows.rows} == {3}
    after = _mtimes(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("stage3")} == {
        k: v for k, v in before.items() if not k.startswith("stage3")
    }
    assert len([k for k in after if k.endswith(META)]) == 4


def test_interrupted_stage_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    s1, s2, s3 = dataclasses.replace(_tiny()[0], optim=_optim(4)), *_tiny()[1:]
    k1 = stage_keys(s1, s2, s3)[0]
    ckpt = checkpoint_path(tmp_path / "resumed", 1, k1)
    stopped = Rows(stop_at=(1, 2))
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(s1, s2, s3, tmp_path / "resumed", stopped, device="cpu")
    assert stopped.epochs(1) == [1, 2] and ckpt.exists()
    assert read_meta(artifact_dir(tmp_path / "resumed", 1, k1)) is None

    rows = Rows()
    resumed = run_pipeline(s1, s2, s3, tmp_path / "resumed", rows, device="cpu")
    assert rows.epochs(1) == [3, 4]  # epochs 1-2 are not run again
    meta1 = read_meta(Path(resumed[0].artifact))
    assert meta1 and [row["epoch"] for row in meta1["history"]] == [1, 2, 3, 4]
    assert not ckpt.exists()  # dropped once the artifact is committed
    assert not list((tmp_path / "resumed").rglob("*.ckpt"))

    # The resumed run draws the batches an uninterrupted one draws: same weights.
    straight = run_pipeline(s1, s2, s3, tmp_path / "straight", device="cpu")
    a, b = (
        load_state(Path(resumed[0].artifact) / WEIGHTS),
        load_state(Path(straight[0].artifact) / WEIGHTS),
    )
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert meta1["history"] == read_meta(Path(straight[0].artifact))["history"]  # type: ignore[index]


def test_stage2_scores_resumes_after_its_last_epoch(tmp_path: Path) -> None:
    """Interrupted between its last epoch's checkpoint and the commit, stage 2 must still
    resume (the checkpoint holds the trainable scores the fresh student has)."""
    s1, s2, s3 = _tiny(epochs=2)
    s2 = dataclasses.replace(s2, method="scores")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(s1, s2, s3, tmp_path, Rows(stop_at=(2, 2)), device="cpu")
    rows = Rows()
    result = run_pipeline(s1, s2, s3, tmp_path, rows, device="cpu")
    assert rows.epochs(2) == [] and rows.epochs(3) == [1, 2]
    assert result[1].metrics["relu_count"] == result[2].metrics["relu_count"] == s2.budget


# --- CIFAR-10 files end to end ------------------------------------------------------------


def _write_cifar10(root: Path, per_batch: int = 4) -> None:
    """Five train batches and a test batch in the official python pickle format."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)


def test_cifar10_files_run_through_the_pipeline(tmp_path: Path) -> None:
    _write_cifar10(tmp_path / "data")
    total = sum(layer.count for layer in relu_layers(build_model("resnet20"), 32))
    s1 = Stage1Config("resnet20", DataConfig("cifar10", str(tmp_path / "data")), optim=_optim(1, 8))
    s2 = Stage2Config(budget=total // 10, optim=_optim(1, 8))
    r1, _, r3 = run_pipeline(s1, s2, Stage3Config(optim=_optim(1, 8)), tmp_path / "s", device="cpu")
    meta1 = read_meta(Path(r1.artifact))
    assert meta1 is not None
    assert (meta1["input_size"], meta1["in_channels"], meta1["num_classes"]) == (32, 3, 10)
    assert meta1["relu_total"] == total and meta1["config"]["data"]["dataset"] == "cifar10"
    assert model_relu_count(_load(r3.artifact, meta1))[0] == total // 10


# --- artifacts ----------------------------------------------------------------------------


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 7
    if isinstance(value, tuple):
        return (*value, 0.99)
    raise TypeError(f"no variant for {value!r}")


def _variants(cfg: Any) -> Iterator[tuple[str, Any]]:
    """`cfg` with one field changed, for every (nested) field."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for path, sub in _variants(value):
                yield f"{f.name}.{path}", dataclasses.replace(cfg, **{f.name: sub})
        else:
            yield f.name, dataclasses.replace(cfg, **{f.name: _changed(value)})


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_content_key_changes_with_every_config_field(stage: int) -> None:
    cls = {1: Stage1Config, 2: Stage2Config, 3: Stage3Config}[stage]
    base = content_key(stage, cls(), ["parent"])
    assert content_key(stage, cls(), ["parent"]) == base  # equal configs, equal keys
    keys = {path: content_key(stage, cfg, ["parent"]) for path, cfg in _variants(cls())}
    assert len(keys) >= len(dataclasses.fields(cls))
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)  # and no two changes collide
    assert content_key(stage, cls(), ["other"]) != base
    assert content_key(stage % 3 + 1, cls(), ["parent"]) != base


def test_artifact_weights_load_with_weights_only(stage1_dir: Path) -> None:
    state = torch.load(stage1_dir / WEIGHTS, map_location="cpu", weights_only=True)
    assert any(k.endswith(".mask") for k in state)


def test_folder_without_meta_is_not_done(tmp_path: Path) -> None:
    s1 = _tiny()[0]
    key = content_key(1, s1)
    out = artifact_dir(tmp_path, 1, key)
    out.mkdir(parents=True)
    (out / WEIGHTS).write_bytes(b"torn write")
    assert read_meta(out) is None
    rows = Rows()
    result = execute(1, s1, tmp_path, key, on_epoch=rows, device="cpu")
    assert rows.epochs(0) == [1] and result.key == key
    assert read_meta(out) is not None and load_state(out / WEIGHTS)


# --- stage 1: sensitivity -----------------------------------------------------------------


def test_stage1_sensitivity_is_one_minus_the_pruned_density(stage1_dir: Path) -> None:
    meta = read_meta(stage1_dir)
    assert meta is not None
    teacher = _load(stage1_dir, meta)
    densities = magnitude_densities(teacher, meta["config"]["density"])
    assert len(meta["layers"]) == 19
    for layer in meta["layers"]:
        assert 0.0 <= layer["density"] <= 1.0
        assert layer["sensitivity"] == 1.0 - layer["density"]
        assert layer["density"] == pytest.approx(densities[layer["source"]])


@pytest.mark.parametrize("density", [0.05, 0.3])
def test_global_pruning_hits_the_density_unevenly(stage1_dir: Path, density: float) -> None:
    meta = read_meta(stage1_dir)
    assert meta is not None
    teacher = _load(stage1_dir, meta)
    d = magnitude_densities(teacher, density)
    convs = {n: m for n, m in teacher.named_modules() if isinstance(m, torch.nn.Conv2d)}
    sizes = {n: m.weight.numel() for n, m in convs.items()}
    overall = sum(d[n] * sizes[n] for n in d) / sum(sizes.values())
    assert overall == pytest.approx(density, abs=1e-3)
    assert max(d.values()) - min(d.values()) > 0.05  # one global threshold, uneven layers


def test_pruning_density_must_be_a_fraction() -> None:
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="density"):
            magnitude_densities(build_model("resnet20"), bad)


# --- errors before any training -------------------------------------------------------------


@pytest.mark.parametrize("budget", [-1, DIGITS_TOTAL + 1])
def test_stage2_refuses_a_budget_before_reading_data(
    stage1_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    def no_data(*_: Any) -> None:
        raise AssertionError("stage 2 read its data before checking the budget")

    monkeypatch.setattr(stage2_mod, "context", no_data)
    with pytest.raises(BudgetError, match=str(budget)):
        run_stage2(Stage2Config(budget=budget), stage1_dir, tmp_path / "s2", "k", device="cpu")
    assert not (tmp_path / "s2").exists()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"budget": DIGITS_TOTAL + 1}, BudgetError),
        ({"budget": -1}, BudgetError),
        ({"method": "magic"}, ValueError),
        ({"granularity": "block"}, ValueError),
        ({"allocation": "random"}, ValueError),
        ({"init": "zeros"}, ValueError),
    ],
)
def test_pipeline_refuses_bad_stage2_settings_before_stage1(
    tmp_path: Path, change: dict[str, Any], error: type[Exception]
) -> None:
    s1, s2, s3 = _tiny()
    rows = Rows()
    with pytest.raises(error):
        run_pipeline(s1, dataclasses.replace(s2, **change), s3, tmp_path, rows, device="cpu")
    assert rows.rows == [] and not list(tmp_path.iterdir())


def test_lone_last_batch_does_not_break_batchnorm(tmp_path: Path) -> None:
    """129 images in batches of 128 would leave one image for a 1x1 map (ResNet18's layer4 on
    8x8 digits): BatchNorm cannot train on it."""
    cfg = Stage1Config("resnet18", DataConfig("digits", limit=129), optim=_optim(1, 128))
    result = run_stage1(cfg, tmp_path, "k", device="cpu")
    assert result.metrics["relu_count"] == result.metrics["relu_total"]


# --- the partial-ReLU kernel the stages train ------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_partial_relu_value_and_gradient_match_the_definition(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(3, 4, 5, generator=g) < 0.3).to(dtype)
    x = torch.randn(6, 3, 4, 5, generator=g).to(dtype)
    x[:, :, 0, :] = 0.0  # exact zeros: ReLU's gradient there is 0 where kept, 1 where linear
    layer = PartialReLU()
    layer.set_mask(m)
    assert layer._mode == "partial"
    grad = torch.randn(x.shape, generator=g).to(dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = layer(a)
    ref = m * torch.relu(b) + (1 - m) * b
    (y * grad).sum().backward()
    (ref * grad).sum().backward()
    assert y.dtype == dtype and torch.equal(y, ref)
    assert torch.equal(a.grad, b.grad)  # type: ignore[arg-type]


def test_partial_relu_follows_a_new_mask_and_a_reload() -> None:
    x = -torch.ones(2, 1, 2, 2)
    layer = PartialReLU()
    layer.set_mask(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
    assert layer(x)[0, 0].tolist() == [[0.0, -1.0], [-1.0, -1.0]]
    layer.set_mask(torch.tensor([[[0.0, 0.0], [0.0, 1.0]]]))  # no stale cached mask
    assert layer(x)[0, 0].tolist() == [[-1.0, -1.0], [-1.0, 0.0]]
    fresh = PartialReLU()
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh(x.double()), layer(x).double())
