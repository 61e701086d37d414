"""The YuNet detector: faces and landmarks on real photos, any photo size and format, batching, checked weights."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emotionkit.detectors.yunet import YuNetDetector
from emotionkit.exceptions import ChecksumMismatchError, InvalidImageError
from emotionkit.io import load_image
from emotionkit.video.tracking import iou_matrix


def _iou(a, b) -> float:
    return float(iou_matrix(np.array([a], np.float64), np.array([b], np.float64))[0, 0])


@pytest.fixture(scope="module")
def photo(sample_photo) -> np.ndarray:
    return load_image(sample_photo)


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


def _valid(faces, h: int, w: int) -> bool:
    for f in faces:
        x1, y1, x2, y2 = f.box
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 <= f.score <= 1 and len(f.landmarks) == 5):
            return False
    return [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_finds_the_hand_labelled_face_with_five_landmarks_in_place(detector, photo, sample_face_box):
    faces = detector.detect(photo)
    assert len(faces) == 1 and faces[0].score > 0.8
    assert _iou(faces[0].box, sample_face_box) > 0.75
    marks = np.array(faces[0].landmarks)
    x1, y1, x2, y2 = faces[0].box
    assert marks.shape == (5, 2) and ((marks >= [x1, y1]) & (marks <= [x2, y2])).all()
    # Image-left eye first, then the other eye, nose below the eyes, mouth corners below the nose (as MTCNN orders them).
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = marks
    assert lex < nx < rex and lmx < rmx and max(ley, rey) < ny < min(lmy, rmy)


def test_landmarks_agree_with_mtcnn_on_the_sample_photo(detector, photo):
    from emotionkit.detectors.mtcnn import MTCNNDetector

    ours = np.array(detector.detect(photo)[0].landmarks)
    theirs = np.array(MTCNNDetector().detect(photo)[0].landmarks)
    assert np.abs(ours - theirs).max() < 8  # pixels, on a ~90-pixel face


def test_no_face_in_real_photos_without_people(detector, photo):
    skimage_data = pytest.importorskip("skimage.data")
    below_the_face = np.ascontiguousarray(photo[220:])  # spacesuit, hands, flag, model shuttle
    assert detector.detect(below_the_face) == []
    for image in (skimage_data.coffee(), skimage_data.chelsea(), skimage_data.rocket()):  # a cup, a cat, a launch pad
        assert detector.detect(image) == []


def test_fer2013_faces_pasted_on_a_real_photo_are_found(detector, fer_faces):
    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")
    canvas = Image.fromarray(skimage_data.coffee()).resize((960, 720))
    truth = []
    for k, side in enumerate((64, 96, 128, 160)):
        face = Image.fromarray(fer_faces[k]).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        where = (40 + 230 * k, 200)
        canvas.paste(face, where)
        truth.append((where[0], where[1], where[0] + side, where[1] + side))
    faces = detector.detect(np.asarray(canvas))
    found = [max((_iou(t, f.box) for f in faces), default=0.0) for t in truth]
    assert sum(v >= 0.3 for v in found) >= 3, found  # FER crops are looser than a detector's box
    assert len(faces) <= len(truth) + 1


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
    assert detector.detect_batch([]) == []


def test_big_photos_are_detected_downscaled_and_mapped_back(detector, photo):
    from PIL import Image

    big = np.asarray(Image.fromarray(photo).resize((2048, 2048), Image.Resampling.BILINEAR))
    faces = detector.detect(big)  # detected at 1280 px, boxes and landmarks in 2048 px coordinates
    assert len(faces) == 1
    reference = detector.detect(photo)[0]
    assert _iou(tuple(v / 4 for v in faces[0].box), reference.box) > 0.85
    np.testing.assert_allclose(np.array(faces[0].landmarks) / 4, reference.landmarks, atol=3)
    full = YuNetDetector(max_side=None).detect(big)
    # At full resolution the 4x-upscaled (blurred) photo also gives a weak false face (0.55) on the spacesuit.
    assert full[0].score > 0.9 and _iou(full[0].box, faces[0].box) > 0.8


def test_grey_and_rgba_photos_find_the_same_face(detector, photo, sample_face_box):
    grey = np.asarray(np.dot(photo[..., :3], [0.299, 0.587, 0.114]), dtype=np.uint8)
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    for image in (grey, grey[..., None], rgba, photo.astype(np.float32) / 255):
        faces = detector.detect(image)
        assert len(faces) == 1 and _iou(faces[0].box, sample_face_box) > 0.7


def test_min_face_size_and_min_score_drop_faces(photo):
    assert len(YuNetDetector(min_face_size=200).detect(photo)) == 0  # the face is ~90 px
    assert len(YuNetDetector(min_face_size=40).detect(photo)) == 1  # detected on a 4x smaller image
    assert YuNetDetector(min_score=0.999).detect(photo) == []
    assert YuNetDetector().detect(np.zeros((4, 4, 3), np.uint8)) == []  # smaller than any face


def test_tampered_weights_are_refused(tmp_path):
    from emotionkit.detectors import yunet

    bad = tmp_path / "model.safetensors"
    data = bytearray(yunet._weights_path().read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        yunet._load_net(bad, yunet.WEIGHTS_SHA256)


def test_registered_and_usable_by_name(model_dir, sample_photo, sample_face_box):
    from emotionkit import EmotionRecognizer
    from emotionkit.registry import list_plugins

    assert "yunet" in list_plugins("detectors")
    rec = EmotionRecognizer.from_pretrained(model_dir, detector="yunet", detector_options={"min_score": 0.5})
    faces = rec.predict(sample_photo)
    assert len(faces) == 1 and _iou(faces[0].detection.box, sample_face_box) > 0.75
    assert [len(r) for r in rec.predict_batch([sample_photo, np.zeros((64, 64, 3), np.uint8)])] == [1, 0]
    assert isinstance(EmotionRecognizer.from_pretrained(model_dir).detector, YuNetDetector)  # the default


_dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrays(
        _dtypes,
        st.tuples(st.integers(0, 70), st.integers(0, 70)).flatmap(
            lambda hw: st.sampled_from([hw, (*hw, 1), (*hw, 2), (*hw, 3), (*hw, 4), (*hw, 3, 1), (hw[0],)])
        ),
    )
)
def test_any_array_gives_valid_faces_or_a_clear_error(detector, image):
    try:
        faces = detector.detect(image)
    except InvalidImageError as exc:
        assert "Allowed" in str(exc)
        return
    assert _valid(faces, image.shape[0], image.shape[1])


def test_onnxruntime_gives_the_same_faces(photo):
    pytest.importorskip("onnxruntime")
    from emotionkit.detectors.yunet import _padded

    slow, fast = YuNetDetector(runtime="torch"), YuNetDetector(runtime="onnx")
    assert (slow.runtime, fast.runtime) == ("torch", "onnx")
    batch = np.zeros((2, *_padded(photo.shape[:2]), 3), np.uint8)
    batch[0, : photo.shape[0], : photo.shape[1]] = photo
    batch[1, : photo.shape[0], : photo.shape[1]] = photo[:, ::-1]
    ours, theirs = slow._net(batch), fast._net(batch)
    assert ours.shape == theirs.shape == (2, 16, sum((512 // s) ** 2 for s in (8, 16, 32)))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-3, rtol=1e-4)
    images = [photo, photo[::2, ::2], np.ascontiguousarray(photo[:500, :300])]  # padded to 512x320
    for a, b in zip(slow.detect_batch(images), fast.detect_batch(images)):
        assert len(a) == len(b) == 1
        np.testing.assert_allclose(a[0].box, b[0].box, atol=1e-3)
        np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=1e-3)
        assert abs(a[0].score - b[0].score) < 1e-5
    with pytest.raises(ValueError, match="runtime"):
        YuNetDetector(runtime="tflite")  # type: ignore[arg-type]


def test_the_hand_written_graph_is_a_valid_onnx_model():
    onnx = pytest.importorskip("onnx")
    from emotionkit.detectors import yunet
    from emotionkit.detectors._yunet_onnx import build_graph

    model = onnx.load_from_string(build_graph(yunet._load_net(yunet._weights_path(), yunet.WEIGHTS_SHA256)))
    onnx.checker.check_model(model, full_check=True)  # also infers every node's output shape
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["maps"]
    assert model.opset_import[0].version == 17 and model.ir_version == 8
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}["mode"] == b"nearest"


def test_detectors_survive_pickling_and_copies(photo):
    import copy
    import pickle

    for runtime in ("torch", "auto"):
        detector = YuNetDetector(runtime=runtime, min_score=0.6)
        expected = detector.detect(photo)
        for clone in (pickle.loads(pickle.dumps(detector)), copy.deepcopy(detector)):
            assert clone.runtime == detector.runtime and clone.min_score == 0.6
            assert clone.detect(photo) == expected


def test_rgb_stem_computes_what_the_bgr_network_does(photo):
    import torch

    from emotionkit.detectors import yunet

    bgr = yunet._load_net(yunet._weights_path(), yunet.WEIGHTS_SHA256)
    rgb = yunet._load_net(yunet._weights_path(), yunet.WEIGHTS_SHA256).take_rgb()
    x = torch.from_numpy(np.array(photo[None])).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        for ours, theirs in zip(rgb(x), bgr(x.flip(1))):
            torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=1e-4)


def test_auto_runtime_is_onnxruntime_when_installed_and_torch_without_it(photo, monkeypatch):
    import sys

    from emotionkit.detectors.yunet import default_runtime
    from emotionkit.exceptions import MissingDependencyError

    installed = importlib.util.find_spec("onnxruntime") is not None
    assert default_runtime() == ("onnx" if installed else "torch")
    assert YuNetDetector().runtime == default_runtime()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    assert default_runtime() == "torch"
    fallback = YuNetDetector()
    assert fallback.runtime == "torch" and len(fallback.detect(photo)) == 1
    with pytest.raises(MissingDependencyError, match="onnxruntime"):
        YuNetDetector(runtime="onnx")
