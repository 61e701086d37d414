"""FlatPyramid.crops: the MTCNN stages' box crops equal torchvision's roi_align, from any pyramid level."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import roi_align

from emotionkit.detectors._resample import FlatPyramid, axis_weights


def _roi_align(level: torch.Tensor, image: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
    rois = torch.from_numpy(np.concatenate([image[:, None], boxes], axis=1).astype(np.float32))
    return roi_align(level.float().contiguous(), rois, (size, size), 1.0, 1, True)


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70)), min_size=1, max_size=4),
    batch=st.integers(1, 2),
    boxes=st.lists(
        st.tuples(
            st.floats(-30, 90),
            st.floats(-30, 90),
            st.floats(0.5, 60),
            st.floats(0.5, 60),
            st.integers(0, 3),
            st.integers(0, 1),
        ),
        min_size=1,
        max_size=6,
    ),
    size=st.sampled_from([24, 48, 5]),
    seed=st.integers(0, 2**16),
)
def test_crops_equal_roi_align_on_each_level(sizes, batch, boxes, size, seed):
    # Levels of any size (smaller than the patch too); boxes inside, across the edges, wholly outside.
    rng = np.random.default_rng(seed)
    levels = [
        torch.from_numpy(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)).permute(0, 3, 1, 2) for h, w in sizes
    ]
    level = np.array([min(j, len(levels) - 1) for *_, j, _ in boxes])
    image = np.array([min(i, batch - 1) for *_, i in boxes])
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h, _, _ in boxes], dtype=np.float32)
    got = FlatPyramid(levels).crops(level, image, xyxy, size)
    assert got.shape == (len(boxes), 3, size, size) and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    for k in range(len(boxes)):
        expected = _roi_align(levels[level[k]], image[k : k + 1], xyxy[k : k + 1], size)
        torch.testing.assert_close(got[k : k + 1], expected, atol=2e-3, rtol=1e-5)  # pixel values 0-255


def test_real_photo_pyramid_crops_match_roi_align(sample_photo):
    from emotionkit.io import load_image

    photo = torch.from_numpy(load_image(sample_photo).copy()).permute(2, 0, 1).unsqueeze(0)
    levels = [photo] + [
        F.interpolate(photo, scale_factor=s, mode="bilinear", antialias=True).contiguous(
            memory_format=torch.channels_last
        )
        for s in (0.6, 0.36, 0.216)
    ]
    face = np.array([181.0, 62.0, 268.0, 174.0], dtype=np.float32)  # the astronaut's face, full-size pixels
    rng = np.random.default_rng(0)
    boxes, level = [], []
    for j, lv in enumerate(levels):  # the face and random boxes (some across the edges) on every level
        scale = lv.shape[-1] / photo.shape[-1]
        boxes += [face * scale, *(np.tile(rng.uniform(-20, 320, 2), 2) * scale + [0, 0, 30, 30] for _ in range(5))]
        level += [j] * 6
    boxes_np, level_np = np.array(boxes, dtype=np.float32), np.array(level)
    got = FlatPyramid(levels).crops(level_np, np.zeros(len(boxes), dtype=np.int64), boxes_np, 24)
    for k in range(len(boxes)):
        expected = _roi_align(levels[level_np[k]], np.zeros(1), boxes_np[k : k + 1], 24)
        torch.testing.assert_close(got[k : k + 1], expected, atol=2e-3, rtol=1e-5)
    assert got[0].std() > 10  # a real face, not an empty crop


def test_no_boxes_gives_an_empty_batch():
    pyramid = FlatPyramid([torch.zeros((1, 3, 10, 10), dtype=torch.uint8)])
    out = pyramid.crops(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, 4)), 24)
    assert out.shape == (0, 3, 24, 24)


@pytest.mark.parametrize("length", [1, 2, 50])
def test_axis_weights_rows_sum_to_one_inside_and_zero_far_outside(length):
    start = np.array([-10.0, 0.0, 5.0, 60.0], dtype=np.float32)
    weights, origin, patch = axis_weights(start, start + 8, 8, np.full(4, length))
    sums = weights.sum(axis=2)
    inside = (start - 0.5)[:, None] + (np.arange(8) + 0.5) >= -1  # sample positions not left of the image
    inside &= (start - 0.5)[:, None] + (np.arange(8) + 0.5) <= length
    np.testing.assert_allclose(sums, inside.astype(np.float32), atol=1e-6)
    assert (origin >= 0).all() and patch <= max(length, 1) and (weights >= 0).all()
