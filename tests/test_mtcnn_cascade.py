"""The vectorised MTCNN cascade: same faces as facenet-pytorch's detect_face on real photos, batching, defaults."""

from __future__ import annotations

import numpy as np
import pytest

from emotionkit.detectors._cascade import pyramid_scales
from emotionkit.detectors.mtcnn import MTCNNDetector
from emotionkit.io import load_image


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def photo(sample_photo) -> np.ndarray:
    return load_image(sample_photo)


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector()


def test_defaults_are_the_measured_fast_settings(detector):
    assert (detector.max_side, detector.factor, detector.min_face_size) == (1280, 0.6, 20)
    assert detector.thresholds == [0.7, 0.7, 0.7]


def test_finds_the_hand_labelled_face_like_facenet_pytorch_does(detector, photo, sample_face_box):
    import torch
    from facenet_pytorch.models.utils.detect_face import detect_face

    faces = detector.detect(photo)
    assert len(faces) == 1 and faces[0].score > 0.99
    assert _iou(faces[0].box, sample_face_box) > 0.75
    net = MTCNNDetector()._net.to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        boxes, _ = detect_face(photo[None], 20, net.pnet, net.rnet, net.onet, [0.6, 0.7, 0.7], 0.709, "cpu")
    reference = [b for b in boxes[0] if b[4] >= 0.9]
    assert len(reference) == 1 and _iou(faces[0].box, reference[0][:4]) > 0.85
    (x1, y1, x2, y2), marks = faces[0].box, np.array(faces[0].landmarks)
    assert marks.shape == (5, 2) and ((marks >= [x1, y1]) & (marks <= [x2, y2])).all()


def test_batch_equals_one_by_one_and_mixed_sizes_keep_order(detector, photo):
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    small = photo[::2, ::2].copy()
    batch = detector.detect_batch([photo, mirrored, small, photo])
    singles = [detector.detect(im) for im in (photo, mirrored, small, photo)]
    for got, expected in zip(batch, singles):
        assert len(got) == len(expected) == 1
        np.testing.assert_allclose(got[0].box, expected[0].box, atol=1e-2)
    x1, y1, x2, y2 = batch[1][0].box
    assert _iou((512 - x2, y1, 512 - x1, y2), batch[0][0].box) > 0.8  # the mirror image's face is mirrored
    np.testing.assert_allclose(np.array(batch[2][0].box) * 2, batch[0][0].box, atol=8)  # half size, same face


def test_no_face_in_a_real_photo_without_people(detector, photo):
    # The sample photo below the astronaut's chin: spacesuit, hands, flag and a model shuttle, no face.
    below_the_face = np.ascontiguousarray(photo[220:])
    assert detector.detect(below_the_face) == []
    assert len(detector.detect(photo)) == 1  # the same photo with the face kept still finds it
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []  # smaller than any face


def test_max_side_downscales_big_photos_and_maps_boxes_back(photo):
    from PIL import Image

    big = np.asarray(Image.fromarray(photo).resize((2048, 2048), Image.Resampling.BILINEAR))
    faces = MTCNNDetector().detect(big)  # detected at 1280 px, boxes in 2048 px coordinates
    assert len(faces) == 1
    small_box = tuple(v / 4 for v in faces[0].box)  # back to the 512-pixel photo
    assert _iou(small_box, MTCNNDetector().detect(photo)[0].box) > 0.85


def test_pyramid_scales_follow_min_face_size_and_factor():
    assert pyramid_scales(512, 512, 20, 0.709)[0] == pytest.approx(0.6)
    assert len(pyramid_scales(512, 512, 20, 0.6)) < len(pyramid_scales(512, 512, 20, 0.709))
    assert pyramid_scales(11, 500, 20, 0.7) == []


@pytest.mark.parametrize("side", [30.0, 36.0, 70.0, 300.0])
def test_rnet_crops_never_enlarge_a_coarser_level_onet_crops_take_the_nearest(photo, side):
    import torch
    from torchvision.ops import roi_align

    from emotionkit.detectors._cascade import _crops, _pyramid
    from emotionkit.detectors._resample import FlatPyramid

    image = torch.from_numpy(photo.copy()).permute(2, 0, 1).unsqueeze(0)
    levels = _pyramid(image, pyramid_scales(*photo.shape[:2], 20, 0.6))
    box = torch.tensor([[180.0, 60.0, 180.0 + side, 60.0 + side]])  # on the astronaut's face
    ratios = np.array([lv.shape[-1] / photo.shape[1] for lv in levels])
    crop_side = side + 1  # the crop spans pixels x1 - 1 .. x2
    for size, upsample in ((24, False), (48, True)):
        got = _crops(FlatPyramid(levels), box, torch.zeros(1, dtype=torch.long), size, upsample=upsample)
        if upsample:
            j = int(np.abs(np.log(crop_side * ratios / size)).argmin())
        else:
            j = int(np.flatnonzero(crop_side * ratios >= size)[-1])  # levels shrink: the last big enough one
            assert crop_side * ratios[j] >= size
        roi = torch.tensor([[0.0, 179.0, 59.0, 180.0 + side, 60.0 + side]]) * torch.tensor(
            [1.0, *[float(ratios[j])] * 4]
        )
        expected = roi_align(levels[j].float().contiguous(), roi, (size, size), 1.0, 1, True)
        torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-5)
