"""The IDX files of MNIST and Fashion-MNIST, read with numpy alone.

IDX is a big-endian header (a magic number, then one uint32 per dimension) followed by the raw
uint8 array. Both datasets ship as the same four files, gzipped or not; every check below turns
a wrong, truncated or mixed-up file into one line naming the file, not a reshape error later.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

# The four official files: (images, labels) of the train split, then of the test split.
IDX_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
# Magic numbers: 0x0000 0x08 (uint8 elements), then the number of dimensions.
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


def find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Each official file as found in `folder` (raw preferred, it needs no inflating, else
    `.gz`), and the names of those found in neither form."""
    found, missing = {}, []
    for name in (f for pair in IDX_FILES for f in pair):
        path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    return found, missing


def read_idx_pair(
    images: Path, labels: Path, side: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, side, side) uint8 and their labels (N,) int64, checked to belong together."""
    x = read_images(images, side)
    y = read_labels(labels, num_classes)
    if len(x) != len(y):
        raise ValueError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def read_images(path: Path, side: int) -> np.ndarray:
    """An idx3 image file as (N, side, side) uint8."""
    buf = _read(path)
    n, rows, cols = _header(path, buf, _IMAGES_MAGIC, "images (idx3)")
    if (rows, cols) != (side, side):
        raise ValueError(f"{path}: images are {rows}x{cols}, expected {side}x{side}")
    _check_size(path, buf, 16, n * rows * cols)
    return np.frombuffer(buf, np.uint8, offset=16).reshape(n, rows, cols).copy()


def read_labels(path: Path, num_classes: int) -> np.ndarray:
    """An idx1 label file as (N,) int64, every label in 0..num_classes-1."""
    buf = _read(path)
    (n,) = _header(path, buf, _LABELS_MAGIC, "labels (idx1)")
    _check_size(path, buf, 8, n)
    y = np.frombuffer(buf, np.uint8, offset=8).astype(np.int64)
    if n and int(y.max()) >= num_classes:
        bad = int(np.argmax(y >= num_classes))
        raise ValueError(
            f"{path}: label {int(y[bad])} at index {bad} is outside 0..{num_classes - 1}"
        )
    return y


def _read(path: Path) -> bytes:
    """The file's bytes, inflated if it ends in .gz; a damaged archive is one ValueError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: damaged gzip file ({e})") from None


def _header(path: Path, buf: bytes, magic: int, what: str) -> tuple[int, ...]:
    """The dimensions after a magic number that must be `magic` (its low byte = their count)."""
    ndim = magic & 0xFF
    if len(buf) < 4 * (1 + ndim):
        raise ValueError(
            f"{path}: {len(buf)} bytes, shorter than the {4 * (1 + ndim)}-byte IDX header "
            "(truncated?)"
        )
    head = np.frombuffer(buf, ">u4", count=1 + ndim)
    if int(head[0]) != magic:
        raise ValueError(
            f"{path}: magic number 0x{int(head[0]):08x}, expected 0x{magic:08x}: "
            f"not an IDX file of {what}"
        )
    return tuple(int(d) for d in head[1:])


def _check_size(path: Path, buf: bytes, header: int, payload: int) -> None:
    if len(buf) != header + payload:
        raise ValueError(
            f"{path}: {len(buf)} bytes, but its header promises {header} + {payload} = "
            f"{header + payload} ({'truncated' if len(buf) < header + payload else 'extra bytes'})"
        )
