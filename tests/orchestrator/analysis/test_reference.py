"""The published points a plot can overlay."""

from __future__ import annotations

from orchestrator.analysis.reference import REFERENCES


def test_reference_tables_hold_the_published_points() -> None:
    assert REFERENCES["cifar100-resnet18"]["SENet"] == [(24_600, 70.59), (49_600, 75.28)]
    assert len(REFERENCES["cifar100-resnet18"]["SNL"]) == 4
    assert set(REFERENCES) == {
        "cifar100-resnet18",
        "cifar10-resnet18",
        "tinyimagenet-resnet18",
        "cifar100-wrn22_8",
    }
