"""Exported models: a finished stage artifact as a self-contained file set that PyTorch and
stages/ alone can load, outside any workdir, sweep or orchestrator.

An export folder holds `model.pt` (the state dict; each PartialReLU's mask is a buffer in it)
and `export.json` (written last: what the model is, what it was trained on, how its inputs are
normalised, its ReLU counts per layer and its accuracies). `load_exported` rebuilds the
partial-ReLU model from those two files:

    from stages.data import load_data
    from stages.export import load_exported

    e = load_exported("exported/budget1500-3f2a9c0d1e2b4a5c")
    d = e.info["data"]
    test = load_data(d["dataset"], d["root"], d["val_fraction"], d["seed"], d["limit"]).test
    print((e.predict(test.x) == test.y).double().mean().item(), e.info["test_acc"])  # equal
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .artifacts import WEIGHTS, atomic_write_bytes, file_digest, load_state, read_meta, save_state
from .data import load_data
from .models import build_model
from .partial_relu import init_masks, model_relu_count, partial_relus
from .stage1 import data_config

INFO = "export.json"
FORMAT = "senet-export"
VERSION = 1
EVAL_BATCH = 512  # the batch the stages evaluate with (stages.train.context): same sums


class ExportError(ValueError):
    """An artifact that cannot be exported, or a folder that is not an export: one line."""


@dataclass
class Exported:
    """A loaded export: the partial-ReLU model (eval mode) and its export.json."""

    model: nn.Module
    info: dict[str, Any]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images as the model saw them in training: uint8 (N, C, H, W) in 0..255 (float
        images are taken as already in [0, 1]), scaled and normalised per channel."""
        device = next(self.model.parameters()).device
        x = images.to(device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        norm = self.info["normalization"]
        mean = torch.tensor(norm["mean"], device=device).view(1, -1, 1, 1)
        std = torch.tensor(norm["std"], device=device).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
        """Predicted classes (CPU int64) of raw images, in batches."""
        self.model.eval()
        out = [self.model(self.normalize(x)).argmax(dim=1).cpu() for x in images.split(batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def export_name(info: dict[str, Any]) -> str:
    """The folder name of an export: its budget (or stage) and its key."""
    budget = info.get("budget")
    return (
        f"budget{budget}-{info['key']}"
        if budget is not None
        else f"stage{info['stage']}-{info['key']}"
    )


@functools.lru_cache(maxsize=8)
def _normalization(
    dataset: str, root: str | None, val_fraction: float, seed: int, limit: int | None
) -> dict[str, list[float]]:
    """The per-channel mean and std training used: fixed for some datasets, measured on the
    seed's train split for others, so they are read off the data the way training did."""
    bundle = load_data(dataset, root, val_fraction, seed, limit)
    return {"mean": [float(m) for m in bundle.mean], "std": [float(s) for s in bundle.std]}


def export_artifact(
    folder: Path, stage1_folder: Path, out: Path, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the committed artifact in `folder` (whose teacher is `stage1_folder`) as an export
    in `out`: weights first, export.json last. Its ReLU count is recounted from the masks and
    must equal the recorded one. `extra` joins the info (e.g. the sweep that chose it).
    Returns the info."""
    meta, meta1 = read_meta(Path(folder)), read_meta(Path(stage1_folder))
    if meta is None or meta1 is None:
        raise ExportError(f"{folder if meta is None else stage1_folder}: not a finished artifact")
    state = load_state(Path(folder) / WEIGHTS)
    model = build_model(meta1["model"], meta1["num_classes"], meta1["in_channels"])
    init_masks(model, meta1["input_size"], meta1["in_channels"])
    model.load_state_dict(state)
    total, per_layer = model_relu_count(model, meta1["include_stem"])
    if total != meta["relu_count"]:
        raise ExportError(
            f"{folder}: its masks keep {total} ReLUs, its meta.json says {meta['relu_count']}"
        )
    data = data_config(meta1)
    seed = int(meta1["seed"])
    norm = _normalization(data.dataset, data.root, data.val_fraction, seed, data.limit)
    info = {
        "format": FORMAT,
        "format_version": VERSION,
        "key": meta["key"],
        "stage": meta["stage"],
        "sweep": (meta.get("provenance") or {}).get("sweep"),
        "parent_key": meta.get("parent_key"),
        "stage1_key": meta1["key"],
        "model": meta1["model"],
        "dataset": meta1["dataset"],
        "input_size": meta1["input_size"],
        "in_channels": meta1["in_channels"],
        "num_classes": meta1["num_classes"],
        "include_stem": meta1["include_stem"],
        "budget": meta.get("budget"),
        "relu_count": total,
        "relu_total": meta1["relu_total"],
        "relu_layers": per_layer,  # {layer: kept ReLUs}, forward order
        "val_acc": meta["val_acc"],
        "test_acc": meta["test_acc"],
        "normalization": norm,
        # what rebuilds the splits: load_data(dataset, root, val_fraction, seed, limit)
        "data": {**dataclasses.asdict(data), "seed": seed},
        "config": meta["config"],
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    out = Path(out)
    save_state(out / WEIGHTS, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    info["files"] = {WEIGHTS: file_digest(out / WEIGHTS)}
    atomic_write_bytes(out / INFO, json.dumps(info, indent=2).encode())
    return info


def load_exported(path: Path | str, device: str | torch.device = "cpu") -> Exported:
    """The partial-ReLU model of an export folder, masks installed, in eval mode; its ReLU
    count is checked against export.json."""
    path = Path(path)
    try:
        info = json.loads((path / INFO).read_text())
    except FileNotFoundError:
        raise ExportError(
            f"{path}: no {INFO}; not an export (or one still being written)"
        ) from None
    except ValueError as e:
        raise ExportError(f"{path / INFO}: unreadable ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ExportError(f"{path / INFO}: not a {FORMAT} file")
    if int(info.get("format_version", 0)) > VERSION:
        raise ExportError(
            f"{path / INFO}: format version {info['format_version']} is newer than this code's {VERSION}"
        )
    model = build_model(info["model"], info["num_classes"], info["in_channels"])
    init_masks(model, info["input_size"], info["in_channels"])
    model.load_state_dict(load_state(path / WEIGHTS, device))
    model.to(device).eval()
    total, _ = model_relu_count(model, info["include_stem"])
    if total != info["relu_count"] or not partial_relus(model):
        raise ExportError(
            f"{path}: its masks keep {total} ReLUs, export.json says {info['relu_count']}"
        )
    return Exported(model, info)
