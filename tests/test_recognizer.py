"""EmotionRecognizer end to end: loading and saving, predict / predict_proba, bad input, threads, MTCNN."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from emotionkit import EMOTIONS, EmotionRecognizer, FaceEmotion, FacePreprocessor, build_backbone
from emotionkit.exceptions import (
    ChecksumMismatchError,
    EmotionKitError,
    IncompatibleComponentsError,
    InvalidImageError,
    InvalidWeightsError,
    NoBundledWeightsError,
    UnknownModelError,
)
from emotionkit.io import load_image
from emotionkit.recognizer import bundled_models
from emotionkit.weights import WEIGHTS_NAME, load_weights, sha256sum


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def check_face(face: FaceEmotion, width: int, height: int) -> None:
    assert isinstance(face, FaceEmotion)
    assert tuple(face.scores) == EMOTIONS
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= v <= 1.0 for v in face.scores.values())
    assert face.label == max(face.scores, key=face.scores.get)
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    json.dumps(face.to_dict())


# ------------------------------------------------------------------------------------------------ loading / saving
def test_unknown_model_name_lists_and_suggests():
    with pytest.raises(UnknownModelError) as excinfo:
        EmotionRecognizer.from_pretrained("vitt")
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert "Unknown model 'vitt'" in message and "cnn, efficientnet, mobilenetv2, resnet, vit" in message
    assert "Did you mean 'vit'?" in message


def test_unknown_model_path_says_no_directory(tmp_path):
    with pytest.raises(UnknownModelError, match="no model directory"):
        EmotionRecognizer.from_pretrained(str(tmp_path / "runs" / "missing"))


def test_bundled_name_loads_or_says_no_weights_yet():
    # Robust to the bundled weights landing: either they load, or the error says there are none yet.
    if "cnn" in bundled_models():
        rec = EmotionRecognizer.from_pretrained("cnn", detector="none")
        assert rec.predict_proba(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
    else:
        with pytest.raises(NoBundledWeightsError, match="'cnn' ships no bundled weights yet") as excinfo:
            EmotionRecognizer.from_pretrained("cnn", detector="none")
        assert isinstance(excinfo.value, LookupError)


def test_save_pretrained_round_trip_gives_identical_outputs(recognizer, tmp_path, fer_faces):
    saved = recognizer.save_pretrained(tmp_path / "copy")
    assert {p.name for p in saved.iterdir()} >= {"config.json", "preprocessor.json", "model.safetensors"}
    again = EmotionRecognizer.from_pretrained(saved, detector="none")
    np.testing.assert_array_equal(again.predict_proba(fer_faces), recognizer.predict_proba(fer_faces))
    assert again.labels == recognizer.labels and again.preprocessor == recognizer.preprocessor
    config = json.loads((saved / "config.json").read_text())
    assert config["backbone"] == "cnn" and config["weights_sha256"] == sha256sum(saved / WEIGHTS_NAME)


@pytest.mark.parametrize("runtime", ["torch", "auto"])
def test_flip_tta_is_saved_loaded_and_overridable(runtime, tmp_path, fer_faces):
    """A model saved with flip_tta predicts the mean of each face's and its mirror image's logits, on torch and
    on the onnxruntime graph alike; ``from_pretrained(flip_tta=False)`` or ``rec.flip_tta = False`` gives one crop."""
    cnn = EmotionRecognizer.from_pretrained("cnn", detector="none", runtime="torch", flip_tta=False)
    assert cnn.flip_tta is False
    x = cnn.preprocessor.faces(fer_faces)
    one, mirrored = cnn.logits(x), cnn.logits(torch.flip(x, dims=[3]))
    expected = torch.softmax((one + mirrored) / 2 / cnn.temperature, dim=1).numpy()
    cnn.flip_tta = True
    saved = cnn.save_pretrained(tmp_path / "flip")
    assert json.loads((saved / "config.json").read_text())["flip_tta"] is True
    rec = EmotionRecognizer.from_pretrained(saved, detector="none", runtime=runtime)
    assert rec.flip_tta is True
    np.testing.assert_allclose(rec.predict_proba(fer_faces), expected, atol=1e-5)
    assert not np.allclose(expected, torch.softmax(one / cnn.temperature, dim=1).numpy(), atol=1e-3)
    plain = EmotionRecognizer.from_pretrained(saved, detector="none", runtime=runtime, flip_tta=False)
    np.testing.assert_allclose(plain.predict_proba(fer_faces), torch.softmax(one / cnn.temperature, 1), atol=1e-5)
    rec.flip_tta = False
    np.testing.assert_allclose(rec.predict_proba(fer_faces), plain.predict_proba(fer_faces), atol=1e-6)


def test_a_config_whose_flip_tta_is_not_a_bool_is_refused(model_dir, tmp_path):
    broken = shutil.copytree(model_dir, tmp_path / "odd")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "flip_tta": "yes"}))
    with pytest.raises(InvalidWeightsError, match="'flip_tta' must be true or false, got 'yes'"):
        EmotionRecognizer.from_pretrained(broken, detector="none")


def test_half_precision_save_is_close(recognizer, tmp_path, fer_faces):
    again = EmotionRecognizer.from_pretrained(recognizer.save_pretrained(tmp_path / "half", half=True), detector="none")
    np.testing.assert_allclose(again.predict_proba(fer_faces), recognizer.predict_proba(fer_faces), atol=2e-3)


def test_checksum_mismatch(model_dir, tmp_path):
    broken = shutil.copytree(model_dir, tmp_path / "tampered")
    data = bytearray((broken / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0xFF  # flip the last byte of the last tensor
    (broken / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as excinfo:
        EmotionRecognizer.from_pretrained(broken, detector="none")
    message = str(excinfo.value)
    assert isinstance(excinfo.value, EmotionKitError) and isinstance(excinfo.value, ValueError)
    expected = json.loads((model_dir / "config.json").read_text())["weights_sha256"]
    assert expected in message and sha256sum(broken / WEIGHTS_NAME) in message and "tampered" in message
    with pytest.raises(ChecksumMismatchError):
        load_weights(model_dir / WEIGHTS_NAME, "0" * 64)


def test_channel_mismatch_names_both_values():
    with pytest.raises(IncompatibleComponentsError) as excinfo:
        EmotionRecognizer(
            build_backbone("cnn"), FacePreprocessor(channels=3), backbone_name="cnn", backbone_config={"in_channels": 1}
        )
    assert isinstance(excinfo.value, ValueError)
    assert "3-channel" in str(excinfo.value) and "in_channels=1" in str(excinfo.value)


def test_channel_mismatch_found_from_the_model_itself():
    # No backbone_config: the first convolution says what the model expects.
    with pytest.raises(
        IncompatibleComponentsError, match="3-channel faces but backbone 'custom' expects in_channels=1"
    ):
        EmotionRecognizer(build_backbone("cnn"), FacePreprocessor(channels=3))
    EmotionRecognizer(build_backbone("cnn", {"in_channels": 3}), FacePreprocessor(channels=3))


# ------------------------------------------------------------------------------------------------ predict_proba
def test_predict_proba_shapes_and_columns(recognizer, fer_faces):
    probs = recognizer.predict_proba(fer_faces)
    assert probs.shape == (len(fer_faces), 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert recognizer.labels == EMOTIONS
    # The same faces as RGB, with a channel axis, as floats and resized give the same kind of answer.
    rgb = np.repeat(fer_faces[:4, :, :, None], 3, axis=3)
    np.testing.assert_allclose(recognizer.predict_proba(rgb), probs[:4], atol=1e-5)
    np.testing.assert_allclose(recognizer.predict_proba(fer_faces[:4, :, :, None]), probs[:4], atol=1e-6)
    np.testing.assert_allclose(recognizer.predict_proba(fer_faces[:4] / 255.0), probs[:4], atol=1e-5)
    big = np.asarray([np.asarray(Image.fromarray(f).resize((96, 96), Image.Resampling.BICUBIC)) for f in fer_faces[:4]])
    assert recognizer.predict_proba(big).shape == (4, 7)


def test_predict_proba_columns_follow_labels(recognizer, fer_faces):
    probs = recognizer.predict_proba(fer_faces[:8])
    logits = recognizer.logits(recognizer.preprocessor.faces(fer_faces[:8])).numpy()
    assert [recognizer.labels[i] for i in probs.argmax(1)] == [recognizer.labels[i] for i in logits.argmax(1)]


@pytest.mark.parametrize(
    "faces", [np.zeros((2, 48, 48, 5), np.uint8), np.zeros((0, 48, 48), np.uint8), np.full((1, 48, 48), np.nan)]
)
def test_predict_proba_bad_input(recognizer, faces):
    with pytest.raises(InvalidImageError):
        recognizer.predict_proba(faces)


# ------------------------------------------------------------------------------------------------ predict
def test_predict_fer_crops_with_detector_none(recognizer, fer_faces):
    results = recognizer.predict_batch(list(fer_faces[:6]))
    assert [len(r) for r in results] == [1] * 6
    for faces in results:
        check_face(faces[0], 48, 48)
        assert faces[0].box == (0.0, 0.0, 48.0, 48.0) and faces[0].detection.score == 1.0
    assert recognizer.predict_batch([]) == []


def test_predict_accepts_paths_pil_and_arrays(recognizer, sample_photo):
    by_path = recognizer.predict(sample_photo)
    with Image.open(sample_photo) as im:
        by_pil = recognizer.predict(im)
    by_array = recognizer.predict(load_image(sample_photo))
    assert by_path == by_pil == by_array


def test_results_are_frozen(recognizer, fer_faces):
    face = recognizer.predict(fer_faces[0])[0]
    with pytest.raises(AttributeError):
        face.label = "happy"  # type: ignore[misc]


def test_mtcnn_finds_the_one_face_in_the_sample_photo(sample_faces, sample_face_box):
    assert len(sample_faces) == 1
    face = sample_faces[0]
    check_face(face, 512, 512)
    assert face.detection.score > 0.95
    assert iou(face.box, sample_face_box) > 0.7, face.box
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.detection.landmarks
    x1, y1, x2, y2 = face.box
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.detection.landmarks)
    assert lex < nx < rex and max(ley, rey) < ny < min(lmy, rmy) and lmx < rmx  # eyes, nose, mouth in order


def test_mtcnn_no_face_gives_an_empty_list(mtcnn_recognizer):
    assert mtcnn_recognizer.predict(np.full((120, 160, 3), 128, np.uint8)) == []
    assert mtcnn_recognizer.predict(np.zeros((5, 5, 3), np.uint8)) == []  # smaller than any face


def test_mtcnn_boxes_map_back_to_input_pixels(mtcnn_recognizer, sample_photo, sample_face_box):
    # The same face in a bigger canvas: the box moves with it.
    photo = load_image(sample_photo)
    canvas = np.full((600, 700, 3), 255, np.uint8)
    canvas[40:552, 150:662] = photo
    faces = mtcnn_recognizer.predict(canvas)
    assert len(faces) == 1
    x1, y1, x2, y2 = sample_face_box
    shifted = (x1 + 150, y1 + 40, x2 + 150, y2 + 40)
    assert iou(faces[0].box, shifted) > 0.7


def test_predict_is_thread_safe(mtcnn_recognizer, sample_photo):
    photo = Image.open(sample_photo).convert("RGB")
    images = [
        np.asarray(photo.resize((200, 200))),
        np.asarray(photo.resize((200, 200)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        np.asarray(photo.crop((120, 20, 330, 230))),
        np.asarray(photo.resize((160, 160))),
    ]
    serial = [mtcnn_recognizer.predict(im) for im in images]
    assert all(len(r) == 1 for r in serial)
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(mtcnn_recognizer.predict, images * 3))
    for expected, got in zip(serial * 3, concurrent):
        assert [f.box for f in got] == [f.box for f in expected]
        np.testing.assert_allclose(
            [list(f.scores.values()) for f in got], [list(f.scores.values()) for f in expected], atol=1e-6
        )


# ------------------------------------------------------------------------------------------------ hypothesis
_DTYPES = [np.uint8, np.uint16, np.int16, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
_LAYOUTS = ["hw", "hw1", "hw2", "hw3", "hw4", "hw5", "n", "nhwc"]


@st.composite
def image_arrays(draw, max_side: int = 64):
    """Any shape, dtype and channel count, sometimes with a poisoned pixel; returns (array, should_work)."""
    h, w = draw(st.integers(0, max_side)), draw(st.integers(0, max_side))
    layout = draw(st.sampled_from(_LAYOUTS))
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    poison = draw(st.sampled_from([None, None, "nan", "inf", "negative", "big"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = {
        "hw": (h, w),
        "hw1": (h, w, 1),
        "hw2": (h, w, 2),
        "hw3": (h, w, 3),
        "hw4": (h, w, 4),
        "hw5": (h, w, 5),
        "n": (h,),
        "nhwc": (2, h, w, 3),
    }[layout]
    if dtype.kind == "f" or dtype.kind == "c":
        array = rng.random(shape).astype(dtype)
    elif dtype.kind == "b":
        array = rng.random(shape) > 0.5
    else:
        high = 65536 if dtype == np.uint16 else 256
        array = rng.integers(0, high, shape).astype(dtype)
    poisoned = False
    if poison and array.size:
        value = {"nan": np.nan, "inf": np.inf, "negative": -1, "big": 300}[poison]
        can_hold = dtype.kind in "fc" or (dtype.kind == "i" and poison in ("negative", "big"))
        if can_hold:
            array.flat[int(rng.integers(array.size))] = value
            poisoned = True
    should_work = layout in ("hw", "hw1", "hw3", "hw4") and h > 0 and w > 0 and dtype.kind != "c" and not poisoned
    return array, should_work


def _predict_any(rec, array, should_work, *, expect_one: bool):
    import warnings

    from emotionkit.exceptions import EmotionKitWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EmotionKitWarning)
            faces = rec.predict(array)
    except EmotionKitError as exc:
        assert not should_work, f"valid {array.dtype} {array.shape} image raised {exc!r}"
        assert isinstance(exc, ValueError)
        received = (str(array.shape), str(array.dtype), "NaN", "values in")
        assert any(r in str(exc) for r in received), f"{exc} does not say what was received"
        return
    assert should_work, f"invalid {array.dtype} {array.shape} image gave {faces!r}"
    assert isinstance(faces, list)
    hints = [w for w in caught if issubclass(w.category, EmotionKitWarning) and "detector='none'" in str(w.message)]
    if expect_one:  # detector "none": the whole image is the face, never a hint
        assert len(faces) == 1 and not hints
    else:  # MTCNN on images of at most 64 px (noise, mostly): a face, or no face and the crop hint
        assert bool(faces) != bool(hints), (array.shape, faces, [str(w.message) for w in caught])
    for face in faces:
        check_face(face, array.shape[1], array.shape[0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=image_arrays())
def test_predict_any_array_detector_none(recognizer, case):
    _predict_any(recognizer, *case, expect_one=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=image_arrays())
def test_predict_any_array_detector_mtcnn(mtcnn_recognizer, case):
    _predict_any(mtcnn_recognizer, *case, expect_one=False)


# ------------------------------------------------------------------------------------------------ bundled weights path
def test_from_pretrained_by_name_uses_the_specs_weights(fake_bundled, recognizer, fer_faces):
    assert "cnnbundled" in bundled_models()
    rec = EmotionRecognizer.from_pretrained("cnnbundled", detector="none")
    np.testing.assert_array_equal(rec.predict_proba(fer_faces[:8]), recognizer.predict_proba(fer_faces[:8]))
    assert fake_bundled.card()["publictest"]["accuracy"] == 0.25


def test_bundled_weights_checksum_mismatch(fake_bundled, monkeypatch):
    from dataclasses import replace

    from emotionkit import registry

    spec = registry.load_plugin("backbones", "cnnbundled")
    bad = replace(spec, weights=(replace(fake_bundled, sha256="ab" * 32),))
    registry.register("backbones", bad, overwrite=True)
    with pytest.raises(ChecksumMismatchError, match="expected sha256 abab"):
        EmotionRecognizer.from_pretrained("cnnbundled", detector="none")


@pytest.mark.parametrize("name", sorted(bundled_models()) or ["cnn"])
def test_inference_folds_batch_norm_and_follows_weight_changes(name, model_dir, fer_faces):
    import torch

    rec = (
        EmotionRecognizer.from_pretrained(name, detector="none", flip_tta=False)  # the network itself, one crop
        if name in bundled_models()
        else EmotionRecognizer.from_pretrained(model_dir, detector="none")
    )
    x = rec.preprocessor.faces(fer_faces)
    own = rec.inference.active_columns  # the network's columns of the labels (a model may have more heads)
    with torch.inference_mode():
        plain = rec.model(x).float()[:, own]
    folded = rec.inference.torch_runtime.inference_model()
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in rec.model.modules()):
        assert folded is not rec.model
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())  # folded away
    np.testing.assert_allclose(rec.logits(x).numpy(), plain.numpy(), atol=1e-4, rtol=0)
    before = rec.predict_proba(fer_faces)
    with torch.no_grad():  # an in-place change (what an optimiser step does) must reach the folded copy
        next(p for p in rec.model.parameters() if p.ndim > 1).mul_(-1.5)
        changed = torch.softmax(rec.model(x).float()[:, own] / rec.temperature, 1).numpy()
    after = rec.predict_proba(fer_faces)
    assert not np.allclose(after, before, atol=1e-3)
    np.testing.assert_allclose(after, changed, atol=1e-4, rtol=0)
    # A replaced parameter and a replaced submodule (not in-place changes) must reach it too.
    owner, pname = next(
        (m, n) for m in rec.model.modules() for n, p in m._parameters.items() if p is not None and p.ndim > 1
    )
    setattr(owner, pname, torch.nn.Parameter(getattr(owner, pname).detach() * 0.5))
    with torch.inference_mode():
        replaced = torch.softmax(rec.model(x).float()[:, own] / rec.temperature, 1).numpy()
    np.testing.assert_allclose(rec.predict_proba(fer_faces), replaced, atol=1e-4, rtol=0)
    parent, child = next(
        (m, n)
        for m in rec.model.modules()
        for n, c in m._modules.items()
        if isinstance(c, torch.nn.ReLU | torch.nn.GELU | torch.nn.ReLU6 | torch.nn.SiLU)
    )
    setattr(parent, child, torch.nn.Tanh())
    with torch.inference_mode():
        swapped = torch.softmax(rec.model(x).float()[:, own] / rec.temperature, 1).numpy()
    assert not np.allclose(swapped, replaced, atol=1e-3)
    np.testing.assert_allclose(rec.predict_proba(fer_faces), swapped, atol=1e-4, rtol=0)
    rec.model.train()  # training mode: batch statistics, nothing folded
    assert rec.inference.torch_runtime.inference_model() is rec.model
    rec.model.eval()


def test_unknown_detector_option_is_named_with_the_allowed_ones(model_dir):
    from emotionkit import InvalidOptionError

    with pytest.raises(
        InvalidOptionError, match="does not take option\\(s\\) 'min_face'.*Allowed: min_face_size"
    ) as info:
        EmotionRecognizer.from_pretrained(model_dir, detector_options={"min_face": 20})
    assert isinstance(info.value, TypeError)
    rec = EmotionRecognizer.from_pretrained(model_dir, detector_options={"min_face_size": 24, "max_side": None})
    assert (rec.detector.min_face_size, rec.detector.max_side) == (24, None)
