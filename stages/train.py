"""The one training loop every stage uses: device choice, optimiser, epochs, evaluation,
per-epoch checkpoints for resuming and a progress callback."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .artifacts import load_state, save_artifact, save_state
from .config import OptimConfig, StageResult
from .data import DataBundle, TensorLoader

# Called once per epoch with metrics (epoch, epochs, loss, val_acc, ...): the orchestrator
# forwards these to Ray Tune; the CLI prints them.
EpochCallback = Callable[[dict[str, Any]], None]


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full precision on CPU, where bf16 is slower, not faster."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to the device; channels_last on CUDA for tensor-core convolutions."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(
    model: nn.Module, cfg: OptimConfig, params: Any = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD(
        model.parameters() if params is None else params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    steps = sorted({max(1, round(f * cfg.epochs)) for f in cfg.milestones})
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, steps, gamma=0.1)


def loaders(
    data: DataBundle, batch_size: int, device: torch.device, seed: int
) -> tuple[TensorLoader, TensorLoader, TensorLoader]:
    """Train (shuffled, augmented), validation and test loaders, data resident on `device`.

    A last training batch of one image is dropped: BatchNorm cannot train on a single value
    per channel (a 1x1 map, e.g. ResNet18's layer4 on 8x8 digits) and raises."""
    lone = len(data.train) > 1 and len(data.train) % batch_size == 1
    return (
        TensorLoader(
            data.train, data, batch_size, train=True, device=device, seed=seed, drop_last=lone
        ),
        TensorLoader(data.val, data, 512, train=False, device=device),
        TensorLoader(data.test, data, 512, train=False, device=device),
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader: TensorLoader) -> float:
    """Top-1 accuracy in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    for x, y in loader:
        with autocast(device):
            pred = model(x).argmax(dim=1)
        correct += int((pred == y).sum())
        total += y.numel()
    return correct / max(total, 1)


def train_epoch(
    model: nn.Module,
    loader: TensorLoader,
    opt: torch.optim.Optimizer,
    step_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> float:
    """One pass over the training data; `step_loss(x, y)` runs the forward pass(es)."""
    model.train()
    device = next(model.parameters()).device
    total = torch.zeros((), device=device)
    n = 0
    for x, y in loader:
        with autocast(device):
            loss = step_loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach().float()
        n += 1
    return float(total) / max(n, 1)  # one host sync per epoch, not per step


class EpochLoop:
    """Epoch bookkeeping shared by the stages: scheduler step, best-validation weights (masks
    are buffers, so they travel with them), history, progress callback, and a per-epoch
    checkpoint file so that an interrupted stage resumes where it stopped.

    The checkpoint lives beside (not inside) the stage's artifact folder and is removed once
    the artifact is committed."""

    def __init__(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        epochs: int,
        checkpoint: Path | None = None,
        on_epoch: EpochCallback | None = None,
        rng: torch.Generator | None = None,
    ) -> None:
        self.model, self.opt, self.sched, self.epochs = model, opt, sched, epochs
        self.rng = rng  # the train loader's generator: checkpointed so a resume is exact
        self.path = Path(checkpoint) if checkpoint is not None else None
        self.on_epoch = on_epoch
        self.best_acc = -1.0
        self.best_state: dict[str, torch.Tensor] = cpu_state(model)
        self.history: list[dict[str, Any]] = []
        self.start = 0

    def resume(self, device: torch.device) -> int:
        """Load the checkpoint if there is one; returns the first epoch still to run."""
        if self.path is None or not self.path.exists():
            return 0
        state = load_state(self.path, device)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.best_state = state["best_state"]
        self.best_acc = float(state["best_acc"])
        self.history = json.loads(state["history"])
        if self.rng is not None and "rng" in state:
            # Without it the resumed epochs would replay epoch 0's shuffles and crops.
            self.rng.set_state(state["rng"].cpu())
        self.start = int(state["epoch"])
        return self.start

    def end_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Call after evaluating: `metrics` must hold val_acc."""
        self.sched.step()
        if metrics["val_acc"] > self.best_acc:
            self.best_acc = float(metrics["val_acc"])
            self.best_state = cpu_state(self.model)
        row = {"epoch": epoch + 1, "epochs": self.epochs, **metrics}
        self.history.append(row)
        if self.path is not None:
            save_state(
                self.path,
                {
                    "model": self.model.state_dict(),
                    "opt": self.opt.state_dict(),
                    "sched": self.sched.state_dict(),
                    "best_state": self.best_state,
                    "best_acc": self.best_acc,
                    "history": json.dumps(self.history),
                    "epoch": epoch + 1,
                    **({} if self.rng is None else {"rng": self.rng.get_state()}),
                },
            )
        if self.on_epoch is not None:
            self.on_epoch(row)

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class Timer:
    """Wall time of a stage's compute, reported so the orchestrator can measure its overhead."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.started_at = time.time()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (for keeping the best epoch's weights)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def commit(
    out_dir: Path,
    stage: int,
    key: str,
    cfg: Any,
    model: nn.Module,
    meta: dict[str, Any],
    loop: EpochLoop,
    timer: Timer,
    device: torch.device,
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    """Write the stage's artifact (weights, then metadata as the commit mark) and drop its
    epoch checkpoint: the one way every stage finishes. `provenance` (who ran it: sweep, run,
    Ray trial, Slurm job) is stored in the metadata but is not part of the content key."""
    meta = {
        "stage": stage,
        "key": key,
        "config": cfg,
        **meta,
        "provenance": provenance or {},
        "started_at": timer.started_at,
        "finished_at": time.time(),
        "history": loop.history,
        "wall_s": timer.seconds,
        "hostname": socket.gethostname(),
        "device": str(device),
    }
    save_artifact(out_dir, model.state_dict(), meta)
    loop.clear()
    return StageResult.from_meta(meta, out_dir)
