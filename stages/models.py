"""The CNNs SENet linearises, CIFAR variants, with every ReLU a PartialReLU.

Each model returns logits from `forward` and, from `forward_features`, also the outputs of its
residual stages (blocks for VGG): stage 3's post-activation alignment loss uses those.
Each PartialReLU knows the conv that feeds it (`source`), which stage 1's pruning reads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import catalog
from .partial_relu import PartialReLU


class BasicBlock(nn.Module):
    """Post-activation ResNet basic block: relu1 after conv1, relu2 after the residual sum."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = PartialReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu2 = PartialReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stride-1 stem, no max-pool (ResNet18: widths 64..512; ResNet20: 16..64)."""

    def __init__(
        self, blocks: list[int], widths: list[int], num_classes: int, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = PartialReLU(source="conv1", is_stem=True)
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, (n, c_out) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(c_in, c_out, 2 if (j == 0 and i > 0) else 1))
                c_in = c_out
            stages.append(nn.Sequential(*layers))
        self.layers = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        for name, mod in self.named_modules():
            if isinstance(mod, BasicBlock):
                mod.relu1.source = f"{name}.conv1"
                mod.relu2.source = f"{name}.conv2"

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.relu(self.bn1(self.conv1(x)))
        feats = []
        for stage in self.layers:
            out = stage(out)
            feats.append(out)
        return self.fc(torch.flatten(self.pool(out), 1)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


class PreActBlock(nn.Module):
    """Wide-ResNet pre-activation block: bn-relu-conv twice; relu1 sees the block's input."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = PartialReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = PartialReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        return out + (x if self.shortcut is None else self.shortcut(act))


class WideResNet(nn.Module):
    """Pre-activation WRN-depth-k (Zagoruyko & Komodakis); the stem conv has no ReLU."""

    def __init__(self, depth: int, k: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        groups: list[nn.Module] = []
        c_in = widths[0]
        for i, c_out in enumerate(widths[1:]):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(c_in, c_out, 2 if (j == 0 and i > 0) else 1))
                c_in = c_out
            groups.append(nn.Sequential(*blocks))
        self.layers = nn.ModuleList(groups)
        self.bn = nn.BatchNorm2d(c_in)
        self.relu = PartialReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        prev = "conv1"  # the conv whose output the next relu1 sees
        for name, mod in self.named_modules():
            if isinstance(mod, PreActBlock):
                mod.relu1.source = prev
                mod.relu2.source = f"{name}.conv1"
                prev = f"{name}.conv2"
        self.relu.source = prev

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.conv1(x)
        feats = []
        for group in self.layers:
            out = group(out)
            feats.append(out)
        out = self.relu(self.bn(out))
        return self.fc(torch.flatten(self.pool(out), 1)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


# CIFAR VGG16-BN: five conv blocks, no pooling after the last (so blocks 4 and 5 both run at
# 4x4 for 32x32 inputs), global average pool, one linear layer.
VGG16_BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


class VGG(nn.Module):
    def __init__(self, blocks: list[list[int]], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        c_in = in_channels
        for i, widths in enumerate(blocks):
            layers: list[nn.Module] = []
            for c_out in widths:
                layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)]
                layers.append(PartialReLU(is_stem=(i == 0 and len(layers) == 2)))
                c_in = c_out
            if i < len(blocks) - 2:
                layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
        self.layers = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        for s, stage in enumerate(self.layers):
            for j, mod in enumerate(stage):
                if isinstance(mod, PartialReLU):
                    mod.source = f"layers.{s}.{j - 2}"

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.layers:
            x = stage(x)
            feats.append(x)
        return self.fc(torch.flatten(self.pool(x), 1)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet18": lambda nc, ic: ResNet([2, 2, 2, 2], [64, 128, 256, 512], nc, ic),
    "resnet20": lambda nc, ic: ResNet([3, 3, 3], [16, 32, 64], nc, ic),
    "wrn22_8": lambda nc, ic: WideResNet(22, 8, nc, ic),
    "vgg16_bn": lambda nc, ic: VGG(VGG16_BLOCKS, nc, ic),
}


assert tuple(sorted(MODELS)) == catalog.MODELS, "stages.catalog.MODELS names every model"


def build_model(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A fresh all-ReLU model by its command-line name (masks are set by `init_masks`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes, in_channels)
