"""Each model's shape as data: widths, blocks, strides, pooling and where every ReLU sits.

The one home of these facts. `stages.models` builds its torch modules from `ARCHITECTURES`,
and `relu_maps` walks the same specs with the convs' and pools' spatial arithmetic, so a
model's ReLU count is computed without torch (`senet validate` checks budgets against it
before any tensor exists) and cannot drift from the modules: tests/stages/test_catalog.py
traces every model and compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

KERNEL, PADDING = 3, 1  # every conv on the main path: 3x3, padding 1 ("same" at stride 1)
DOWNSAMPLE = 2  # the stride of the first block of each stage after the first
POOL = 2  # VGG's max-pool: kernel and stride


def conv_side(side: int, stride: int) -> int:
    """The side of a KERNEL x KERNEL conv's output (a 1x1 shortcut with the stride agrees)."""
    return (side + 2 * PADDING - KERNEL) // stride + 1


@dataclass(frozen=True)
class ReLUMap:
    """One ReLU layer's activation map for one image, in forward order."""

    shape: tuple[int, int, int]  # (C, H, W)
    is_stem: bool = False

    @property
    def count(self) -> int:
        c, h, w = self.shape
        return c * h * w


@dataclass(frozen=True)
class Block:
    """One residual block: input and output widths, and the stride of its first conv."""

    c_in: int
    c_out: int
    stride: int


def _stages(stem: int, blocks: tuple[int, ...], widths: tuple[int, ...]) -> list[list[Block]]:
    """Residual stages after a `stem`-wide conv: the first block of every stage but the first
    downsamples; a block's input is the previous block's output."""
    stages, c_in = [], stem
    for i, (n, c_out) in enumerate(zip(blocks, widths)):
        stage = []
        for j in range(n):
            stage.append(Block(c_in, c_out, DOWNSAMPLE if (j == 0 and i > 0) else 1))
            c_in = c_out
        stages.append(stage)
    return stages


@dataclass(frozen=True)
class ResNetArch:
    """Post-activation CIFAR ResNet: a 3x3 stride-1 stem conv and its (stem) ReLU, no max-pool;
    each basic block has relu1 after conv1 and relu2 after the residual sum."""

    blocks: tuple[int, ...]
    widths: tuple[int, ...]

    @property
    def stem(self) -> int:
        return self.widths[0]

    def stages(self) -> list[list[Block]]:
        return _stages(self.stem, self.blocks, self.widths)

    def relu_maps(self, side: int) -> list[ReLUMap]:
        side = conv_side(side, 1)
        maps = [ReLUMap((self.stem, side, side), is_stem=True)]
        for block in (b for stage in self.stages() for b in stage):
            side = conv_side(side, block.stride)
            maps += [ReLUMap((block.c_out, side, side))] * 2
        return maps


@dataclass(frozen=True)
class WideResNetArch:
    """Pre-activation WRN-depth-k (Zagoruyko & Komodakis): a stem conv without a ReLU; each
    block's relu1 sees its input, relu2 its conv1's output; one ReLU after the last block."""

    depth: int
    k: int
    stem: int = 16

    @property
    def blocks(self) -> tuple[int, ...]:
        return ((self.depth - 4) // 6,) * 3

    @property
    def widths(self) -> tuple[int, ...]:
        return (16 * self.k, 32 * self.k, 64 * self.k)

    def stages(self) -> list[list[Block]]:
        return _stages(self.stem, self.blocks, self.widths)

    def relu_maps(self, side: int) -> list[ReLUMap]:
        side = conv_side(side, 1)
        maps = []
        for block in (b for stage in self.stages() for b in stage):
            maps.append(ReLUMap((block.c_in, side, side)))
            side = conv_side(side, block.stride)
            maps.append(ReLUMap((block.c_out, side, side)))
        return maps + [ReLUMap((self.widths[-1], side, side))]


@dataclass(frozen=True)
class VGGArch:
    """CIFAR VGG-BN: blocks of conv-bn-relu, a max-pool after each but the last `unpooled`
    (VGG16 at 32x32 runs blocks 4 and 5 both at 4x4); the first ReLU is the stem."""

    blocks: tuple[tuple[int, ...], ...]
    unpooled: int = 2

    def pooled(self, block: int) -> bool:
        """Whether a max-pool follows block number `block`."""
        return block < len(self.blocks) - self.unpooled

    def relu_maps(self, side: int) -> list[ReLUMap]:
        maps: list[ReLUMap] = []
        for i, widths in enumerate(self.blocks):
            for c in widths:
                side = conv_side(side, 1)
                maps.append(ReLUMap((c, side, side), is_stem=not maps))
            if self.pooled(i):
                side //= POOL
        return maps


Architecture = ResNetArch | WideResNetArch | VGGArch

ARCHITECTURES: dict[str, Architecture] = {
    "resnet18": ResNetArch((2, 2, 2, 2), (64, 128, 256, 512)),
    "resnet20": ResNetArch((3, 3, 3), (16, 32, 64)),
    "vgg16_bn": VGGArch(((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))),
    "wrn22_8": WideResNetArch(22, 8),
}


def relu_maps(model: str, side: int, include_stem: bool = True) -> list[ReLUMap]:
    """`model`'s ReLU layers on side x side images (any number of channels: only the stem
    conv sees them), as a forward pass would trace them."""
    if model not in ARCHITECTURES:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(ARCHITECTURES)}")
    maps = ARCHITECTURES[model].relu_maps(side)
    if side < 1 or any(m.shape[1] < 1 for m in maps):
        raise ValueError(f"{model} cannot run on {side}x{side} images: a map shrinks to nothing")
    return [m for m in maps if include_stem or not m.is_stem]


def relu_count(model: str, side: int, include_stem: bool = True) -> int:
    """The all-ReLU count of `model` on side x side images."""
    return sum(m.count for m in relu_maps(model, side, include_stem))
