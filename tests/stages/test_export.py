"""Exports: a finished partial-ReLU model written as model.pt + export.json and loaded back
with stages/ and torch alone reproduces its recorded test accuracy and ReLU counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stages.artifacts import WEIGHTS, file_digest, read_meta
from stages.config import DataConfig, OptimConfig, Stage1Config, Stage2Config, Stage3Config
from stages.data import load_data
from stages.export import INFO, ExportError, export_artifact, export_name, load_exported
from stages.partial_relu import model_relu_count
from stages.stage1 import build_from_meta


def _optim(epochs: int) -> OptimConfig:
    return OptimConfig(epochs=epochs, lr=0.05, batch_size=50)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Stages 1-3 of resnet20 on 100 digits, an epoch each: (stage-1, -2, -3 folders)."""
    from stages.pipeline import run_pipeline

    store = tmp_path_factory.mktemp("store")
    s1 = Stage1Config("resnet20", DataConfig("digits", limit=100), optim=_optim(1))
    s2 = Stage2Config(budget=1500, optim=_optim(1))
    s3 = Stage3Config(optim=_optim(1))
    r1, r2, r3 = run_pipeline(s1, s2, s3, store, device="cpu")
    return Path(r1.artifact), Path(r2.artifact), Path(r3.artifact)


def _test_accuracy(folder: Path) -> tuple[float, dict]:
    """The README's lines: load the export, rebuild the test split it names, score it."""
    e = load_exported(folder)
    d = e.info["data"]
    test = load_data(d["dataset"], d["root"], d["val_fraction"], d["seed"], d["limit"]).test
    return (e.predict(test.x) == test.y).double().mean().item(), e.info


def test_an_exported_model_reproduces_its_recorded_test_accuracy(
    pipeline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, _, d3 = pipeline
    meta3 = read_meta(d3)
    assert meta3 is not None
    info = export_artifact(d3, d1, tmp_path / "e", {"sweep": "mine"})
    acc, loaded = _test_accuracy(tmp_path / "e")
    assert acc == meta3["test_acc"] == loaded["test_acc"]
    # and prediction for prediction, the model the store holds (not just the same count)
    teacher = read_meta(d1)
    stored = build_from_meta(teacher, torch.device("cpu")).eval()
    stored.load_state_dict(torch.load(d3 / WEIGHTS, weights_only=True))
    test = load_data("digits", None, 0.1, 0, 100).test
    e = load_exported(tmp_path / "e")
    with torch.no_grad():
        assert torch.equal(e.predict(test.x), stored(e.normalize(test.x)).argmax(dim=1))
    assert loaded == info and loaded["sweep"] == "mine"
    assert loaded["relu_count"] == meta3["relu_count"] == 1500
    assert list(loaded["relu_layers"].values()) == meta3["relu_per_layer"]
    assert (loaded["model"], loaded["dataset"], loaded["input_size"]) == ("resnet20", "digits", 8)
    assert (loaded["in_channels"], loaded["num_classes"]) == (1, 10)
    assert loaded["key"] == meta3["key"] and loaded["stage1_key"] == read_meta(d1)["key"]
    assert loaded["files"][WEIGHTS] == file_digest(tmp_path / "e" / WEIGHTS)


def test_the_loaded_model_is_a_partial_relu_model_with_the_searched_masks(
    pipeline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, d2, d3 = pipeline
    export_artifact(d3, d1, tmp_path / "e")
    e = load_exported(tmp_path / "e")
    total, per_layer = model_relu_count(e.model, e.info["include_stem"])
    assert total == 1500 and per_layer == e.info["relu_layers"]
    searched = torch.load(d2 / WEIGHTS, weights_only=True)
    masks = {k: v for k, v in e.model.state_dict().items() if k.endswith(".mask")}
    assert masks and all(torch.equal(v, searched[k]) for k, v in masks.items())
    assert not e.model.training


def test_a_teacher_exports_too_and_is_named_by_stage(
    pipeline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, _, _ = pipeline
    info = export_artifact(d1, d1, tmp_path / "t")
    assert export_name(info) == f"stage1-{info['key']}" and info["budget"] is None
    acc, _ = _test_accuracy(tmp_path / "t")
    assert acc == read_meta(d1)["test_acc"]
    assert info["relu_count"] == info["relu_total"]


def test_an_artifact_whose_masks_disagree_with_its_meta_is_refused(
    pipeline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, _, d3 = pipeline
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / WEIGHTS).write_bytes((d3 / WEIGHTS).read_bytes())
    meta = json.loads((d3 / "meta.json").read_text())
    meta["relu_count"] += 1
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="masks keep 1500 ReLUs"):
        export_artifact(copy, d1, tmp_path / "e")
    assert not (tmp_path / "e" / INFO).exists()


def test_a_folder_that_is_not_an_export_is_one_line(
    pipeline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, _, d3 = pipeline
    with pytest.raises(ExportError, match="no export.json"):
        load_exported(tmp_path)
    (tmp_path / INFO).write_text("{not json")
    with pytest.raises(ExportError, match="unreadable"):
        load_exported(tmp_path)
    export_artifact(d3, d1, tmp_path / "e")
    info = json.loads((tmp_path / "e" / INFO).read_text())
    (tmp_path / "e" / INFO).write_text(json.dumps(info | {"relu_count": 7}))
    with pytest.raises(ExportError, match="export.json says 7"):
        load_exported(tmp_path / "e")
