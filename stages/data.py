"""Datasets as uint8 tensors held in memory, split into train / val / test.

SENet's stages run many short trainings of small CNNs, so every split is kept as uint8 and
moved to the device whole (CIFAR's train set is 150 MB); stages.loader batches it there.
Nothing here downloads: missing files raise `DataNotFoundError` saying where to get them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .catalog import DATASETS, DIGITS_NEEDS, IDX_DATASETS, INPUT_SHAPES, default_root, root_hint
from .idx import IDX_FILES, find_idx_files, read_idx_pair

_FIXED_SEED = 0  # digits' test split and synthetic's pixels: the same for every `seed`
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp"}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are absent; the one-line message says where to get them."""


@dataclass
class Split:
    """One split in memory; uint8 keeps CIFAR small enough to live on the GPU."""

    x: torch.Tensor  # uint8 (N, C, H, W)
    y: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class DataBundle:
    """A dataset split three ways plus what training needs to normalise and augment it."""

    name: str
    num_classes: int
    in_channels: int
    input_size: int
    train: Split
    val: Split  # held out from the official train set: model selection never looks at test
    test: Split
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]
    crop_pad: int  # random-crop zero padding (0 = no crop)
    flip: bool  # random horizontal flip


@dataclass
class _Part:
    """Labels now, pixels on demand: Tiny-ImageNet then decodes only the rows `limit` keeps."""

    y: torch.Tensor
    read: Callable[[torch.Tensor], torch.Tensor]

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> _Part:
        return cls(y, lambda idx: x[idx])

    def take(self, idx: torch.Tensor) -> Split:
        return Split(self.read(idx), self.y[idx])


@dataclass
class _Raw:
    """A dataset before the val split: the official train part and the test part."""

    full: _Part
    test: _Part
    num_classes: int
    shape: tuple[int, int]  # (channels, size)
    crop_pad: int
    flip: bool
    mean: tuple[float, ...] | None = None  # None: computed from the train split
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class _Cifar:
    title: str
    folder: str
    archive: str
    files: tuple[str, ...]  # train batches, then the test batch
    label_key: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


