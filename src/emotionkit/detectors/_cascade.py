"""A vectorised MTCNN cascade (P-Net, R-Net, O-Net) over facenet-pytorch's pretrained networks.

facenet-pytorch's ``detect_face`` crops and resizes every candidate box in a Python
loop (one ``interpolate`` call per box, ~100-200 per photo) and builds each pyramid
level with area interpolation from the full image. Here every stage is a handful of
batched tensor operations:

- the pyramid is built level from level with antialiased bilinear resizing;
- the networks run channels-last on raw pixels, rearranged for fewer and cheaper
  operations (``_nets.py``: normalisation folded into the first convolution, merged heads,
  P-Net's big pools as strided maxima);
- all R-Net and O-Net crops of all images come from one gather over the pyramid
  levels and two batched matrix products (:mod:`._resample`), with the original MTCNN's
  zero padding outside the image (facenet-pytorch clamps the box to the image and
  stretches the crop instead).

The networks, thresholds, pyramid rule, non-maximum suppression rules and box
regression are those of Zhang et al. (2016) as facenet-pytorch implements them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from ._nets import FastONet, FastPNet, FastRNet
from ._resample import FlatPyramid

__all__ = ["pyramid_scales", "run_cascade"]


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Return the image scales at which P-Net (12x12 window) sees faces of ``min_face_size`` pixels and up.

    Examples
    --------
    >>> [round(s, 3) for s in pyramid_scales(100, 100, 40, 0.5)]
    [0.3, 0.15]
    """
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each ``(x1, y1, x2, y2)`` box to a square around its centre (``rerec``)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(boxes: torch.Tensor, reg: torch.Tensor, plus_one: bool = True) -> torch.Tensor:
    extra = 1.0 if plus_one else 0.0
    w = (boxes[:, 2] - boxes[:, 0] + extra).unsqueeze(1)
    h = (boxes[:, 3] - boxes[:, 1] + extra).unsqueeze(1)
    return boxes + reg * torch.cat([w, h, w, h], dim=1)


def _crops(pyramid: FlatPyramid, boxes: torch.Tensor, inds: torch.Tensor, size: int, *, upsample: bool) -> torch.Tensor:
    """Crop integer-aligned boxes (pixels ``x1-1 .. x2``, as MTCNN does) and resize them to ``size``.

    Each box is sampled, one bilinear sample per output pixel (:mod:`._resample`), from a
    pyramid level, which already did the antialiasing: with ``upsample`` the level where
    its side is closest to ``size`` (within a factor of ~1.3 for the default pyramid, up
    or down), otherwise the smallest level where its side is still at least ``size`` (the
    image itself for boxes smaller than that), so a coarser level is never enlarged.
    R-Net's crops do the latter: 921 instead of 888 of 1,200 FER-2013 faces found, same
    boxes on the benchmark photos; O-Net's the former, whose box regression matched the
    reference boxes better (IoU 0.89 vs 0.77 on the hopper photo;
    ``benchmarks/detection_recall.py --fer 1200``).
    Pixels outside the image are zero, as in the original MTCNN.
    """
    # Bookkeeping for a few dozen boxes is cheaper in numpy than in torch (µs per op instead of tens).
    b = np.trunc(boxes.detach().cpu().numpy()).astype(np.float32)
    b[:, :2] -= 1
    full_h, full_w = pyramid.sizes[0]
    side = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1.0)
    scale = np.stack([pyramid.sizes[:, 1] / full_w, pyramid.sizes[:, 0] / full_h], axis=1).astype(np.float32)
    ratios = scale[:, 0]  # levels[0] is the image: ratio 1
    if upsample:
        choice = np.abs(np.log(side[:, None] * ratios[None, :] / size)).argmin(axis=1)
    else:
        big_enough = side[:, None] * ratios[None, :] >= size
        choice = np.where(big_enough, ratios[None, :], np.inf).argmin(axis=1)  # 0 (the image) when none is
    scaled = b * np.tile(scale[choice], 2)
    return pyramid.crops(choice, inds.detach().cpu().numpy(), scaled, size)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, inds: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS per image where overlap is intersection over the *smaller* box (O-Net's rule)."""
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.long)
    order = torch.argsort(scores, descending=True)
    b, img = boxes[order], inds[order]
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1] / torch.minimum(area[:, None], area[None, :])
    suppress = (overlap > threshold) & (img[:, None] == img[None, :])
    alive = torch.ones(len(b), dtype=torch.bool)
    keep = []
    for i in range(len(b)):
        if alive[i]:
            keep.append(i)
            alive &= ~suppress[i]
    return order[torch.tensor(keep, dtype=torch.long)]


def _pyramid(images: torch.Tensor, scales: Sequence[float]) -> list[torch.Tensor]:
    """The image followed by one level per scale, each resized from the one before.

    Each level comes from the previous one (bigger than it), so the pyramid costs about two
    full-size resizes; uint8 channels-last has a vectorised antialiased kernel ~10x faster
    than float's (and MTCNN's own pyramid is uint8, from OpenCV).
    """
    if images.device.type != "cpu":  # the uint8 antialiased kernel is CPU-only
        images = images.float()
    _, _, h, w = images.shape
    levels = [images]
    for scale in scales:
        size = (int(h * scale + 1), int(w * scale + 1))
        levels.append(F.interpolate(levels[-1], size=size, mode="bilinear", antialias=True, align_corners=False))
    return levels


