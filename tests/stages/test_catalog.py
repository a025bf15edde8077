"""stages.catalog and stages.architecture: the torch-free facts agree with what the torch
modules compute. Every check compares two computations, never a typed-in count."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn

from stages import architecture, catalog
from stages.models import MODELS, build_model
from stages.partial_relu import relu_layers

# The datasets' shapes and some no dataset has (odd, small, between them), both channel counts.
SIDES = sorted({side for _, side in catalog.INPUT_SHAPES.values()} | {9, 12, 40})


@cache
def _built(model: str, channels: int) -> nn.Module:
    """Built on the meta device: shapes only, no weights to initialise (WRN-22-8 has 17M)."""
    with torch.device("meta"):
        return build_model(model, 10, channels)


def _traced(model: str, channels: int, side: int, stem: bool) -> list[tuple[object, bool]]:
    """Each ReLU layer's (shape, is_stem) by a forward pass."""
    layers = relu_layers(_built(model, channels), side, channels, stem)
    return [(layer.shape, layer.is_stem) for layer in layers]


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("stem", [True, False])
def test_the_computed_maps_are_the_traced_ones(model: str, channels: int, stem: bool) -> None:
    for side in SIDES:
        computed = architecture.relu_maps(model, side, stem)
        assert [(m.shape, m.is_stem) for m in computed] == _traced(model, channels, side, stem)
        assert architecture.relu_count(model, side, stem) == sum(m.count for m in computed)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_dataset_total_is_the_traced_one(model: str) -> None:
    for dataset, (channels, side) in catalog.INPUT_SHAPES.items():
        for stem in (True, False):
            traced = relu_layers(_built(model, channels), side, channels, stem)
            total = sum(layer.count for layer in traced)
            assert catalog.relu_total(model, dataset, stem) == total, (dataset, stem)


def test_a_side_too_small_for_the_pools_fails_in_both() -> None:
    """VGG16's three max-pools take 4x4 to nothing: torch refuses, and so does the count."""
    with pytest.raises(RuntimeError):
        _traced("vgg16_bn", 3, 4, True)
    with pytest.raises(ValueError, match="cannot run on 4x4"):
        architecture.relu_count("vgg16_bn", 4)


def test_an_unknown_model_is_named() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        architecture.relu_count("resnet50", 32)


def test_the_model_names_are_the_builders() -> None:
    assert catalog.MODELS == tuple(sorted(MODELS))