_CIFAR = {
    "cifar10": _Cifar(
        "CIFAR-10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
        "labels",
        10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "cifar100": _Cifar(
        "CIFAR-100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        ("train", "test"),
        "fine_labels",
        100,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
}


def load_data(
    name: str,
    root: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
) -> DataBundle:
    """Load `name` with val carved from the official train set by a `seed`-ed permutation.

    `limit` caps train, val and test at that many images each (quick tests and demos); the
    test subset is fixed (not seeded) so runs with different seeds share it. With no `root`,
    MNIST and Fashion-MNIST are read from their `default_root`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    if name == "digits":
        raw = _digits()
    elif name == "synthetic":
        raw = _synthetic()
    else:
        root = root if root is not None else default_root(name)
        if root is None:
            raise DataNotFoundError(f"{name}: no data folder given; {root_hint(name)}")
        folder = Path(root).expanduser()
        if name in IDX_DATASETS:
            raw = _idx_dataset(name, folder)
        else:
            raw = _cifar(name, folder) if name in _CIFAR else _tinyimagenet(folder)

    n = len(raw.full.y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    n_test = len(raw.test.y)
    test_idx = torch.arange(n_test)
    if limit is not None:
        train_idx, val_idx = train_idx[:limit], val_idx[:limit]
        if n_test > limit:  # random, not the first rows: those may all be one class
            test_idx = _fixed_perm(n_test)[:limit]
    train = raw.full.take(train_idx.sort().values)
    mean, std = (raw.mean, raw.std) if raw.mean and raw.std else _channel_stats(train.x)
    channels, size = raw.shape
    if (channels, size) != INPUT_SHAPES[name]:
        raise ValueError(
            f"{name}: images are {channels}x{size}x{size}, expected "
            f"{INPUT_SHAPES[name][0]}x{INPUT_SHAPES[name][1]}x{INPUT_SHAPES[name][1]}"
        )
    return DataBundle(
        name=name,
        num_classes=raw.num_classes,
        in_channels=channels,
        input_size=size,
        train=train,
        val=raw.full.take(val_idx.sort().values),
        test=raw.test.take(test_idx.sort().values),
        mean=mean,
        std=std,
        crop_pad=raw.crop_pad,
        flip=raw.flip,
    )


def _fixed_perm(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_FIXED_SEED))


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std in [0, 1] units, for datasets without published constants."""
    v = x.transpose(0, 1).reshape(x.shape[1], -1).double() / 255.0
    return tuple(v.mean(1).tolist()), tuple(v.std(1, correction=0).clamp_min(1e-6).tolist())


def _digits() -> _Raw:
    """sklearn's 8x8 digits: ships with scikit-learn, so it needs no download at all."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(DIGITS_NEEDS) from e
    d = load_digits()
    x = torch.from_numpy(np.rint(d.data * 255.0 / 16.0).astype(np.uint8)).view(-1, 1, 8, 8)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = _fixed_perm(len(y))  # no official test split: make one that never moves
    n_test = int(round(0.2 * len(y)))
    rest, test = perm[n_test:].sort().values, perm[:n_test].sort().values
    return _Raw(_Part.of(x[rest], y[rest]), _Part.of(x[test], y[test]), 10, (1, 8), 1, False)


def _synthetic() -> _Raw:
    """Class template + Gaussian noise: learnable within a few steps, for tests."""
    g = torch.Generator().manual_seed(_FIXED_SEED)
    templates = torch.randint(0, 256, (10, 3, 16, 16), generator=g).float()

    def make(n: int) -> _Part:
        y = torch.randint(0, 10, (n,), generator=g)
        x = templates[y] + 48.0 * torch.randn(n, 3, 16, 16, generator=g)
        return _Part.of(x.round().clamp(0, 255).to(torch.uint8), y)

    return _Raw(make(512), make(256), 10, (3, 16), 0, False)


def _cifar(name: str, root: Path) -> _Raw:
    """Read the official python pickles ourselves.

    torchvision's CIFAR10/100 insist on the official md5 sums even with download=False, so a
    small file in the same format (tests, a trimmed copy) would be refused as "corrupted".
    """
    spec = _CIFAR[name]
    folder = root / spec.folder
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing:
        what = (
            f"no {spec.title} python files in {folder}"
            if len(missing) == len(spec.files)
            else f"{spec.title} files missing from {folder}: {', '.join(missing)}"
        )
        raise DataNotFoundError(
            f"{name}: {what}; download {spec.archive} from {_CIFAR_URL} and extract it into "
            f"{root} (this machine never downloads)"
        )
    *train, test = [_read_cifar_batch(folder / f, spec.label_key) for f in spec.files]
    full = _Part.of(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]))
    return _Raw(full, _Part.of(*test), spec.num_classes, (3, 32), 4, True, spec.mean, spec.std)


def _read_cifar_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch: rows of 1024 R, 1024 G, 1024 B bytes, each plane row-major 32x32.

    pickle runs code from the file; that is the official format, so only trusted copies.
    """
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")  # latin1: the files were pickled by Python 2
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise ValueError(f"{path}: not a CIFAR python batch (needs keys 'data', {label_key!r})")
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: data is {data.shape}, expected (N, 3072) with N labels")
    return torch.from_numpy(data).view(-1, 3, 32, 32).clone(), torch.from_numpy(labels)


def _idx_dataset(name: str, folder: Path) -> _Raw:
    """The four official IDX files; their official test set is our test split."""
    spec = IDX_DATASETS[name]
    found, missing = find_idx_files(folder)
    if missing:
        raise DataNotFoundError(
            f"{name}: {spec.title} files missing from {folder} (raw or .gz): "
            f"{', '.join(missing)}; {spec.get}"
        )
    (x, y), (tx, ty) = (read_idx_pair(found[i], found[lb], 28, 10) for i, lb in IDX_FILES)
    part, test = _Part.of(x, y), _Part.of(tx, ty)
    return _Raw(part, test, 10, (1, 28), 2, spec.flip, (spec.mean,), (spec.std,))


def _tinyimagenet(root: Path) -> _Raw:
    """Official Tiny-ImageNet-200 layout or a plain ImageFolder train/ + val/ tree.

    The official val set is our test set (the official test set has no labels).
    """
    if not (root / "train").is_dir() and (root / "tiny-imagenet-200" / "train").is_dir():
        root = root / "tiny-imagenet-200"
    train_dir, val_dir = root / "train", root / "val"
    classes = sorted(d.name for d in train_dir.glob("*") if d.is_dir())
    if not classes or not val_dir.is_dir():
        raise DataNotFoundError(
            f"tinyimagenet: no train/<class>/ and val/ folders in {root}; download {_TINY_URL} "
            f"and extract it so that {root} holds train/ and val/ (this machine never downloads)"
        )
    index = {c: i for i, c in enumerate(classes)}
    train = [(p, index[c]) for c in classes for p in _images(train_dir / c)]
    annotations = val_dir / "val_annotations.txt"
    if annotations.is_file():
        rows = [r.split("\t") for r in annotations.read_text().splitlines() if r.strip()]
        test = [(val_dir / "images" / r[0], _class_index(index, r[1], annotations)) for r in rows]
    else:
        folders = sorted(d for d in val_dir.iterdir() if d.is_dir())
        test = [(p, _class_index(index, d.name, val_dir)) for d in folders for p in _images(d)]
    if not train or not test:
        raise DataNotFoundError(f"tinyimagenet: no images under {train_dir} or {val_dir}")
    mean, std = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)
    return _Raw(_image_part(train), _image_part(test), len(classes), (3, 64), 8, True, mean, std)


def _class_index(index: dict[str, int], name: str, where: Path) -> int:
    if name not in index:
        raise ValueError(f"tinyimagenet: class {name!r} in {where} has no train/{name} folder")
    return index[name]


def _images(folder: Path) -> list[Path]:
    """Images of one class; the official layout nests them in an images/ subfolder."""
    if (folder / "images").is_dir():
        folder = folder / "images"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def _image_part(files: list[tuple[Path, int]]) -> _Part:
    paths = [p for p, _ in files]
    y = torch.tensor([c for _, c in files], dtype=torch.int64)
    return _Part(y, lambda idx: _read_images([paths[i] for i in idx.tolist()]))


def _read_images(paths: list[Path]) -> torch.Tensor:
    """Decode into one preallocated uint8 array; PIL drops the GIL, so threads overlap."""
    out = np.empty((len(paths), 64, 64, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, pixels in enumerate(pool.map(_read_rgb64, paths)):
            out[i] = pixels
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _read_rgb64(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")  # a few official images are grayscale
    if rgb.size != (64, 64):
        raise ValueError(f"tinyimagenet: {path} is {rgb.size[0]}x{rgb.size[1]}, expected 64x64")
    return np.asarray(rgb)
