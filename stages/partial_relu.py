"""Partial ReLU: the unit whose count SENet minimises.

y = m * relu(x) + (1 - m) * x with a binary mask m over the activation map. Positions with
m = 0 are linear, so they cost nothing in private inference; the ReLU count of a layer is
sum(m) over its (C, H, W) map. The mask is always stored at pixel resolution, so channel
granularity is just a mask that is constant over (H, W), and one count rule serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .catalog import GRANULARITIES


class _FloorMax(torch.autograd.Function):
    """y = max(x, floor), floor 0 where a ReLU is kept and -inf where the position is linear.

    Equal to m * relu(x) + (1 - m) * x, in one elementwise kernel forward and a compare and a
    select backward; autograd through x + m * relu(-x) took four and three, and made a partial
    ReLU cost about 5x an F.relu. The gradient is ReLU's where kept (0 at x = 0, as F.relu)
    and 1 where linear. Saves only the output, which the next conv keeps anyway.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
        y = torch.maximum(x, floor)
        ctx.save_for_backward(y, floor)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        y, floor = ctx.saved_tensors
        return torch.where(y > floor, grad, 0.0), None


class PartialReLU(nn.Module):
    """ReLU with a (C, H, W) keep-mask buffer.

    The mask is empty until the layer's activation shape is known (see `init_masks`); an empty
    mask means all-ReLU. `source` names the conv layer that feeds this ReLU (for pruning
    sensitivity) and `is_stem` marks the first ReLU (excluded under SNL's counting convention).
    """

    mask: torch.Tensor  # a buffer (register_buffer), so it follows .to() and the state dict

    def __init__(self, source: str = "", is_stem: bool = False) -> None:
        super().__init__()
        self.source = source
        self.is_stem = is_stem
        self.register_buffer("mask", torch.ones(0))
        # "relu" | "identity" | "partial" | "scores": the fast path, decided once per mask
        self._mode = "relu"
        self.scores: nn.Parameter | None = None
        self.alpha: nn.Parameter | None = None  # SNL's per-position ReLU weight
        self._k = 0
        self._granularity = "pixel"
        self._floor: torch.Tensor | None = None  # the mask as _FloorMax's floor, in x's dtype

    def set_mask(self, mask: torch.Tensor) -> None:
        """Install a (C, H, W) 0/1 mask; decides the forward fast path once, not per call."""
        if mask.dim() != 3:
            raise ValueError(f"mask must be (C, H, W), got shape {tuple(mask.shape)}")
        self.mask = mask.detach().to(device=self.mask.device, dtype=torch.float32).clone()
        self._refresh_mode()

    def _refresh_mode(self) -> None:
        self._floor = None
        if getattr(self, "scores", None) is not None:
            self._mode = "scores"
        elif getattr(self, "alpha", None) is not None:
            self._mode = "alpha"
        elif self.mask.numel() == 0 or bool(self.mask.bool().all()):
            self._mode = "relu"
        elif not bool(self.mask.bool().any()):
            self._mode = "identity"
        else:
            self._mode = "partial"

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The saved mask may have a shape the fresh (empty) buffer does not: adopt it first.
        key = prefix + "mask"
        if key in state_dict:
            self.mask = torch.empty_like(state_dict[key], device=self.mask.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._refresh_mode()

    def enable_scores(self, k: int, granularity: str, init: torch.Tensor | None = None) -> None:
        """Search variant: trainable real scores, mask = top-k(scores) in the forward pass with a
        straight-through gradient, so the scores learn which positions deserve a ReLU."""
        shape = self.mask.shape
        start = init if init is not None else torch.rand(shape, device=self.mask.device)
        self.scores = nn.Parameter(start.detach().clone().to(self.mask.device).float())
        self._k, self._granularity, self._mode = k, granularity, "scores"

    def finalize_scores(self) -> None:
        """Freeze the learned scores into a binary mask and drop them."""
        if self.scores is None:
            return
        self.set_mask(topk_mask(self.scores.detach(), self._k, self._granularity))
        self.scores = None
        self._refresh_mode()

    def enable_alpha(self) -> None:
        """SNL's relaxation: y = alpha * relu(x) + (1 - alpha) * x with a trainable real alpha
        per position, starting at 1 (the all-ReLU model); an L1 penalty drives alphas to 0."""
        self.alpha = nn.Parameter(torch.ones(self.mask.shape, device=self.mask.device))
        self._mode = "alpha"

    def finalize_alpha(self, mask: torch.Tensor) -> None:
        """Replace the alphas by a binary mask (SNL picks it globally, across layers)."""
        self.alpha = None
        self.set_mask(mask)

    def relu_count(self) -> int:
        """Kept ReLU positions for one image (needs an initialised mask)."""
        return int(self.mask.sum().item())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mode == "relu":
            return F.relu(x)
        if self._mode == "identity":
            return x
        if self._mode == "alpha" and self.alpha is not None:
            return x + self.alpha.to(x.dtype) * F.relu(-x)
        if self._mode == "scores" and self.scores is not None:
            hard = topk_mask(self.scores.detach(), self._k, self._granularity)
            m = hard + self.scores - self.scores.detach()  # value: hard mask; gradient: scores
            return x + m.to(x.dtype) * F.relu(-x)
        out: torch.Tensor = _FloorMax.apply(x, self._floor_like(x))
        return out

    def _floor_like(self, x: torch.Tensor) -> torch.Tensor:
        """The (C, H, W) floor in x's dtype and device, built once per mask (not per call:
        under bf16 autocast a per-call cast would be one more kernel per layer)."""
        f = self._floor
        if f is None or f.dtype != x.dtype or f.device != x.device:
            keep = self.mask.to(x.device) != 0
            f = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
            f.masked_fill_(~keep, float("-inf"))
            self._floor = f
        return f


@dataclass(frozen=True)
class ReLULayer:
    """One ReLU layer of a model at a given input size."""

    name: str
    shape: tuple[int, int, int]
    count: int  # C*H*W: ReLUs of this layer when all kept
    source: str
    is_stem: bool


def partial_relus(model: nn.Module) -> list[tuple[str, PartialReLU]]:
    """The model's PartialReLU modules in registration order (== forward order here)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PartialReLU)]


@torch.no_grad()
def relu_layers(
    model: nn.Module, input_size: int, in_channels: int = 3, include_stem: bool = True
) -> list[ReLULayer]:
    """Trace one forward pass to read each ReLU layer's activation shape: what masks are shaped
    and counted from. stages.architecture computes the same shapes without torch, for the
    orchestrator; tests/stages/test_catalog.py compares the two."""
    shapes: dict[str, tuple[int, int, int]] = {}
    handles = []
    for name, mod in partial_relus(model):

        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], _o: Any, name: str = name) -> None:
            c, h, w = inp[0].shape[1:]
            shapes[name] = (int(c), int(h), int(w))

        handles.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, in_channels, input_size, input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    layers = []
    for name, mod in partial_relus(model):
        c, hh, w = shapes[name]
        if mod.is_stem and not include_stem:
            continue
        layers.append(ReLULayer(name, (c, hh, w), c * hh * w, mod.source, mod.is_stem))
    return layers


def init_masks(model: nn.Module, input_size: int, in_channels: int = 3) -> None:
    """Give every PartialReLU an all-ones mask of its activation shape (all-ReLU model)."""
    layers = {layer.name: layer for layer in relu_layers(model, input_size, in_channels)}
    for name, mod in partial_relus(model):
        device = mod.mask.device
        mod.set_mask(torch.ones(layers[name].shape, device=device))


def model_relu_count(model: nn.Module, include_stem: bool = True) -> tuple[int, dict[str, int]]:
    """Total and per-layer kept ReLUs of a model with initialised masks."""
    per_layer = {
        n: m.relu_count() for n, m in partial_relus(model) if include_stem or not m.is_stem
    }
    return sum(per_layer.values()), per_layer


def topk_mask(score: torch.Tensor, k: int, granularity: str) -> torch.Tensor:
    """A (C, H, W) 0/1 mask keeping the k highest-scoring positions.

    Channel granularity scores each channel by the sum over (H, W) and keeps the largest number
    of whole channels that fits in k, i.e. floor(k / (H*W)) channels: the count never exceeds
    the layer's budget, and ReLUs of a partly affordable channel are dropped.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    c, h, w = score.shape
    mask = torch.zeros(c * h * w if granularity == "pixel" else c, device=score.device)
    if granularity == "pixel":
        n = min(max(k, 0), c * h * w)
        flat = score.reshape(-1)
    else:
        n = min(max(k, 0) // (h * w), c)
        flat = score.reshape(c, -1).sum(dim=1)
    if n > 0:
        mask[torch.topk(flat.float(), n, sorted=False).indices] = 1.0
    if granularity == "channel":
        return mask.view(c, 1, 1).expand(c, h, w).contiguous()
    return mask.view(c, h, w)


def mask_hamming(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Normalised Hamming distance between two sets of masks: the search's convergence gauge."""
    diff = sum(int((a[k].bool() ^ b[k].bool()).sum().item()) for k in a)
    total = sum(a[k].numel() for k in a)
    return diff / max(total, 1)
