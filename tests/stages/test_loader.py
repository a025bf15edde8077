"""stages.loader: TensorLoader's order, seeding, augmentation and normalisation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from stages.data import DataBundle, Split, load_data
from stages.loader import TensorLoader


def _plain(bundle: DataBundle, crop_pad: int, flip: bool, n: int = 40) -> DataBundle:
    """`bundle` whose train labels are sample ids and whose normalisation is only x / 255."""
    c = bundle.in_channels
    train = Split(bundle.train.x[:n], torch.arange(n))
    return dataclasses.replace(
        bundle, train=train, mean=(0.0,) * c, std=(1.0,) * c, crop_pad=crop_pad, flip=flip
    )


def _epoch(loader: TensorLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_eval_loader_covers_each_sample_once_in_order() -> None:
    b = load_data("digits")
    loader = TensorLoader(b.val, b, batch_size=32, train=False)
    assert len(loader) == math.ceil(144 / 32) == 5
    x, y = _epoch(loader)
    assert torch.equal(y, b.val.y)
    expected = (b.val.x.float() / 255 - b.mean[0]) / b.std[0]
    assert torch.allclose(x, expected, atol=1e-6)
    assert len(TensorLoader(b.val, b, 32, train=False, drop_last=True)) == 4


def test_train_loader_is_seeded_and_reshuffles_each_epoch() -> None:
    b = _plain(load_data("digits"), crop_pad=1, flip=False)
    first, again, other = (TensorLoader(b.train, b, 16, True, seed=s) for s in (3, 3, 4))
    e1, e1_again, e1_other = _epoch(first), _epoch(again), _epoch(other)
    assert torch.equal(e1[0], e1_again[0]) and torch.equal(e1[1], e1_again[1])
    assert not torch.equal(e1[1], e1_other[1])
    e2 = _epoch(first)
    assert not torch.equal(e1[1], e2[1])
    for _, ids in (e1, e2):
        assert sorted(ids.tolist()) == list(range(40))


def test_train_without_augmentation_is_a_permutation_of_the_originals() -> None:
    b = _plain(load_data("synthetic"), crop_pad=0, flip=False)
    x, ids = _epoch(TensorLoader(b.train, b, 16, train=True, seed=1))
    assert not torch.equal(ids, torch.arange(40))
    assert torch.equal(x, b.train.x[ids].float() / 255)


def test_augment_off_keeps_the_originals_of_a_dataset_that_crops_and_flips() -> None:
    b = _plain(load_data("synthetic"), crop_pad=2, flip=True)
    x, ids = _epoch(TensorLoader(b.train, b, 16, train=True, seed=1, augment=False))
    assert torch.equal(x, b.train.x[ids].float() / 255)
    augmented, ids = _epoch(TensorLoader(b.train, b, 16, train=True, seed=1))
    assert not torch.equal(augmented, b.train.x[ids].float() / 255)


def _crop(padded: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """The reference: a per-sample slice of the padded image, then an optional flip."""
    crop = padded[:, dy : dy + 16, dx : dx + 16]
    return crop.flip(-1) if flip else crop


def test_crop_and_flip_match_a_per_sample_reference() -> None:
    pad = 2
    b = _plain(load_data("synthetic"), crop_pad=pad, flip=True)
    x, ids = _epoch(TensorLoader(b.train, b, 16, train=True, seed=0))
    assert x.shape == (40, 3, 16, 16)
    used = set()
    for out, i in zip(x, ids.tolist()):
        padded = F.pad(b.train.x[i].float() / 255, (pad,) * 4)
        crops = {
            (dy, dx, f): _crop(padded, dy, dx, f)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for f in (False, True)
        }
        matches = [key for key, crop in crops.items() if torch.equal(out, crop)]
        assert matches, f"sample {i} is no crop/flip of its original"
        used.add(matches[0])
    assert len({(dy, dx) for dy, dx, _ in used}) > 5 and {f for *_, f in used} == {False, True}


def test_normalisation_gives_zero_mean_unit_std_per_channel() -> None:
    b = load_data("synthetic")
    x, _ = _epoch(TensorLoader(b.train, b, 100, train=False))
    per_channel = x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(per_channel.std(1, correction=0), torch.ones(3), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loader_gives_the_cpu_batches() -> None:
    b = _plain(load_data("synthetic"), crop_pad=2, flip=True)
    gpu = TensorLoader(b.train, b, 16, train=True, device="cuda", seed=7)
    assert gpu.x.is_cuda
    x_gpu, y_gpu = _epoch(gpu)
    x_cpu, y_cpu = _epoch(TensorLoader(b.train, b, 16, train=True, seed=7))
    assert torch.equal(y_gpu.cpu(), y_cpu) and torch.equal(x_gpu.cpu(), x_cpu)
