"""Bilinear crops of many boxes from an image pyramid: one gather and two batched products.

MTCNN's second and third stages look at each candidate box resized to 24x24 (R-Net) or
48x48 (O-Net). :func:`torchvision.ops.roi_align` does this, but on a CPU it costs tens
of µs per box (it rebuilds its sampling tables box by box, on one thread), and a call
per pyramid level adds a fixed cost per level: 6-8 ms for the ~70 candidates of a
portrait, ~35 ms for a 720p group photo.

Bilinear sampling on a grid is separable: the crop of box ``k`` is ``A_y @ P @ A_x^T``
per channel, where ``P`` is the patch of pixels its samples touch and each row of
``A_y`` (``A_x``) holds the two weights of one output row (column). Each box is cropped
from the pyramid level where its side is closest to the output size, so patches are
small (about 1.3x the output side). All levels lie in one flat buffer, so every box of
every level is gathered in one indexing call (one contiguous row of ``pw`` pixels per
patch row), then resampled by two batched matrix products.

The sampling rule is ``roi_align``'s with ``aligned=True, sampling_ratio=1`` (one sample
at the centre of each output bin; samples more than one pixel outside the image are
zero, the others are clamped to the edge), so crops equal ``roi_align``'s to float
rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["FlatPyramid", "axis_weights"]


def axis_weights(
    start: np.ndarray, end: np.ndarray, size: int, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bilinear weights along one axis for ``K`` boxes spanning ``start .. end`` pixels (aligned convention).

    Parameters
    ----------
    start, end : numpy.ndarray
        ``(K,)`` box edges along the axis, in pixels of each box's image.
    size : int
        Number of samples (output pixels) along the axis.
    length : numpy.ndarray
        ``(K,)`` extent of each box's image along the axis.

    Returns
    -------
    weights : numpy.ndarray
        ``(K, size, patch)`` float32: output pixel ``i`` of box ``k`` is
        ``weights[k, i] @ pixels[origin[k] : origin[k] + patch]``.
    origin : numpy.ndarray
        ``(K,)`` first pixel of each box's patch (patch pixels past the image's end get weight 0).
    patch : int
        Patch length, the same for all boxes.
    """
    n = start.shape[0]
    length = np.broadcast_to(np.asarray(length, dtype=np.int64), (n,))
    step = (end - start) / size
    pos = (start - 0.5)[:, None] + (np.arange(size, dtype=np.float32) + 0.5)[None, :] * step[:, None]
    inside = ((pos >= -1.0) & (pos <= length[:, None])).astype(np.float32)
    pos = np.maximum(pos, 0.0)
    last = (length - 1)[:, None]
    low = np.minimum(np.floor(pos).astype(np.int64), last)
    at_edge = low >= last
    high = np.where(at_edge, low, low + 1)
    frac = np.where(at_edge, 0.0, pos - low).astype(np.float32)
    first = low.min(axis=1)
    patch = int((high.max(axis=1) - first).max()) + 1
    origin = np.clip(first, 0, np.maximum(length - patch, 0))
    weights = np.zeros(n * size * patch, dtype=np.float32)
    row = (np.arange(n * size) * patch).reshape(n, size) - origin[:, None]  # flat start of each row, less origin
    weights[(row + low).ravel()] = ((1.0 - frac) * inside).ravel()
    weights[(row + high).ravel()] += (frac * inside).ravel()  # one entry per row: no repeated index
    weights = weights.reshape(n, size, patch)
    return weights, origin, patch


class FlatPyramid:
    """Pyramid levels of a batch of images in one flat uint8 buffer, for cropping boxes from any of them.

    Parameters
    ----------
    levels : sequence of torch.Tensor
        ``(B, C, H_j, W_j)`` tensors of one dtype (typically uint8), channels-last or not.
    """

    def __init__(self, levels: Sequence[torch.Tensor]) -> None:
        first = levels[0]
        self.channels = int(first.shape[1])
        self.device = first.device
        self.sizes = np.array([lv.shape[-2:] for lv in levels], dtype=np.int64)  # (L, 2): H, W
        pixels = [lv.permute(0, 2, 3, 1).reshape(-1) for lv in levels]  # views for channels-last levels
        counts = np.array([p.numel() for p in pixels], dtype=np.int64)
        #: Start of each level in the buffer, in pixels (each level holds the whole batch, image after image).
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) // self.channels
        self.buffer = torch.cat(pixels)

    def crops(self, level: np.ndarray, image: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
        """Resample each box of its level to ``size x size``, as ``roi_align(aligned=True, sampling_ratio=1)``.

        Parameters
        ----------
        level : numpy.ndarray
            ``(K,)`` pyramid level of each box.
        image : numpy.ndarray
            ``(K,)`` batch index of each box.
        boxes : numpy.ndarray
            ``(K, 4)`` boxes ``(x1, y1, x2, y2)`` in pixels of their level.
        size : int
            Output side.

        Returns
        -------
        torch.Tensor
            ``(K, C, size, size)`` float32, channels-last.
        """
        n, c = boxes.shape[0], self.channels
        if n == 0:
            return torch.zeros((0, c, size, size), device=self.device).contiguous(memory_format=torch.channels_last)
        boxes = boxes.astype(np.float32, copy=False)
        height, width = self.sizes[level, 0], self.sizes[level, 1]
        # Both axes in one call (2K boxes): square patches, half the fixed cost.
        weights, origin, side = axis_weights(
            np.concatenate([boxes[:, 1], boxes[:, 0]]),
            np.concatenate([boxes[:, 3], boxes[:, 2]]),
            size,
            np.concatenate([height, width]),
        )
        oy, ox = origin[:n], origin[n:]
        # First pixel of each patch row, in the buffer: level start + image + row + column.
        row0 = self.offsets[level] + (image.astype(np.int64) * height + oy) * width + ox
        starts = (row0[:, None] + np.arange(side)[None, :] * width[:, None]).reshape(-1)
        # Patch rows may run past a small level's end (those pixels get weight 0): pad so they stay in the buffer.
        short = (int(starts.max()) + side) * c - self.buffer.numel()
        if short > 0:
            self.buffer = torch.cat([self.buffer, self.buffer.new_zeros(short)])
        rows = self.buffer.as_strided((self.buffer.numel() // c - side + 1, side * c), (c, 1))
        patches = rows[torch.from_numpy(starts).to(self.device)].float()  # (K * side, side * C)
        wy, wx = torch.from_numpy(weights).to(self.device).split(n)
        across = torch.bmm(wy, patches.view(n, side, side * c))  # (K, size, side * C)
        # Columns next: the patch's x first, so one more batched product gives (K, x_out, y_out, C).
        columns = across.view(n, size, side, c).transpose(1, 2).reshape(n, side, size * c)
        out = torch.bmm(wx, columns).view(n, size, size, c)
        return out.permute(0, 3, 2, 1).contiguous(memory_format=torch.channels_last)
