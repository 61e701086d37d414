"""FacePreprocessor: one path for photos (crops) and pre-cropped faces, configs that round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from emotionkit.exceptions import EmotionKitError, InvalidImageError
from emotionkit.preprocessing import FacePreprocessor, rgb_to_gray
from emotionkit.types import Detection


def test_faces_shapes_and_range(fer_faces):
    pre = FacePreprocessor(size=48, channels=1)
    x = pre.faces(fer_faces[:5])
    assert x.shape == (5, 1, 48, 48) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0].numpy(), fer_faces[:5] / 255.0, atol=1e-6)  # no resize: exact


def test_rgb_faces_become_pil_luma():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    x = FacePreprocessor(channels=1).faces(faces)
    luma = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in faces]) / 255.0
    np.testing.assert_allclose(x[:, 0].numpy(), luma, atol=1.5 / 255)  # PIL rounds to integers


def test_gray_faces_expand_to_three_channels():
    x = FacePreprocessor(channels=3).faces(np.full((2, 48, 48), 51, np.uint8))
    assert x.shape == (2, 3, 48, 48)
    np.testing.assert_allclose(x.numpy(), 0.2, atol=1e-6)


def test_resize_and_normalise():
    pre = FacePreprocessor(size=(32, 24), channels=1, mean=[0.5], std=[0.25])
    x = pre.faces(np.full((1, 96, 96), 255, np.uint8))
    assert x.shape == (1, 1, 32, 24)
    np.testing.assert_allclose(x.numpy(), 2.0, atol=1e-5)  # (1 - 0.5) / 0.25


def test_tensor_input_equals_array_input(fer_faces):
    pre = FacePreprocessor()
    np.testing.assert_array_equal(pre.faces(torch.from_numpy(fer_faces[:4])), pre.faces(fer_faces[:4]))


def test_crops_of_whole_image_match_faces(fer_faces):
    pre = FacePreprocessor(margin=0.0)
    rgb = np.repeat(fer_faces[0][:, :, None], 3, axis=2)
    crop = pre.crops(rgb, [Detection((0.0, 0.0, 48.0, 48.0))])
    np.testing.assert_allclose(crop.numpy(), pre.faces(fer_faces[:1]).numpy(), atol=1e-5)


def test_crops_batch_and_margin():
    image = np.zeros((100, 200, 3), np.uint8)
    image[20:60, 30:70] = 255  # a white square "face"
    pre = FacePreprocessor(size=16, channels=3, margin=0.0)
    dets = [Detection((30.0, 20.0, 70.0, 60.0)), Detection((150.0, 50.0, 190.0, 90.0))]
    x = pre.crops(image, dets)
    assert x.shape == (2, 3, 16, 16)
    assert x[0, :, 1:-1, 1:-1].min() > 0.99 and x[0].min() > 0.9  # bilinear sampling blurs the outer half pixel
    assert x[1].max() < 0.01
    assert pre.crops(image, []).shape == (0, 3, 16, 16)


def test_crop_box_is_a_square_with_margin():
    box = FacePreprocessor(margin=0.5).crop_box(Detection((10.0, 20.0, 30.0, 60.0)))
    assert box == (-10.0, 10.0, 50.0, 70.0)  # side max(20, 40) * 1.5 = 60 around the centre (20, 40)


def test_config_round_trip_through_json():
    pre = FacePreprocessor(size=(40, 32), channels=3, mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2], margin=0.25)
    again = FacePreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again == pre
    np.testing.assert_array_equal(again.faces(np.ones((1, 8, 8, 3))), pre.faces(np.ones((1, 8, 8, 3))))


@pytest.mark.parametrize(
    ("faces", "fragment"),
    [
        (np.zeros((48, 48), np.uint8), "(48, 48)"),  # a single face without the batch axis
        (np.zeros((2, 48, 48, 5), np.uint8), "(2, 48, 48, 5)"),
        (np.zeros((2, 1, 48, 48), np.float32), "channels last"),
        (np.zeros((0, 48, 48), np.uint8), "empty"),
        (np.full((1, 48, 48), np.nan, np.float32), "NaN"),
        (np.full((1, 48, 48), 3.0, np.float32), "[3, 3]"),
        ([[1, 2], [3, 4]], "list"),
    ],
    ids=["no-batch-axis", "5-channels", "channels-first", "empty", "nan", "float>1", "list"],
)
def test_bad_faces(faces, fragment):
    with pytest.raises(InvalidImageError) as excinfo:
        FacePreprocessor().faces(faces)
    assert isinstance(excinfo.value, EmotionKitError) and isinstance(excinfo.value, ValueError)
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize(
    "kwargs", [{"channels": 2}, {"std": [0.0]}, {"channels": 3, "mean": [0.1, 0.2]}, {"margin": 5.0}]
)
def test_invalid_configs(kwargs):
    with pytest.raises(ValueError):
        FacePreprocessor(**kwargs)


def test_rgb_to_gray_weights():
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert float(rgb_to_gray(x)) == pytest.approx(0.299)