def _candidates(
    cells: torch.Tensor, scale: float | torch.Tensor, score: torch.Tensor, reg: torch.Tensor
) -> torch.Tensor:
    """Candidate rows ``(K, 9)``: the 12x12 window of each P-Net cell ``(x, y)`` in image pixels, score, regression."""
    q1 = ((2 * cells + 1) / scale).floor()
    q2 = ((2 * cells + 12) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1)


def _pnet_level(
    pnet: FastPNet, level: torch.Tensor, scale: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """P-Net on one pyramid level: candidate boxes ``(K, 9)`` and their image indices (before NMS), or None."""
    reg, score = pnet(level.float().contiguous(memory_format=torch.channels_last))  # (N, H, W, 4), (N, H, W)
    mask = score >= threshold
    where = mask.nonzero()
    if where.shape[0] == 0:
        return None
    inds = where[:, 0]
    cells = where[:, 1:].flip(1).to(score.dtype)  # (x, y) of each P-Net output cell
    return _candidates(cells, scale, score[mask], reg[mask]), inds


def _even(n: int) -> int:
    return n + n % 2


def _pack(sizes: Sequence[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Place levels ``(h, w)`` (largest first) in columns of a canvas as tall as the first.

    Offsets are even, so each level's P-Net output cells fall on the canvas's (P-Net's
    stride is 2). Returns the ``(y, x)`` offsets and the canvas ``(height, width)``.
    """
    height = _even(sizes[0][0])
    offsets, x, y, column = [], 0, 0, 0
    for h, w in sizes:
        if y > 0 and y + h > height:
            x, y, column = x + _even(column), 0, 0
        offsets.append((y, x))
        y, column = y + _even(h), max(column, w)
    return offsets, (height, x + _even(column))


def _out_cells(side: int) -> int:
    """P-Net output cells along a side of ``side`` pixels (3x3 conv, 2x2 ceil pool, two 3x3 convs)."""
    return -(-(side - 2) // 2) - 4


def _pnet_packed(
    pnet: FastPNet, levels: Sequence[torch.Tensor], scales: Sequence[float], ids: Sequence[int], threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """P-Net once over small pyramid levels packed side by side in one canvas.

    Only the output cells of each level's own windows are read, so a level's candidates are
    the ones P-Net finds on it alone, except that the last row or column of an odd-sized
    level sees one pixel of zeros instead of the pool's padding. Returns boxes ``(K, 9)``,
    image indices, and each box's level id (from ``ids``), or None.
    """
    n, c = levels[0].shape[:2]
    offsets, (height, width) = _pack([tuple(lv.shape[-2:]) for lv in levels])  # type: ignore[misc]
    canvas = torch.zeros((n, c, height, width), device=levels[0].device).contiguous(memory_format=torch.channels_last)
    level_map = torch.full((_out_cells(height), _out_cells(width)), -1, dtype=torch.long, device=canvas.device)
    for j, (lv, (y, x)) in enumerate(zip(levels, offsets)):
        h, w = lv.shape[-2:]
        canvas[:, :, y : y + h, x : x + w] = lv
        level_map[y // 2 : y // 2 + _out_cells(h), x // 2 : x // 2 + _out_cells(w)] = j
    reg, score = pnet(canvas)
    mask = (score >= threshold) & (level_map >= 0)
    where = mask.nonzero()
    if where.shape[0] == 0:
        return None
    level = level_map[where[:, 1], where[:, 2]]
    origin = torch.tensor(offsets, dtype=torch.long, device=canvas.device)[level] // 2  # (y, x) in cells
    cells = (where[:, 1:] - origin).flip(1).to(score.dtype)  # (x, y) of each cell in its own level
    scale = torch.tensor(scales, dtype=score.dtype, device=canvas.device)[level].unsqueeze(1)
    boxes = _candidates(cells, scale, score[mask], reg[mask])
    return boxes, where[:, 0], torch.tensor(ids, device=canvas.device)[level]


def _stage_one(
    images: torch.Tensor, pnet: FastPNet, scales: Sequence[float], threshold: float
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """P-Net over the image pyramid.

    ``images`` is uint8 ``(B, 3, H, W)`` channels-last. Returns candidate boxes ``(K, 9)``
    (box, score, regression), their image indices, and the image followed by its
    downscaled pyramid levels (uint8, for cropping).
    """
    levels = _pyramid(images, scales)
    pyramid = levels[1:]
    # The first level (about 60% of P-Net's arithmetic) runs alone; the others, where each layer's fixed
    # cost rivals its arithmetic (2.8 ms for the four smallest of a 512 px photo, one by one), run packed
    # into one canvas. Packing the first as well wasted ~17% more pixels: slower on one core for 720p.
    small = list(range(1, len(pyramid))) if len(pyramid) > 2 else []
    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for k, (lv, scale) in enumerate(zip(pyramid, scales)):
        if k not in small and (r := _pnet_level(pnet, lv, scale, threshold)):
            found.append((r[0], r[1], torch.full_like(r[1], k)))
    if small and (
        packed := _pnet_packed(pnet, [pyramid[k] for k in small], [scales[k] for k in small], small, threshold)
    ):
        found.append(packed)
    crop_levels = [levels[0], *(lv for lv in pyramid if lv.shape[-1] < images.shape[-1])]
    device = images.device
    if not found:
        return torch.zeros((0, 9), device=device), torch.zeros((0,), dtype=torch.long, device=device), crop_levels
    boxes = torch.cat([b for b, _, _ in found])
    inds = torch.cat([i for _, i, _ in found])
    # MTCNN's NMS within each level of each image, as one call: the group of a box is (level, image).
    groups = torch.cat([i + k * images.shape[0] for _, i, k in found])
    keep = batched_nms(boxes[:, :4], boxes[:, 4], groups, 0.5).sort().values
    return boxes[keep], inds[keep], crop_levels


def _refine(
    net: nn.Module, pyramid: FlatPyramid, boxes: torch.Tensor, inds: torch.Tensor, size: int, *, upsample: bool
) -> tuple[torch.Tensor, ...]:
    """Crop the candidates at ``size`` and run R-Net or O-Net on them (raw pixels) in one batch."""
    return tuple(net(_crops(pyramid, boxes, inds, size, upsample=upsample)))


@torch.inference_mode()
def run_cascade(
    batch: np.ndarray,
    pnet: FastPNet,
    rnet: FastRNet,
    onet: FastONet,
    *,
    min_face_size: float = 20.0,
    thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    factor: float = 0.709,
    device: str | torch.device | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Detect faces in a batch of equal-size RGB images.

    Parameters
    ----------
    batch : numpy.ndarray
        ``(B, H, W, 3)`` uint8 RGB.
    pnet, rnet, onet : FastPNet, FastRNet, FastONet
        facenet-pytorch's pretrained MTCNN networks, wrapped by :mod:`._nets` (raw pixels in).
        Eval mode, channels-last.
    min_face_size : float, default 20
        Smallest face side searched for, in pixels of ``batch``.
    thresholds : (float, float, float)
        Score thresholds of the three stages.
    factor : float, default 0.709
        Pyramid scale step.
    device : str or torch.device, optional
        Where the networks are (default CPU).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        Per image: boxes ``(n, 5)`` as ``x1, y1, x2, y2, score`` and landmarks ``(n, 5, 2)``.
    """
    # uint8 channels-last, as given: the pyramid is resized in uint8 and converted to float level by level.
    array = np.ascontiguousarray(batch, dtype=np.uint8)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only arrays; nothing here writes to it
        array = array.copy()
    images = torch.from_numpy(array).to(device or "cpu").permute(0, 3, 1, 2)
    n_images, _, h, w = images.shape
    empty = [(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)) for _ in range(n_images)]
    boxes, inds, levels = _stage_one(images, pnet, pyramid_scales(h, w, min_face_size, factor), thresholds[0])
    if boxes.shape[0] == 0:
        return empty
    keep = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds = boxes[keep], inds[keep]
    boxes = _square(_regress(boxes[:, :4], boxes[:, 5:9], plus_one=False))
    pyramid = FlatPyramid(levels)

    # Stage 2: R-Net refines every candidate in one batch.
    reg, score = _refine(rnet, pyramid, boxes, inds, 24, upsample=False)
    ok = score > thresholds[1]
    boxes, inds, score, reg = boxes[ok], inds[ok], score[ok], reg[ok]
    if boxes.shape[0] == 0:
        return empty
    keep = batched_nms(boxes, score, inds, 0.7)
    boxes = _square(_regress(boxes[keep], reg[keep]))
    inds = inds[keep]

    # Stage 3: O-Net gives the final score, box and five landmarks.
    reg, marks, score = _refine(onet, pyramid, boxes, inds, 48, upsample=True)
    ok = score > thresholds[2]
    boxes, inds, score, reg, marks = boxes[ok], inds[ok], score[ok], reg[ok], marks[ok]
    if boxes.shape[0] == 0:
        return empty
    w_box = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
    h_box = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
    points = torch.stack([w_box * marks[:, :5] + boxes[:, 0:1] - 1, h_box * marks[:, 5:] + boxes[:, 1:2] - 1], dim=2)
    boxes = _regress(boxes, reg)
    boxes, inds, score, points = boxes.cpu(), inds.cpu(), score.cpu(), points.cpu()
    keep = _nms_min(boxes, score, inds, 0.7)
    boxes, inds, score, points = boxes[keep], inds[keep], score[keep], points[keep]
    out_boxes = torch.cat([boxes, score.unsqueeze(1)], dim=1).numpy()
    out_points = points.numpy()
    inds_np = inds.numpy()
    return [(out_boxes[inds_np == i], out_points[inds_np == i]) for i in range(n_images)]
