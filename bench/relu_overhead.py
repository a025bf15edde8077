"""What a partial ReLU costs per training step, and what the data path costs, in one run (a
benchmark, not a test).

Three copies of one model (same weights) train on the same batch:
    relu     every PartialReLU with an all-ones mask: the fast path, F.relu
    nn.ReLU  every PartialReLU replaced by torch.nn.ReLU: the fast path must cost nothing
    partial  masks keeping ~10% of the positions (mode "partial"): what stages 2 and 3 train
and the data path (TensorLoader with crop + flip, uint8 on the device) is timed alone against
the model step alone. Rounds interleave the variants (rotating their order) after a warm-up;
times are medians over rounds, ratios medians of the per-round ratios.
Target: partial ReLU costs at most 10% more per step than the all-ReLU model.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.data import DataBundle, Split  # noqa: E402
from stages.loader import TensorLoader  # noqa: E402
from stages.models import build_model  # noqa: E402
from stages.partial_relu import init_masks, partial_relus  # noqa: E402
from stages.train import autocast, pick_device, prepare  # noqa: E402

TARGET = 1.10  # partial / relu step time


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def with_nn_relu(model: nn.Module) -> nn.Module:
    """A copy whose PartialReLUs are plain torch.nn.ReLU modules."""
    out = copy.deepcopy(model)
    for name, _ in partial_relus(out):
        parent, _, leaf = name.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, leaf, nn.ReLU())
    return out


def with_partial_masks(model: nn.Module, keep: float, seed: int = 0) -> nn.Module:
    """A copy whose masks keep about `keep` of every layer's positions (never all or none)."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    for _, mod in partial_relus(out):
        mask = (torch.rand(mod.mask.shape, generator=g) < keep).float()
        mask.view(-1)[0], mask.view(-1)[-1] = 1.0, 0.0
        mod.set_mask(mask)
        assert mod._mode == "partial"
    return out


def sgd_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    """One training step as the stages take it: autocast on CUDA, zero_grad(set_to_none)."""
    with autocast(x.device):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def step_timer(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int
) -> Callable[[], float]:
    """Seconds per SGD step of `model` on one fixed batch, as the stages train (autocast on
    CUDA, zero_grad(set_to_none), one optimizer step)."""
    device = x.device
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()

    def run() -> float:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            sgd_step(model, opt, x, y)
        sync(device)
        return (time.perf_counter() - t0) / steps

    return run


def data_timer(loader: TensorLoader, device: torch.device) -> Callable[[], float]:
    """Seconds per batch of one pass over the loader (gather, crop, flip, normalise)."""

    def run() -> float:
        sync(device)
        t0 = time.perf_counter()
        n = 0
        for xb, _ in loader:
            n += 1
            if device.type == "cpu":
                xb.sum()  # touch the batch (a GPU batch is forced by the sync)
        sync(device)
        return (time.perf_counter() - t0) / max(n, 1)

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="steps per round (cpu 1, cuda 20)")
    ap.add_argument("--rounds", type=int, default=25, help="interleaved rounds (25)")
    ap.add_argument("--keep", type=float, default=0.1, help="fraction of ReLUs kept (0.1)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = ap.parse_args()

    device = pick_device(args.device)
    steps = args.steps or (20 if device.type == "cuda" else 1)
    size, bs = args.input_size, args.batch_size
    torch.manual_seed(0)
    base = build_model(args.model, 10, 3)
    init_masks(base, size, 3)
    models = {
        "relu": base,
        "nn.ReLU": with_nn_relu(base),
        "partial": with_partial_masks(base, args.keep),
    }
    kept = sum(int(m.mask.sum()) for _, m in partial_relus(models["partial"]))
    total = sum(m.mask.numel() for _, m in partial_relus(models["partial"]))
    x = torch.randn(bs, 3, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (bs,), device=device)
    timers = {k: step_timer(prepare(m, device), x, y, steps) for k, m in models.items()}

    n_img = bs * steps
    split = Split(
        torch.randint(0, 256, (n_img, 3, size, size), dtype=torch.uint8),
        torch.randint(0, 10, (n_img,)),
    )
    bundle = DataBundle(
        "bench", 10, 3, size, split, split, split, (0.5,) * 3, (0.25,) * 3, crop_pad=4, flip=True
    )
    loader = TensorLoader(split, bundle, bs, train=True, device=device, seed=0)
    timers["data"] = data_timer(loader, device)

    names = list(timers)
    for name in names:  # warm-up: allocator, oneDNN/cuDNN plans, first-call paths
        timers[name]()
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(timers[name]())
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(a: str, b: str) -> float:
        """Median of the per-round ratios: each round's pair ran back to back, so a load
        change on a shared machine hits both sides of most pairs."""
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    threads = torch.get_num_threads() if device.type == "cpu" else None
    print(
        f"{args.model} {size}x{size}, batch {bs}, {steps} step(s) per round x {args.rounds} rounds, "
        f"device {device}{f' ({threads} threads)' if threads else ''}, torch {torch.__version__}"
    )
    print(f"partial masks keep {kept}/{total} ReLUs ({kept / total:.1%})")
    best = {k: min(v) for k, v in times.items()}  # the least-disturbed round: a cross-check
    print(f"{'':<9} {'ms/step':>9} {'images/s':>9} {'vs relu':>8} {'min ms':>9}")
    for name in names:
        print(
            f"{name:<9} {1000 * med[name]:>9.2f} {bs / med[name]:>9.0f} "
            f"{ratio(name, 'relu'):>8.3f} {1000 * best[name]:>9.2f}"
        )
    partial, fast, data = ratio("partial", "relu"), ratio("relu", "nn.ReLU"), ratio("data", "relu")
    verdict = "met" if partial <= TARGET else "MISSED"
    print(f"partial / relu step time:   {partial:.3f}  (target <= {TARGET:.2f}: {verdict})")
    print(f"relu fast path / nn.ReLU:   {fast:.3f}  (should be ~1.00)")
    print(f"data batch / model step:    {data:.3f}  (data path alone vs model step alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
