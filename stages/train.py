"""The one training loop every stage uses (airbench style: one readable loop, data on the
device). A stage says only what differs: its step loss, an optional per-epoch hook (stage 2's
mask update), an optional stop test (SNL's budget), and the metadata it commits.

`Context` is what every stage sets up the same way (device, seed, data, loaders, timer);
`fit` runs the epochs with per-epoch checkpoints, so an interrupted stage resumes where it
stopped; `commit` writes the artifact, the one way every stage finishes."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .artifacts import save_artifact, save_state
from .config import DataConfig, OptimConfig, StageResult
from .data import DataBundle, load_data
from .invariants import check_result
from .loader import TensorLoader
from .store import discard_checkpoint, load_checkpoint

# Called once per epoch with metrics (epoch, epochs, loss, val_acc, ...): the orchestrator
# forwards these to Ray Tune; the CLI prints them.
EpochCallback = Callable[[dict[str, Any]], None]
StepLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Optimizer = tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]
M = TypeVar("M", bound=nn.Module)


DEVICE_TYPES = ("cpu", "cuda")


def device_problem(requested: str) -> str | None:
    """Why `requested` names no device a stage can train on (auto | cpu | cuda | cuda:N), or
    None; asked before Ray starts, so a typo is one line and never a `failed` record."""
    if requested == "auto":
        return None
    try:
        kind = torch.device(requested).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in DEVICE_TYPES:
        return f"must be auto, cpu, cuda or cuda:N (got {requested!r})"
    return None


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


def prepare(model: M, device: torch.device) -> M:
    """Move to the device; channels_last on CUDA for tensor-core convolutions."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def schedule(opt: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Step decay x0.1 at the milestones (fractions of the epochs)."""
    steps = sorted({max(1, round(f * cfg.epochs)) for f in cfg.milestones})
    return torch.optim.lr_scheduler.MultiStepLR(opt, steps, gamma=0.1)


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> Optimizer:
    """The group code's SGD with momentum, weight decay and step decay."""
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    return opt, schedule(opt, cfg)


