"""One image path: a photo is decoded once, in the dtype and channels the preprocessor reads.

Grey stays one channel, uint16 and float keep their precision; uint8 RGB photos give what they gave
before, checked against a crop computed here directly with torchvision's ``roi_align`` on the whole
photo (not through emotionkit's window cropping or dtype handling).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.ops import roi_align

from emotionkit import EmotionRecognizer
from emotionkit._roi import roi_align_window
from emotionkit.io import as_image_array, decode_image, load_image, to_uint8_rgb
from emotionkit.preprocessing import FacePreprocessor
from emotionkit.types import Detection

LUMA = (0.299, 0.587, 0.114)


def reference_crops(pre: FacePreprocessor, photo: np.ndarray, detections: list[Detection]) -> torch.Tensor:
    """The crops as main's uint8 RGB path made them, written out here: the window of the photo the faces
    cover (``_roi``, unchanged) to float / 255, PIL's luma for a grey model, roi_align, then mean and std."""

    def old_conversion(window: torch.Tensor) -> torch.Tensor:
        x = window.float().div_(255.0)
        return x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2] if pre.channels == 1 else x

    boxes = torch.tensor([[0.0, *pre.crop_box(d)] for d in detections], dtype=torch.float32)
    out = roi_align_window(photo, boxes, pre.size, sampling_ratio=-1, convert=old_conversion).clamp_(0.0, 1.0)
    mean = torch.tensor(pre.mean).view(1, -1, 1, 1)
    std = torch.tensor(pre.std).view(1, -1, 1, 1)
    return (out - mean) / std if pre.mean != (0.0,) * pre.channels or pre.std != (1.0,) * pre.channels else out


