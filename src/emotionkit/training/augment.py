"""Batched on-the-fly augmentation for the training split only.

One random affine per image (rotation, shift, zoom) and a horizontal flip,
applied to a whole batch with a single ``affine_grid`` / ``grid_sample`` call
(tens of microseconds per image), so augmentation never bottlenecks training.
:func:`augment_copies` is the seed's offline variant (N stored copies per image);
both are applied to the training part only, after :func:`~emotionkit.data.splits.split_dataset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.fer2013 import FaceDataset

__all__ = ["RandomAffineFlip", "augment_copies"]


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
        """Augment a batch ``(N, C, H, W)``; border pixels are replicated.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` float faces.
        generator : torch.Generator, optional
            Source of randomness, for reproducible runs.

        Returns
        -------
        torch.Tensor
            ``(N, C, H, W)``: each face with its own random rotation, shift, zoom and flip.
        """
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


def augment_copies(
    data: FaceDataset, copies: int, *, seed: int = 0, augment: RandomAffineFlip | None = None
) -> FaceDataset:
    """Return the images followed by ``copies`` randomly transformed copies of each (offline augmentation).

    Apply it to the training part only, after splitting: copies of an image must never reach the
    validation or test parts (the seed augmented first and leaked them into its test set).

    Parameters
    ----------
    data : FaceDataset
        The training part; ``(N, H, W)`` or ``(N, H, W, 3)`` uint8 images.
    copies : int
        Transformed copies per image (0 returns ``data``).
    seed : int, default 0
        Seed of the transforms.
    augment : RandomAffineFlip, optional
        The transform (default: rotation 10 degrees, shift and zoom 10%, flip).

    Returns
    -------
    FaceDataset
        ``N * (copies + 1)`` rows: the originals, then copy 1 of every image, copy 2...;
        labels, usages and ids follow their source image.

    Raises
    ------
    ValueError
        ``copies`` is negative.

    Examples
    --------
    >>> data = FaceDataset(np.zeros((3, 48, 48), np.uint8), np.array([0, 1, 2]))
    >>> more = augment_copies(data, 2)
    >>> len(more), more.labels.tolist()
    (9, [0, 1, 2, 0, 1, 2, 0, 1, 2])
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}.")
    if copies == 0 or len(data) == 0:
        return data
    augment = augment or RandomAffineFlip()
    gen = torch.Generator().manual_seed(seed)
    images = data.images if data.images.ndim == 4 else data.images[..., None]
    out = [data.images]
    for _ in range(copies):
        for start in range(0, len(images), 1024):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + 1024])).permute(0, 3, 1, 2).float()
            y = (augment(x, generator=gen) + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            out.append(y.reshape(y.shape[:3]) if data.images.ndim == 3 else y)
    reps = copies + 1
    return FaceDataset(
        np.concatenate(out),
        np.tile(data.labels, reps),
        data.classes,
        None if data.usage is None else np.tile(data.usage, reps),
        None if data.ids is None else np.tile(data.ids, reps),
    )