class Timer:
    """Wall time of a stage's compute, reported so the orchestrator can measure its overhead.
    A resumed stage adds the seconds its checkpoint had already spent (`earlier`)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.started_at = time.time()
        self.earlier = 0.0

    @property
    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.start


@dataclass
class Context:
    """What every stage sets up the same way before it trains."""

    device: torch.device
    seed: int
    data: DataBundle
    train: TensorLoader  # shuffled and (unless told not to) augmented; generator checkpointed
    val: TensorLoader
    test: TensorLoader
    timer: Timer


def context(
    data_cfg: DataConfig,
    seed: int,
    batch_size: int,
    device: str,
    timer: Timer,
    augment: bool = True,
) -> Context:
    """Seed, data on the device, loaders. The validation split is carved by `seed`, so a
    stage and its teacher always agree on which images are held out.

    A last training batch of one image is dropped: BatchNorm cannot train on a single value
    per channel (a 1x1 map, e.g. ResNet18's layer4 on 8x8 digits) and raises."""
    dev = pick_device(device)
    torch.manual_seed(seed)
    data = load_data(data_cfg.dataset, data_cfg.root, data_cfg.val_fraction, seed, data_cfg.limit)
    lone = len(data.train) > 1 and len(data.train) % batch_size == 1
    return Context(
        dev,
        seed,
        data,
        TensorLoader(data.train, data, batch_size, True, dev, seed, lone, augment),
        TensorLoader(data.val, data, 512, train=False, device=dev),
        TensorLoader(data.test, data, 512, train=False, device=dev),
        timer,
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


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (for keeping the best epoch's weights)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


@dataclass
class Fit:
    """What `fit` leaves: the per-epoch history and the best-validation weights (masks are
    buffers, so they travel with them)."""

    history: list[dict[str, Any]]
    best_state: dict[str, torch.Tensor]
    best_acc: float


def fit(
    ctx: Context,
    model: nn.Module,
    step_loss: StepLoss,
    optim: OptimConfig,
    checkpoint: Path | None = None,
    on_epoch: EpochCallback | None = None,
    after_epoch: Callable[[int], dict[str, Any]] | None = None,
    stop: Callable[[], bool] | None = None,
    optimizer: Optimizer | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    load_extra: Callable[[dict[str, Any]], None] | None = None,
    selectable: Callable[[], bool] | None = None,
    keep_start: bool = False,
) -> Fit:
    """Train `model` for `optim.epochs` epochs of `step_loss(x, y)` (which runs the forward
    pass(es)); after each epoch run `after_epoch(epoch)` (its metrics join the row), evaluate,
    keep the best-validation weights, checkpoint, report. `stop()` ends training early, even
    mid-epoch (SNL stops once its count fits the budget). `extra_state`/`load_extra` carry a
    stage's own state (search scores) through the checkpoint, so a resume is exact.
    `selectable()` says whether this epoch's model may be picked as the best (an annealed
    search is over budget until its last search epoch); `keep_start` makes the starting
    weights a candidate too, so a fine-tune never hands on less than it was given.

    The checkpoint lives beside (not inside) the stage's artifact folder; `commit` drops it."""
    opt, sched = optimizer or make_optimizer(model, optim)
    rng = ctx.train.generator  # checkpointed: else a resume replays epoch 0's shuffles
    state = Fit([], cpu_state(model), -1.0)
    start = 0
    saved = None
    if checkpoint is not None and checkpoint.exists():
        try:  # a torn or rotten checkpoint must not fail its stage on every rerun
            saved = load_checkpoint(checkpoint, ctx.device)
        except torch.OutOfMemoryError:
            raise  # the device, not the file
        except Exception as e:
            discard_checkpoint(checkpoint, e)  # set aside with a warning; start over
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state = Fit(json.loads(saved["history"]), saved["best_state"], float(saved["best_acc"]))
        rng.set_state(saved["rng"].cpu())
        ctx.timer.earlier = float(saved.get("wall_s", 0.0))
        if load_extra is not None:
            load_extra(saved.get("extra", {}))
        start = int(saved["epoch"])
    elif keep_start:
        state.best_acc = evaluate(model, ctx.val)
    for epoch in range(start, optim.epochs):
        if stop is not None and stop():
            break
        model.train()
        total = torch.zeros((), device=ctx.device)
        steps = 0
        for x, y in ctx.train:
            with autocast(ctx.device):
                loss = step_loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().float()
            steps += 1
            if stop is not None and stop():
                break
        sched.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "epochs": optim.epochs}
        row["loss"] = float(total) / max(steps, 1)  # one host sync per epoch, not per step
        row.update(after_epoch(epoch) if after_epoch is not None else {})
        row["val_acc"] = evaluate(model, ctx.val)
        if row["val_acc"] > state.best_acc and (selectable is None or selectable()):
            state.best_acc, state.best_state = float(row["val_acc"]), cpu_state(model)
        state.history.append(row)
        if checkpoint is not None:
            save_state(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "best_state": state.best_state,
                    "best_acc": state.best_acc,
                    "history": json.dumps(state.history),
                    "epoch": epoch + 1,
                    "rng": rng.get_state(),
                    "wall_s": ctx.timer.seconds,
                    "extra": extra_state() if extra_state is not None else {},
                },
            )
        if on_epoch is not None:
            on_epoch(row)
    return state


def commit(
    ctx: Context,
    out_dir: Path,
    stage: int,
    key: str,
    cfg: Any,
    model: nn.Module,
    meta: dict[str, Any],
    history: list[dict[str, Any]],
    checkpoint: Path | None = None,
    provenance: dict[str, Any] | None = None,
) -> StageResult:
    """Measure the final model's validation and test accuracy, write the stage's artifact
    (weights, then metadata as the commit mark) and drop its epoch checkpoint: the one way
    every stage finishes. `provenance` (who ran it: sweep, run, Ray trial, Slurm job) is
    stored in the metadata but is not part of the content key. A result that breaks the
    invariants (stages/invariants.py) raises InvariantError and writes nothing."""
    meta = {
        "stage": stage,
        "key": key,
        "config": cfg,
        **meta,
        "val_acc": evaluate(model, ctx.val),
        "test_acc": evaluate(model, ctx.test),
        "provenance": provenance or {},
        "started_at": ctx.timer.started_at,
        "finished_at": time.time(),
        "history": history,
        "wall_s": ctx.timer.seconds,
        "hostname": socket.gethostname(),
        "device": str(ctx.device),
    }
    check_result(stage, meta, history, model)  # a result that breaks them is never committed
    save_artifact(out_dir, model.state_dict(), meta)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return StageResult.from_meta(meta, out_dir)
