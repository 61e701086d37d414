"""Batched on-the-fly augmentation for the training split only.

One random affine per image (rotation, shift, zoom) and a horizontal flip,
applied to a whole batch with a single ``affine_grid`` / ``grid_sample`` call
(tens of microseconds per image), so augmentation never bottlenecks training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["RandomAffineFlip"]


@dataclass(frozen=True)
class RandomAffineFlip:
    """Random rotation, width/height shift, zoom and horizontal flip, batched.

    Parameters
    ----------
    rotation : float, default 10.0
        Maximum rotation in degrees (uniform in ``[-rotation, rotation]``).
    shift : float, default 0.1
        Maximum shift as a fraction of width and height.
    zoom : float, default 0.1
        Maximum zoom: the scale is uniform in ``[1 - zoom, 1 + zoom]``.
    flip : float, default 0.5
        Probability of a horizontal flip.

    Examples
    --------
    >>> aug = RandomAffineFlip()
    >>> aug(torch.rand(4, 1, 48, 48), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 48, 48])
    """

    rotation: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    flip: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; border pixels are replicated."""
        n = x.shape[0]
        if n == 0:
            return x

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(n, generator=generator) * (high - low) + low

        angle = uniform(-self.rotation, self.rotation) * (math.pi / 180.0)
        scale = uniform(1.0 - self.zoom, 1.0 + self.zoom)
        tx = uniform(-self.shift, self.shift) * 2.0  # normalised coordinates span [-1, 1]
        ty = uniform(-self.shift, self.shift) * 2.0
        flip = torch.where(torch.rand(n, generator=generator) < self.flip, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos * flip
        theta[:, 0, 1] = -sin
        theta[:, 0, 2] = tx
        theta[:, 1, 0] = sin * flip
        theta[:, 1, 1] = cos
        theta[:, 1, 2] = ty
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
