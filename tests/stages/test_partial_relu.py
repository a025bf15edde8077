import pytest
import torch

from stages.partial_relu import PartialReLU, mask_hamming, topk_mask


def _layer(mask: torch.Tensor) -> PartialReLU:
    layer = PartialReLU()
    layer.set_mask(mask)
    return layer


def test_all_ones_is_relu_and_all_zeros_is_identity() -> None:
    x = torch.randn(3, 2, 4, 4)
    assert torch.equal(_layer(torch.ones(2, 4, 4))(x), torch.relu(x))
    assert torch.equal(_layer(torch.zeros(2, 4, 4))(x), x)


def test_partial_mask_mixes_positionwise() -> None:
    x = torch.randn(5, 2, 3, 3)
    m = (torch.rand(2, 3, 3) > 0.5).float()
    m[0, 0, 0], m[0, 0, 1] = 1.0, 0.0  # both kinds present
    expected = m * torch.relu(x) + (1 - m) * x
    assert torch.allclose(_layer(m)(x), expected)
    assert _layer(m).relu_count() == int(m.sum())


def test_gradient_is_relu_gradient_where_kept_and_one_where_linear() -> None:
    m = torch.tensor([[[1.0, 0.0]]])
    x = torch.tensor([[[[-1.0, -1.0]]]], requires_grad=True)
    _layer(m)(x).sum().backward()
    assert x.grad.tolist() == [[[[0.0, 1.0]]]]


@pytest.mark.parametrize("k", [0, 1, 7, 31, 32])
def test_pixel_topk_keeps_exactly_k(k: int) -> None:
    mask = topk_mask(torch.randn(2, 4, 4), k, "pixel")
    assert int(mask.sum()) == k


def test_pixel_topk_keeps_the_highest_scores() -> None:
    score = torch.arange(8.0).view(2, 2, 2)
    assert topk_mask(score, 3, "pixel").view(-1).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(("k", "channels"), [(0, 0), (15, 0), (16, 1), (47, 2), (64, 4)])
def test_channel_topk_keeps_whole_channels_that_fit(k: int, channels: int) -> None:
    score = torch.randn(4, 4, 4)
    mask = topk_mask(score, k, "channel")
    assert int(mask.sum()) == channels * 16
    per_channel = mask.sum(dim=(1, 2))
    assert set(per_channel.tolist()) <= {0.0, 16.0}


def test_channel_topk_picks_channels_by_summed_score() -> None:
    score = torch.zeros(3, 2, 2)
    score[1] = 5.0
    score[2, 0, 0] = 100.0  # one hot pixel beats a warm channel: the sums are 100 vs 20
    mask = topk_mask(score, 4, "channel")
    assert mask.sum(dim=(1, 2)).tolist() == [0.0, 0.0, 4.0]


def test_unknown_granularity_is_an_error() -> None:
    with pytest.raises(ValueError, match="granularity"):
        topk_mask(torch.randn(1, 2, 2), 1, "block")


def test_hamming_distance() -> None:
    a = {"x": torch.tensor([1.0, 0.0, 1.0, 0.0])}
    b = {"x": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    assert mask_hamming(a, a) == 0.0
    assert mask_hamming(a, b) == 0.5


def test_scores_variant_trains_scores_and_keeps_k() -> None:
    layer = PartialReLU()
    layer.set_mask(torch.ones(1, 2, 2))
    layer.enable_scores(2, "pixel", init=torch.tensor([[[0.1, 0.2], [0.3, 0.4]]]))
    x = torch.full((1, 1, 2, 2), -1.0)
    layer(x).sum().backward()
    assert layer.scores is not None and layer.scores.grad is not None
    assert layer.scores.grad.abs().sum() > 0  # the straight-through gradient reaches the scores
    layer.finalize_scores()
    assert layer.scores is None and layer.relu_count() == 2
    assert layer.mask.view(-1).tolist() == [0.0, 0.0, 1.0, 1.0]
