"""Why the zero-ReLU floor of the fidelity table sits far below logistic regression (a one-off
measurement, not a test).

With every ReLU gone, ResNet-20 is one linear map of the pixels, like logistic regression, yet
the fidelity recipe trains it to about 60 % on Fashion-MNIST where logistic regression gets
83 %. The suspect is not the training but the head: a convolution stack is (up to its zero
padding and strides) translation-equivariant, and the global average pool then sums over
positions, so the linear map it can express weighs every pixel of a channel nearly alike. This
trains the same zero-ReLU ResNet-20 twice, same data, recipe and seed: with its global average
pool, and with the pool replaced by a flatten of the last 64x7x7 map (a full linear read-out).
Measured (docs/fidelity.md): with its own pool head it reaches 78.5 % on this recipe, so the
head was not the cause; the fidelity table's short teacher-initialised stages were.

    .venv/bin/python bench/linear_head.py            # 5,000 images, 15 epochs, batch 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.data import load_data  # noqa: E402
from stages.models import build_model  # noqa: E402
from stages.partial_relu import PartialReLU  # noqa: E402


def zero_relu_resnet20(head: str, num_classes: int, channels: int, size: int) -> nn.Module:
    """ResNet-20 with every PartialReLU an identity (budget 0), with its own or a flat head."""
    model = build_model("resnet20", num_classes, channels)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, PartialReLU):
                setattr(module, name, nn.Identity())
    if head == "flatten":
        with torch.no_grad():
            features = model.bn1(model.conv1(torch.zeros(1, channels, size, size)))
            for stage in model.layers:
                features = stage(features)
        model.pool = nn.Identity()
        model.fc = nn.Linear(features.numel(), num_classes)
    return model


def train_and_test(
    model: nn.Module, data: dict[str, torch.Tensor], epochs: int, batch: int
) -> float:
    """SGD 0.05, momentum 0.9, wd 5e-4, cosine over all steps; test accuracy at the end."""
    x, y = data["x"], data["y"]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(y) // batch))
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        right = sum(
            int((model(data["tx"][i : i + 500]).argmax(1) == data["ty"][i : i + 500]).sum())
            for i in range(0, len(data["ty"]), 500)
        )
    return right / len(data["ty"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--limit", type=int, default=5000, help="training (and test) images")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = load_data(args.dataset, limit=args.limit, val_fraction=0.05, seed=0)
    mean = torch.tensor(d.mean).view(1, -1, 1, 1)
    std = torch.tensor(d.std).view(1, -1, 1, 1)
    data = {
        "x": (d.train.x.float() / 255 - mean) / std,
        "y": d.train.y,
        "tx": (d.test.x.float() / 255 - mean) / std,
        "ty": d.test.y,
    }
    print(f"{args.dataset}: {len(d.train.y)} training, {len(d.test.y)} test images")
    for head in ("pool", "flatten"):
        torch.manual_seed(0)
        model = zero_relu_resnet20(head, d.num_classes, d.in_channels, d.input_size)
        t = time.perf_counter()
        acc = train_and_test(model, data, args.epochs, args.batch_size)
        print(
            f"zero-ReLU ResNet-20, {head:7s} head: test {acc:.4f}  ({time.perf_counter() - t:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
