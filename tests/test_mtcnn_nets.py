"""The rearranged MTCNN networks compute what facenet-pytorch's do, on real pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from emotionkit.detectors._cascade import _pyramid, pyramid_scales
from emotionkit.detectors._nets import FastONet, FastPNet, FastRNet, max_pool_ceil
from emotionkit.io import load_image


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 12),
    height=st.integers(3, 40),
    width=st.integers(3, 40),
    kernel=st.sampled_from([2, 3]),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_strided_max_pool_equals_ceil_mode_max_pool2d(batch, channels, height, width, kernel, channels_last, seed):
    x = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool_ceil(x, kernel), F.max_pool2d(x, kernel, 2, ceil_mode=True))


@pytest.fixture(scope="module")
def nets():
    from facenet_pytorch import MTCNN

    net = MTCNN().eval().to(memory_format=torch.channels_last)
    return net, FastPNet(net.pnet), FastRNet(net.rnet), FastONet(net.onet)


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return ((x - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def test_pnet_matches_facenet_on_every_level_of_a_real_photo(nets, sample_photo):
    net, pnet, _, _ = nets
    photo = torch.from_numpy(load_image(sample_photo).copy()).permute(2, 0, 1)[None]
    levels = _pyramid(photo, pyramid_scales(512, 512, 20, 0.6))[1:]
    assert levels[0].shape[-1] > 300  # the first level takes the strided-pool path, the small ones max_pool2d
    for level in levels:
        raw = level.float().contiguous(memory_format=torch.channels_last)
        reg, prob = net.pnet(_normalised(raw))
        fast_reg, score = pnet(raw)
        torch.testing.assert_close(fast_reg, reg.permute(0, 2, 3, 1), atol=1e-5, rtol=0)
        torch.testing.assert_close(score, prob[:, 1], atol=1e-5, rtol=0)


@torch.inference_mode()
def test_rnet_and_onet_match_facenet_on_real_crops(nets, sample_photo, sample_face_box):
    net, _, rnet, onet = nets
    photo = load_image(sample_photo)
    rng = np.random.default_rng(0)
    x1, y1, x2, y2 = sample_face_box
    boxes = np.array([x1, y1, x2, y2]) + rng.normal(0, 30, (40, 4))  # the face, parts of it, and background
    for size, fast in ((24, rnet), (48, onet)):
        crops = []
        for a, b, c, d in boxes.astype(int).clip(0, 511):
            crop = torch.from_numpy(photo[min(b, d) : max(b, d) + 2, min(a, c) : max(a, c) + 2].copy())
            crops.append(F.interpolate(crop.permute(2, 0, 1)[None].float(), size=(size, size), mode="bilinear"))
        raw = torch.cat(crops).contiguous(memory_format=torch.channels_last)
        reference = (net.rnet if size == 24 else net.onet)(_normalised(raw))
        got = fast(raw)
        torch.testing.assert_close(got[-1], reference[-1][:, 1], atol=1e-5, rtol=0)  # face score
        for mine, theirs in zip(got[:-1], reference[:-1]):  # regression (and O-Net's landmarks)
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
        assert 0 < int((got[-1] > 0.7).sum()) < len(raw)  # faces and non-faces among the crops


def test_packed_pyramid_levels_give_the_candidates_of_each_level_alone(nets, sample_photo):
    """P-Net once over levels packed in a canvas = P-Net on each level alone (the sample photo, both ways
    up), except in the last cell row or column of an odd-sized level, whose window reaches one pixel past
    the level: there max-pooling sees the canvas's zeros instead of its padding."""
    from emotionkit.detectors._cascade import _out_cells, _pack, _pnet_level, _pnet_packed

    _, pnet, _, _ = nets
    photo = load_image(sample_photo)
    batch = torch.from_numpy(np.stack([photo, np.ascontiguousarray(photo[::-1, ::-1])])).permute(0, 3, 1, 2)
    scales = pyramid_scales(512, 512, 20, 0.6)
    levels = _pyramid(batch, scales)[1:]
    ids = list(range(1, len(levels)))
    offsets, (height, _) = _pack([tuple(lv.shape[-2:]) for lv in levels[1:]])
    assert all(y % 2 == 0 and x % 2 == 0 for y, x in offsets) and height == levels[1].shape[-2] + 1

    def rows(boxes: torch.Tensor, inds: torch.Tensor, k: int) -> dict[tuple, torch.Tensor]:
        h, w = levels[k].shape[-2:]
        last_x = np.floor((2 * (_out_cells(w) - 1) + 1) / np.float32(scales[k])) if w % 2 else None
        last_y = np.floor((2 * (_out_cells(h) - 1) + 1) / np.float32(scales[k])) if h % 2 else None
        return {
            (int(i), float(b[0]), float(b[1])): b
            for b, i in zip(boxes, inds)
            if float(b[0]) != last_x and float(b[1]) != last_y
        }

    with torch.inference_mode():
        boxes, inds, level = _pnet_packed(pnet, levels[1:], scales[1:], ids, 0.5)
        for k in ids:
            mine = rows(boxes[level == k], inds[level == k], k)
            theirs = rows(*_pnet_level(pnet, levels[k], scales[k], 0.5), k)
            assert mine.keys() == theirs.keys() and len(mine) > 0, k
            torch.testing.assert_close(torch.stack(list(mine.values())), torch.stack([theirs[key] for key in mine]))
