"""ReLU counts against the method note's reference numbers (the counts are traced, never typed
into the product)."""

import pytest
import torch
from torch import nn

from stages.models import MODELS, build_model
from stages.partial_relu import PartialReLU, init_masks, model_relu_count, relu_layers


@pytest.mark.parametrize(
    ("name", "size", "stem", "layers", "total"),
    [
        ("resnet18", 32, True, 17, 557_056),
        ("resnet18", 32, False, 16, 491_520),
        ("resnet18", 64, True, 17, 2_228_224),
        ("wrn22_8", 32, True, 19, 1_392_640),
        ("vgg16_bn", 32, True, 13, 294_912),
    ],
)
def test_reference_relu_counts(name: str, size: int, stem: bool, layers: int, total: int) -> None:
    found = relu_layers(build_model(name, 10), size, include_stem=stem)
    assert len(found) == layers
    assert sum(layer.count for layer in found) == total


def test_resnet18_layer_sizes_follow_the_note() -> None:
    counts = [layer.count for layer in relu_layers(build_model("resnet18"), 32)]
    assert counts == [65_536] * 5 + [32_768] * 4 + [16_384] * 4 + [8_192] * 4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_relu_names_the_conv_that_feeds_it(name: str) -> None:
    model = build_model(name)
    modules = dict(model.named_modules())
    for layer in relu_layers(model, 32):
        assert isinstance(modules[layer.source], nn.Conv2d), layer
    # The source conv's output channels equal the ReLU layer's channels (in every model,
    # the pre-activation WRN included: its relu1 sees the previous block's conv2 output).
    for layer in relu_layers(model, 32):
        assert modules[layer.source].out_channels == layer.shape[0], layer


def test_masks_live_in_the_state_dict_and_reload() -> None:
    model = build_model("resnet20", 10, 1)
    init_masks(model, 8, 1)
    relu = next(m for m in model.modules() if isinstance(m, PartialReLU))
    half = torch.ones_like(relu.mask)
    half.view(-1)[: half.numel() // 2] = 0
    relu.set_mask(half)
    fresh = build_model("resnet20", 10, 1)  # masks still empty
    fresh.load_state_dict(model.state_dict())
    assert model_relu_count(fresh) == model_relu_count(model)
    x = torch.randn(4, 1, 8, 8)
    model.eval(), fresh.eval()
    assert torch.equal(model(x), fresh(x))


def test_forward_features_returns_stage_outputs() -> None:
    model = build_model("resnet20", 10, 3)
    logits, feats = model.forward_features(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10)
    assert [f.shape[1] for f in feats] == [16, 32, 64]
