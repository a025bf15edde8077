"""TensorLoader: batches of a split held on the device, with no DataLoader.

SENet's stages run many short trainings of small CNNs; per-sample PIL transforms in DataLoader
workers would dominate their step time on a GPU. So the uint8 split is moved to the device once
and each batch's crop and flip is one vectorised gather (stages.data reads the splits).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .data import DataBundle, Split


class TensorLoader:
    """Batches a Split held on `device` with no per-sample Python transforms.

    The uint8 split is moved once; each batch is gathered, augmented (train only, unless
    `augment` is off), converted to float and normalised on the device. Shuffling and
    augmentation draw from the loader's own CPU generator, so the same `seed` gives the same
    batches on any device.
    """

    def __init__(
        self,
        split: Split,
        bundle: DataBundle,
        batch_size: int,
        train: bool,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        augment: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.x = split.x.to(self.device)
        self.y = split.y.to(self.device)
        self.batch_size, self.train, self.drop_last = batch_size, train, drop_last
        self.crop_pad = bundle.crop_pad if train and augment else 0
        self.flip = bundle.flip and train and augment
        self.mean = torch.tensor(bundle.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(bundle.std, device=self.device).view(1, -1, 1, 1)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = int(self.y.shape[0])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs, p = int(self.y.shape[0]), self.batch_size, self.crop_pad
        order = aug = None
        if self.train:  # one draw per epoch from the CPU generator, one transfer each
            order = torch.randperm(n, generator=self.generator).to(self.device)
            if p or self.flip:
                shift = torch.randint(0, 2 * p + 1, (2, n), generator=self.generator)
                flips = torch.rand(n, generator=self.generator) < (0.5 if self.flip else 0.0)
                aug = torch.cat([shift, flips[None]]).to(self.device)
        for b in range(len(self)):
            rows = slice(b * bs, (b + 1) * bs)
            idx = rows if order is None else order[rows]
            xb, yb = self.x[idx], self.y[idx]
            if aug is not None:
                xb = self._augment(xb, aug[:, rows])
            yield xb.float().div_(255.0).sub_(self.mean).div_(self.std), yb

    def _augment(self, xb: torch.Tensor, aug: torch.Tensor) -> torch.Tensor:
        """Random crop of the zero-padded batch plus flip as one gather (aug rows: dy, dx, flip):
        out[b, c, i, j] = padded[b, c, dy_b + i, dx_b + (W - 1 - j if flip_b else j)]."""
        b, c, h, w = xb.shape
        p = self.crop_pad
        if p:
            xb = F.pad(xb, (p, p, p, p))
        cols = torch.arange(w, device=self.device).expand(b, w)
        cols = torch.where(aug[2, :, None].bool(), w - 1 - cols, cols) + aug[1, :, None]
        rows = torch.arange(h, device=self.device) + aug[0, :, None]
        batch = torch.arange(b, device=self.device).view(b, 1, 1, 1)
        chan = torch.arange(c, device=self.device).view(1, c, 1, 1)
        return xb[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
