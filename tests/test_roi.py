"""roi_align_window: cropping from the boxes' window gives the crops of the whole image, exactly."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import roi_align

from emotionkit._roi import roi_align_window


def _to_float(t: torch.Tensor) -> torch.Tensor:
    return t.float().div(255.0)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    batch=st.integers(1, 2),
    boxes=st.lists(
        st.tuples(st.floats(-40, 120), st.floats(-40, 120), st.floats(0.5, 80), st.floats(0.5, 80), st.integers(0, 1)),
        min_size=1,
        max_size=5,
    ),
    size=st.sampled_from([(24, 24), (48, 48), (7, 5)]),
    sampling_ratio=st.sampled_from([-1, 1, 2]),
    seed=st.integers(0, 2**16),
    as_array=st.booleans(),
)
def test_window_equals_whole_image(height, width, batch, boxes, size, sampling_ratio, seed, as_array):
    # Boxes anywhere: inside, across the edges, wholly outside the image.
    array = np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    image = torch.from_numpy(array).permute(0, 3, 1, 2)  # channels-last view, as the cascade passes it
    rois = torch.tensor([[min(i, batch - 1), x, y, x + w, y + h] for x, y, w, h, i in boxes], dtype=torch.float32)
    expected = roi_align(_to_float(image).contiguous(), rois, size, 1.0, sampling_ratio, True)
    got = roi_align_window(array if as_array else image, rois, size, sampling_ratio=sampling_ratio, convert=_to_float)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # float32 rounding of the shifted sample positions


def test_real_photo_face_window_matches():
    from emotionkit.io import load_image, sample_image_path

    photo = load_image(sample_image_path())  # read-only (H, W, 3) uint8: the array path
    image = torch.from_numpy(photo.copy()).permute(2, 0, 1).unsqueeze(0)
    rois = torch.tensor([[0.0, 171.3, 51.6, 276.2, 180.8]])  # around the astronaut's face
    expected = roi_align(_to_float(image).contiguous(), rois, (48, 48), 1.0, -1, True)
    got = roi_align_window(photo, rois, (48, 48), sampling_ratio=-1, convert=_to_float)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # float32 rounding of the shifted sample positions
    assert got.std() > 0.05  # a real face, not an empty crop


def test_no_boxes_gives_empty_batch():
    image = torch.zeros((1, 3, 10, 10), dtype=torch.uint8)
    out = roi_align_window(image, torch.zeros((0, 5)), (4, 4), sampling_ratio=1, convert=_to_float)
    assert out.shape == (0, 3, 4, 4)
