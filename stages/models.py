"""The CNNs SENet linearises, CIFAR variants, with every ReLU a PartialReLU.

Each model returns logits from `forward` and, from `forward_features`, also the outputs of its
residual stages (blocks for VGG): stage 3's post-activation alignment loss uses those.
Each PartialReLU knows the conv that feeds it (`source`), which stage 1's pruning reads.
Widths, blocks, strides and pooling come from stages.architecture, which also computes the
ReLU counts without torch; nothing here restates them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from .architecture import (
    ARCHITECTURES,
    KERNEL,
    PADDING,
    POOL,
    ResNetArch,
    VGGArch,
    WideResNetArch,
)
from .partial_relu import PartialReLU


class Net(nn.Module):
    """What every model here is: logits from `forward`, and from `forward_features` the
    logits with the outputs of its residual stages (stage 3 aligns those with the teacher's)."""

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


class BasicBlock(nn.Module):
    """Post-activation ResNet basic block: relu1 after conv1, relu2 after the residual sum."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, KERNEL, stride, PADDING, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = PartialReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, KERNEL, 1, PADDING, bias=False)
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
        y: torch.Tensor = self.relu2(out + self.shortcut(x))
        return y


def _residual_stages(
    block: Callable[[int, int, int], nn.Module], arch: ResNetArch | WideResNetArch
) -> nn.ModuleList:
    """One nn.Sequential of `block`s per stage of the spec."""
    return nn.ModuleList(
        nn.Sequential(*(block(b.c_in, b.c_out, b.stride) for b in stage)) for stage in arch.stages()
    )


class ResNet(Net):
    """CIFAR ResNet (see ResNetArch): stem conv and ReLU, stages of basic blocks."""

    def __init__(self, arch: ResNetArch, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, arch.stem, KERNEL, 1, PADDING, bias=False)
        self.bn1 = nn.BatchNorm2d(arch.stem)
        self.relu = PartialReLU(source="conv1", is_stem=True)
        self.layers = _residual_stages(BasicBlock, arch)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(arch.widths[-1], num_classes)
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


class PreActBlock(nn.Module):
    """Wide-ResNet pre-activation block: bn-relu-conv twice; relu1 sees the block's input."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = PartialReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, KERNEL, stride, PADDING, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = PartialReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, KERNEL, 1, PADDING, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out: torch.Tensor = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        return out + (x if self.shortcut is None else self.shortcut(act))


class WideResNet(Net):
    """Pre-activation WRN-depth-k (see WideResNetArch); the stem conv has no ReLU."""

    def __init__(self, arch: WideResNetArch, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, arch.stem, KERNEL, 1, PADDING, bias=False)
        self.layers = _residual_stages(PreActBlock, arch)
        self.bn = nn.BatchNorm2d(arch.widths[-1])
        self.relu = PartialReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(arch.widths[-1], num_classes)
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


class VGG(Net):
    """CIFAR VGG-BN (see VGGArch): conv blocks, global average pool, one linear layer."""

    def __init__(self, arch: VGGArch, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        c_in = in_channels
        for i, widths in enumerate(arch.blocks):
            layers: list[nn.Module] = []
            for c_out in widths:
                conv = nn.Conv2d(c_in, c_out, KERNEL, 1, PADDING, bias=False)
                layers += [conv, nn.BatchNorm2d(c_out)]
                layers.append(PartialReLU(is_stem=(i == 0 and len(layers) == 2)))
                c_in = c_out
            if arch.pooled(i):
                layers.append(nn.MaxPool2d(POOL))
            stages.append(nn.Sequential(*layers))
        self.layers = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        for s, stage in enumerate(stages):
            for j, mod in enumerate(stage.children()):
                if isinstance(mod, PartialReLU):
                    mod.source = f"layers.{s}.{j - 2}"

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.layers:
            x = stage(x)
            feats.append(x)
        return self.fc(torch.flatten(self.pool(x), 1)), feats


_BUILDERS: dict[type, Callable[..., Net]] = {
    ResNetArch: ResNet,
    WideResNetArch: WideResNet,
    VGGArch: VGG,
}

# (num_classes, in_channels) -> a fresh model, by name; stages.catalog.MODELS names the same.
MODELS: dict[str, Callable[[int, int], Net]] = {
    name: partial(_BUILDERS[type(arch)], arch) for name, arch in ARCHITECTURES.items()
}


def build_model(name: str, num_classes: int = 10, in_channels: int = 3) -> Net:
    """A fresh all-ReLU model by its command-line name (masks are set by `init_masks`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes, in_channels)
