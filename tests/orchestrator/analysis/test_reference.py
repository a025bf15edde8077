"""The published points a plot can overlay: checked against the method note they were
transcribed from (when the note is on this machine) and against what any published point must
satisfy (a real model and dataset, fewer ReLUs than the model has, a front that rises)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.analysis.reference import REFERENCES
from stages.catalog import DATASETS
from stages.models import MODELS, build_model
from stages.partial_relu import relu_layers

NOTE = Path("/work/shared/notes/senet-method.md")
INPUT_SIZE = {"cifar10": 32, "cifar100": 32, "tinyimagenet": 64}
NAMES = {"cifar100": "CIFAR-100", "cifar10": "CIFAR-10", "tinyimagenet": "Tiny-ImageNet"}
NOTE_MODEL = {"resnet18": "ResNet18", "wrn22_8": "WRN22-8"}


def _split(name: str) -> tuple[str, str]:
    dataset, _, model = name.partition("-")
    return dataset, model


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_point_fits_its_model(name: str) -> None:
    """A count above the model's all-ReLU total, or a front that falls as ReLUs grow, is a
    typo (a slipped digit in 24.6K, a swapped pair)."""
    dataset, model = _split(name)
    assert dataset in DATASETS and model in MODELS, name
    total = sum(layer.count for layer in relu_layers(build_model(model), INPUT_SIZE[dataset]))
    for method, points in REFERENCES[name].items():
        counts = [c for c, _ in points]
        accs = [a for _, a in points]
        assert all(0 < c < total for c in counts), (name, method, total)
        assert all(0.0 < a < 100.0 for a in accs), (name, method)
        assert counts == sorted(counts) and len(set(counts)) == len(counts), (name, method)
        assert accs == sorted(accs), f"{name} {method}: accuracy falls as ReLUs grow"


def _note_points() -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The note's "Published results" paragraph, parsed: `<dataset> <model> 24.6K 70.59, ...`."""
    text = NOTE.read_text()
    section = text.split("## Published results", 1)[1].split("\n## ", 1)[0]
    section = " ".join(section.split())
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for method in ("SENet", "SNL"):
        part = re.search(rf"{method} \(.*?\)(.*?)(?=\. |\bSNL \(|$)", section)
        assert part, method
        for dataset, title in NAMES.items():
            for model, label in NOTE_MODEL.items():
                m = re.search(
                    rf"{re.escape(title)} {re.escape(label)}:?((?: [\d.]+K [\d.]+,?)+)",
                    part.group(1),
                )
                if m is None:
                    continue
                pairs = re.findall(r"([\d.]+)K ([\d.]+)", m.group(1))
                points = [(round(float(k) * 1000), float(a)) for k, a in pairs]
                out.setdefault(f"{dataset}-{model}", {})[method] = points
    return out


@pytest.mark.skipif(not NOTE.exists(), reason=f"the method note is not on this machine ({NOTE})")
def test_references_match_the_method_note() -> None:
    assert _note_points() == REFERENCES
