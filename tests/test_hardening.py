"""Recognizer inputs that used to give silent wrong answers or raw tracebacks (issue 20), on real faces and photos."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from emotionkit import EmotionRecognizer
from emotionkit.devices import available_devices, resolve_device
from emotionkit.exceptions import (
    DeviceUnavailableError,
    EmotionKitError,
    EmotionKitWarning,
    ImageNotFoundError,
    InvalidImageError,
    InvalidOptionError,
)
from emotionkit.types import BatchResults


# ------------------------------------------------------------------------------------------- predict_proba shapes
def test_one_face_with_a_trailing_channel_axis_is_one_face(recognizer, fer_faces):
    face = fer_faces[0]
    expected = recognizer.predict_proba(face[None])
    for array in (face[:, :, None], np.repeat(face[:, :, None], 3, axis=2)):
        probs = recognizer.predict_proba(array)
        assert probs.shape == (1, 7)  # not (48, 7): 48 faces of 48x1 pixels
        np.testing.assert_allclose(probs, expected, atol=1e-6)
    batch = recognizer.predict_proba(np.repeat(fer_faces[:5, :, :, None], 3, axis=3))
    np.testing.assert_allclose(batch, recognizer.predict_proba(fer_faces[:5]), atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1), (4, 20, 20), (1, 47, 48, 3)])
def test_faces_smaller_than_the_model_input_are_refused(recognizer, fer_faces, shape):
    faces = np.zeros(shape, np.uint8)
    with pytest.raises(InvalidImageError) as excinfo:
        recognizer.predict_proba(faces)
    assert isinstance(excinfo.value, ValueError) and str(shape) in str(excinfo.value)
    if len(shape) > 2:
        assert "48x48 input" in str(excinfo.value) and "upscale=True" in str(excinfo.value)


def test_small_faces_with_upscale_are_resized(recognizer, fer_faces):
    small = np.asarray(Image.fromarray(fer_faces[0]).resize((24, 24)))
    probs = recognizer.predict_proba(small[None], upscale=True)
    assert probs.shape == (1, 7) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    larger = np.asarray(Image.fromarray(fer_faces[0]).resize((96, 96)))
    assert recognizer.predict_proba(larger[None]).shape == (1, 7)  # larger faces are still resized down


# ------------------------------------------------------------------------------------------- predict on crops
def test_no_face_in_a_face_crop_warns_to_use_detector_none(mtcnn_recognizer, recognizer, fer_faces):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmotionKitWarning)
        missed = [face for face in fer_faces[:16] if not mtcnn_recognizer.predict(face)]
    assert len(missed) >= 2  # real 48x48 FER-2013 faces that MTCNN does not find
    crop = missed[0]
    with pytest.warns(EmotionKitWarning, match=r"No face found in 1 image.*48x48 input.*detector='none'"):
        assert mtcnn_recognizer.predict(crop) == []
    with pytest.warns(EmotionKitWarning, match=r"No face found in 2 image"):
        mtcnn_recognizer.predict_batch([missed[0], missed[1]])
    (face,) = recognizer.predict(crop)  # detector "none": the crop is classified
    assert face.box == (0.0, 0.0, 48.0, 48.0)


def test_no_face_in_a_large_photo_does_not_warn(mtcnn_recognizer):
    blank = np.full((300, 400, 3), 128, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mtcnn_recognizer.predict(blank) == []


# ------------------------------------------------------------------------------------------- predict_batch
@pytest.mark.parametrize("kind", ["str", "path", "array", "pil"])
def test_predict_batch_refuses_one_image(recognizer, sample_photo, kind):
    image = {
        "str": str(sample_photo),
        "path": sample_photo,
        "array": np.zeros((64, 64, 3), np.uint8),
        "pil": Image.open(sample_photo),
    }[kind]
    with pytest.raises(InvalidImageError) as excinfo:
        recognizer.predict_batch(image)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert "predict_batch takes a sequence" in message and "predict(image)" in message
    assert "directory" not in message  # never a loop over a string's characters


def test_predict_batch_skip_keeps_the_good_results(mtcnn_recognizer, sample_photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(sample_photo.read_bytes()[:3000])
    images = [sample_photo, broken, tmp_path / "missing.jpg", str(sample_photo)]
    with pytest.raises(InvalidImageError, match="broken.jpg"):
        mtcnn_recognizer.predict_batch(images)
    batch = mtcnn_recognizer.predict_batch(images, errors="skip")
    assert isinstance(batch, BatchResults) and len(batch) == 4 and batch.ok == [True, False, False, True]
    assert sorted(batch.errors) == [1, 2]
    assert isinstance(batch.errors[1], InvalidImageError) and isinstance(batch.errors[2], ImageNotFoundError)
    alone = [list(f.scores.values()) for f in mtcnn_recognizer.predict(sample_photo)]
    assert batch[1] == batch[2] == [] and len(alone) == 1
    for i in (0, 3):
        np.testing.assert_allclose([list(f.scores.values()) for f in batch[i]], alone, atol=1e-5)
    assert mtcnn_recognizer.predict_batch([broken], errors="skip") == [[]]
    with pytest.raises(InvalidOptionError, match="'raise' or 'skip'"):
        mtcnn_recognizer.predict_batch(images, errors="ignore")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "gpu"])
def test_unavailable_device_lists_the_available_ones(model_dir, device):
    if device in ("cuda", "cuda:7") and "cuda:7" in available_devices():
        pytest.skip("this machine has 8 CUDA GPUs")
    if device == "cuda" and "cuda:0" in available_devices():
        pytest.skip("this machine has a CUDA GPU")
    if device == "mps" and "mps" in available_devices():
        pytest.skip("this machine has MPS")
    with pytest.raises(DeviceUnavailableError) as excinfo:
        EmotionRecognizer.from_pretrained(model_dir, detector="none", device=device)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, RuntimeError) and isinstance(excinfo.value, EmotionKitError)
    assert repr(device) in message and "Available here: cpu" in message.replace("available here", "Available here")


def test_cpu_devices_resolve():
    assert resolve_device(None).type == resolve_device("cpu").type == "cpu"


def test_fer_sized_faces_are_taken_by_a_model_with_a_larger_input(fer_faces):
    """The bundled mobilenetv2 reads faces larger than 48x48, trained from FER-2013's crops enlarged: those are not refused."""
    from emotionkit import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained("mobilenetv2", detector="none")
    height, width = rec.preprocessor.size
    assert height > 48 and width > 48
    probs = rec.predict_proba(fer_faces[:4])
    np.testing.assert_allclose(probs, rec.predict_proba(fer_faces[:4], upscale=True), atol=0)
    with pytest.raises(InvalidImageError, match=f"smaller than the model's {height}x{width} input and than the 48x48"):
        rec.predict_proba(fer_faces[:4, :40, :40])
