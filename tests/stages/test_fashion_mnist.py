"""A real dataset end to end: SENet's three stages on real Fashion-MNIST images, on CPU in well
under a minute. The teacher learns (far above chance) and the budget is kept exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import pytest

from stages.catalog import default_root, relu_total
from stages.config import DataConfig, Stage1Config, Stage2Config, Stage3Config
from stages.pipeline import run_pipeline

pytestmark = pytest.mark.skipif(
    default_root("fashion-mnist") is None,
    reason="no /usr/share/datasets/fashion-mnist: apt-get install dataset-fashion-mnist",
)

C = TypeVar("C", Stage1Config, Stage2Config, Stage3Config)


def _short(cfg: C, epochs: int) -> C:
    """`cfg` with only its epochs and batch size changed; every other setting is the stage's
    default. Batches of 32, not 128: 1000 images then give 31 steps an epoch, enough to learn in
    3 epochs (at 128, 8 steps an epoch leave the teacher near chance)."""
    return dataclasses.replace(
        cfg, optim=dataclasses.replace(cfg.optim, epochs=epochs, batch_size=32)
    )


def test_resnet20_relu_count_on_28x28_follows_the_architecture() -> None:
    # The oracle, from shapes alone: resnet20's stem ReLU and the 3 blocks x 2 ReLUs of its
    # first stage see 16 channels at 28x28 (stride 1); the 6 ReLUs of the second stage see 32
    # at 14x14 and the 6 of the third 64 at 7x7 (each stage halves the side). Native 28x28:
    # no padded border inflates the count.
    expected = 16 * 28 * 28 * 7 + 32 * 14 * 14 * 6 + 64 * 7 * 7 * 6
    assert relu_total("resnet20", "fashion-mnist") == relu_total("resnet20", "mnist") == expected


def test_stages_learn_fashion_mnist_and_keep_the_budget_exactly(tmp_path: Path) -> None:
    total = relu_total("resnet20", "fashion-mnist")
    budget = round(0.05 * total)  # 5 % of the ReLUs
    # 1000 train and test images; 300 val images (0.5 %), as val is scored every epoch.
    data = DataConfig("fashion-mnist", val_fraction=0.005, limit=1000)
    s1 = _short(Stage1Config(model="resnet20", data=data), 3)
    r1, r2, r3 = run_pipeline(
        s1,
        _short(Stage2Config(budget=budget), 1),
        _short(Stage3Config(), 1),
        tmp_path,
        device="cpu",
    )
    assert r1.metrics["relu_count"] == r1.metrics["relu_total"] == total
    # Measured 0.66 on 2 threads, 0.70 on 1 (chance: 0.1); one standard error is 0.015 on
    # 1000 test images.
    assert r1.metrics["test_acc"] > 0.5
    for r in (r2, r3):
        assert r.metrics["relu_count"] == budget and sum(r.metrics["relu_per_layer"]) == budget
    # Measured 0.32 and 0.34 after one epoch each of stages 2 and 3; chance + 5 standard errors
    # is 0.15.
    assert r3.metrics["test_acc"] > 0.15