def exact_crops(pre: FacePreprocessor, image: np.ndarray, detections: list[Detection]) -> torch.Tensor:
    """The crops of an image in [0, 1] computed in float64 on the whole photo (no window, no dtype handling)."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64)).permute(2, 0, 1)[None]
    if pre.channels == 1 and x.shape[1] == 3:
        x = sum(w * x[:, i : i + 1] for i, w in enumerate(LUMA))
    elif pre.channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    boxes = torch.tensor([[0.0, *pre.crop_box(d)] for d in detections], dtype=torch.float64)
    out = roi_align(x, boxes, pre.size, 1.0, -1, True).clamp(0.0, 1.0)
    mean = torch.tensor(pre.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float64).view(1, -1, 1, 1)
    return ((out - mean) / std).float()


@pytest.fixture(scope="module")
def photo(sample_photo) -> np.ndarray:
    with Image.open(sample_photo) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module", params=["cnn", "mobilenetv2"])
def bundled(request) -> EmotionRecognizer:
    """A bundled model: ``cnn`` reads 48 px grey faces, ``mobilenetv2`` larger normalised grey ones."""
    return EmotionRecognizer.from_pretrained(request.param, detector="none")


@pytest.fixture(scope="module")
def face(mtcnn_recognizer, sample_photo) -> Detection:
    return mtcnn_recognizer.predict(sample_photo)[0].detection


@pytest.mark.parametrize("channels", [1, 3])
def test_uint8_rgb_photos_crop_as_before(photo, face, channels):
    pre = FacePreprocessor(size=48, channels=channels)
    assert decode_image(photo) is photo or np.array_equal(decode_image(photo), photo)
    np.testing.assert_allclose(pre.crops(photo, [face]), reference_crops(pre, photo, [face]), atol=1e-6, rtol=0)


def test_uint8_rgb_photos_give_the_same_probabilities(bundled, photo, face, sample_photo):
    expected = bundled.inference.probabilities(reference_crops(bundled.preprocessor, photo, [face]))
    got = bundled.inference.probabilities(bundled.preprocessor.crops(decode_image(sample_photo), [face]))
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_a_grey_photo_stays_one_channel(tmp_path, photo, face, mtcnn_recognizer):
    path = tmp_path / "grey.png"
    Image.fromarray(photo).convert("L").save(path)
    grey = decode_image(path)
    assert grey.shape == (*photo.shape[:2], 1) and grey.dtype == np.uint8  # not copied to three channels
    assert load_image(path).shape == photo.shape  # detectors still get RGB
    as_rgb = np.repeat(grey, 3, axis=2)  # what the old path fed the preprocessor
    for channels in (1, 3):
        pre = FacePreprocessor(size=48, channels=channels)
        np.testing.assert_allclose(pre.crops(grey, [face]), reference_crops(pre, as_rgb, [face]), atol=1e-6, rtol=0)
    faces = mtcnn_recognizer.predict(path)
    old = mtcnn_recognizer.predict(as_rgb)
    assert [f.detection for f in faces] == [f.detection for f in old]
    for new_face, old_face in zip(faces, old):
        np.testing.assert_allclose(list(new_face.scores.values()), list(old_face.scores.values()), atol=1e-6)


def test_float_photos_keep_their_precision(photo, face, bundled):
    pre = bundled.preprocessor
    shifted = np.clip(photo.astype(np.float32) / 255.0 + 0.4 / 255.0, 0.0, 1.0)  # between the uint8 levels
    decoded = decode_image(shifted)
    assert decoded.dtype == np.float32 and np.array_equal(decoded, shifted)
    crops = pre.crops(decoded, [face])
    rounded = pre.crops(to_uint8_rgb(shifted), [face])  # the old path: rounded to uint8 first
    exact = exact_crops(pre, shifted, [face])
    # 1e-5 of a pixel's range in float32 rounding, which normalisation divides by the std (0.226 for mobilenetv2).
    np.testing.assert_allclose(crops, exact, atol=1e-5 / min(pre.std), rtol=0)
    assert float((rounded - exact).abs().max()) > 1e-3  # rounding moved pixels by about 0.4/255
    # the float photo and its uint8 version classify alike
    as_uint8 = bundled.inference.probabilities(pre.crops(photo, [face]))
    as_float = bundled.inference.probabilities(pre.crops(decode_image(photo.astype(np.float32) / 255.0), [face]))
    np.testing.assert_allclose(as_float, as_uint8, atol=1e-5, rtol=0)


def test_uint16_photos_scale_by_65535(photo, face, bundled):
    wide = photo.astype(np.uint16) * 257  # 0..255 -> 0..65535, the same values
    decoded = decode_image(wide)
    assert decoded.dtype == np.uint16
    for channels in (1, 3):
        pre = FacePreprocessor(size=48, channels=channels)
        np.testing.assert_allclose(pre.crops(decoded, [face]), pre.crops(photo, [face]), atol=1e-6, rtol=0)
    faces = bundled.predict_batch([wide, photo])
    np.testing.assert_allclose(list(faces[0][0].scores.values()), list(faces[1][0].scores.values()), atol=1e-6, rtol=0)


def test_a_16_bit_grey_file_is_read_as_16_bit(tmp_path):
    values = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    decoded = decode_image(path)
    assert decoded.shape == (64, 64, 1) and decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded[..., 0], values)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    layout=st.sampled_from(["hw", "hw1", "hw3", "hw4"]),
    dtype=st.sampled_from(["uint8", "uint16", "float32", "float64", "bool", "int32"]),
    seed=st.integers(0, 2**16),
)
def test_decoded_arrays_give_load_image_exactly(h, w, layout, dtype, seed):
    rng = np.random.default_rng(seed)
    channels = {"hw": None, "hw1": 1, "hw3": 3, "hw4": 4}[layout]
    shape = (h, w) if channels is None else (h, w, channels)
    if dtype in ("float32", "float64"):
        array = rng.random(shape).astype(dtype)
    elif dtype == "bool":
        array = rng.random(shape) > 0.5
    else:
        high = {"uint8": 256, "uint16": 65536, "int32": 256}[dtype]
        array = rng.integers(0, high, shape).astype(dtype)
    decoded = as_image_array(array)
    assert decoded.shape == (h, w, 3 if channels in (3, 4) else 1)
    assert decoded.dtype in (np.uint8, np.uint16, np.float32)
    rgb = to_uint8_rgb(array)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(to_uint8_rgb(decoded), rgb)  # decoding once loses nothing load_image keeps


def test_predict_on_a_grey_file_equals_predict_on_its_rgb_copy(tmp_path, fer_faces, model_dir):
    rec = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    path = tmp_path / "face.png"
    Image.fromarray(fer_faces[0]).save(path)
    assert decode_image(path).shape == (48, 48, 1)
    got = rec.predict(path)[0].scores
    old = rec.predict(np.repeat(fer_faces[0][..., None], 3, axis=2))[0].scores
    np.testing.assert_allclose(list(got.values()), list(old.values()), atol=1e-6, rtol=0)
