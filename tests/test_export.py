"""ONNX export and the onnxruntime path: parity with torch on real faces, dynamic batch, metadata, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason='the onnx extra is not installed: pip install "emotionkit[onnx]"')
pytest.importorskip("onnxruntime", reason='the onnx extra is not installed: pip install "emotionkit[onnx]"')

from emotionkit import cli  # noqa: E402
from emotionkit.exceptions import MissingDependencyError, UnknownModelError  # noqa: E402
from emotionkit.export import OnnxBackbone, export_onnx, quantize_onnx, read_onnx_metadata, weights_digest  # noqa: E402
from emotionkit.preprocessing import FacePreprocessor  # noqa: E402
from emotionkit.recognizer import EmotionRecognizer, build_backbone, bundled_models  # noqa: E402
from emotionkit.registry import load_plugin  # noqa: E402

ARCHITECTURES = ("cnn", "resnet", "mobilenetv2", "efficientnet", "vit")
BUNDLED = sorted(bundled_models())


def _untrained(name: str, directory) -> EmotionRecognizer:
    """An untrained recognizer saved and loaded back, with BatchNorm statistics moved off their defaults."""
    torch.manual_seed(0)
    spec = load_plugin("backbones", name)
    model = build_backbone(name).train()
    pre = FacePreprocessor(**spec.preprocessing)
    with torch.no_grad():  # real-ish statistics: run a few normalised random batches in train mode
        for _ in range(3):
            model(pre.faces(np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)))
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.weight.mul_(30.0)  # untrained heads answer ~1/7 for everything; make the probabilities differ
    rec = EmotionRecognizer(model, pre, backbone_name=name, backbone_config=spec.default_config, temperature=0.5)
    rec.save_pretrained(directory)
    return EmotionRecognizer.from_pretrained(directory, detector="none")


@pytest.fixture(scope="module", params=ARCHITECTURES)
def untrained_dir(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("onnx") / request.param
    _untrained(request.param, directory)
    return directory


def _assert_parity(torch_rec: EmotionRecognizer, onnx_rec: EmotionRecognizer, faces: np.ndarray) -> None:
    assert onnx_rec.runtime == "onnx" and torch_rec.runtime == "torch"
    expected = torch_rec.predict_proba(faces)
    got = onnx_rec.predict_proba(faces)
    assert got.shape == expected.shape == (len(faces), 7)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # The check is not vacuous: the model is not answering the same thing for every face.
    assert expected.std(axis=0).max() > 0.02


def test_onnx_matches_torch_on_real_faces_untrained_architectures(untrained_dir, fer_faces):
    torch_rec = EmotionRecognizer.from_pretrained(untrained_dir, detector="none", runtime="torch")
    onnx_rec = EmotionRecognizer.from_pretrained(untrained_dir, detector="none", runtime="onnx")
    _assert_parity(torch_rec, onnx_rec, fer_faces)


@pytest.mark.parametrize(
    "name", BUNDLED or [pytest.param("none", marks=pytest.mark.skip(reason="no bundled weights yet"))]
)
def test_onnx_matches_torch_on_real_faces_bundled(name, fer_faces):
    torch_rec = EmotionRecognizer.from_pretrained(name, detector="none", runtime="torch")
    onnx_rec = EmotionRecognizer.from_pretrained(name, detector="none", runtime="onnx")
    _assert_parity(torch_rec, onnx_rec, fer_faces)


def test_exported_file_has_a_dynamic_batch_axis_and_self_describing_metadata(model_dir, tmp_path, fer_faces):
    rec = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    out = tmp_path / "sub" / "model.onnx"
    data = export_onnx(rec, out)
    assert out.read_bytes() == data
    backbone = OnnxBackbone(out)
    assert backbone.session.get_inputs()[0].shape[0] == "batch"
    x = rec.preprocessor.faces(fer_faces[:5])
    for n in (1, 5):
        got = backbone(x[:n])
        assert got.shape == (n, 7)
        np.testing.assert_allclose(got.numpy(), rec.logits(x[:n]).numpy(), atol=1e-4, rtol=0)
    meta = read_onnx_metadata(out)
    assert meta["labels"] == list(rec.labels)
    assert meta["temperature"] == rec.temperature
    assert FacePreprocessor.from_dict(meta["preprocessor"]) == rec.preprocessor
    assert meta["backbone"] == "cnn" and meta["weights_digest"] == weights_digest(rec.model)


def test_runtime_onnx_uses_a_matching_model_onnx_and_ignores_a_stale_one(model_dir, tmp_path, fer_faces):
    import shutil

    directory = shutil.copytree(model_dir, tmp_path / "model")
    rec = EmotionRecognizer.from_pretrained(directory, detector="none")
    export_onnx(rec, directory / "model.onnx")
    fresh = EmotionRecognizer.from_pretrained(directory, detector="none", runtime="onnx")
    assert fresh.inference.runtime.source == str(directory / "model.onnx")

    other = _untrained("cnn", tmp_path / "other")
    with torch.no_grad():
        next(other.model.parameters()).mul_(2.0)  # different weights, same architecture
    export_onnx(other, directory / "model.onnx")
    stale = EmotionRecognizer.from_pretrained(directory, detector="none", runtime="onnx")
    assert stale.inference.runtime.source == "<memory>"
    np.testing.assert_allclose(stale.predict_proba(fer_faces), rec.predict_proba(fer_faces), atol=1e-4, rtol=0)


def test_runtime_onnx_end_to_end_on_the_sample_photo(model_dir, sample_photo):
    torch_rec = EmotionRecognizer.from_pretrained(model_dir)
    onnx_rec = EmotionRecognizer.from_pretrained(model_dir, detector=torch_rec.detector, runtime="onnx")
    expected, got = torch_rec.predict(sample_photo), onnx_rec.predict(sample_photo)
    assert len(got) == len(expected) == 1
    assert got[0].label == expected[0].label
    assert max(abs(got[0].scores[k] - expected[0].scores[k]) for k in got[0].scores) < 1e-4


def test_cli_export_writes_a_checked_onnx_file(model_dir, tmp_path, capsys):
    out = tmp_path / "cnn.onnx"
    assert cli.main(["export", str(model_dir), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs torch" in printed and str(out) in printed
    assert read_onnx_metadata(out)["backbone"] == "cnn"


def test_exporting_an_unknown_model_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["export", "cnnn", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'cnnn'" in err and "Did you mean 'cnn'?" in err
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(UnknownModelError, match="Available: "):
        EmotionRecognizer.from_pretrained(str(tmp_path / "nowhere"), runtime="onnx")


def test_unknown_runtime_is_a_clear_error(model_dir):
    with pytest.raises(ValueError, match="runtime must be 'auto', 'torch' or 'onnx', got 'tensorrt'"):
        EmotionRecognizer.from_pretrained(model_dir, detector="none", runtime="tensorrt")  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["onnxruntime", "onnx"])
def test_missing_onnx_packages_say_which_extra_to_install(model_dir, tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "emotionkit\[onnx\]"') as info:
        EmotionRecognizer.from_pretrained(model_dir, detector="none", runtime="onnx")
    assert isinstance(info.value, ImportError) and repr(missing) in str(info.value)
    if missing == "onnx":
        assert cli.main(["export", str(model_dir), "--out", str(tmp_path / "x.onnx")]) == 2
        assert 'pip install "emotionkit[onnx]"' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- int8
@pytest.fixture(scope="module")
def int8_cnn(fer_train_small):
    """The bundled cnn, exported and quantized on 256 real faces (rows 0-255 of the Training sample)."""
    if "cnn" not in BUNDLED:
        pytest.skip("no bundled cnn weights; int8 agreement is only meaningful for a trained model")
    rec = EmotionRecognizer.from_pretrained("cnn", detector="none")
    float_model = export_onnx(rec)
    calibration = rec.preprocessor.faces(fer_train_small.images[:256])
    return rec, float_model, quantize_onnx(float_model, calibration)


def test_int8_keeps_the_bundled_cnns_decisions_on_faces_it_was_not_calibrated_on(int8_cnn, fer_train_small):
    rec, float_model, quantized = int8_cnn
    faces, labels = fer_train_small.images[256:], fer_train_small.labels[256:]  # 344 faces the calibration did not see
    x = rec.preprocessor.faces(faces)
    p32 = OnnxBackbone(float_model)(x).softmax(1).numpy()
    p8 = OnnxBackbone(quantized)(x).softmax(1).numpy()
    assert (p32.argmax(1) == p8.argmax(1)).mean() >= 0.95
    assert abs((p8.argmax(1) == labels).mean() - (p32.argmax(1) == labels).mean()) <= 0.02
    assert np.abs(p32 - p8).max() < 0.25
    assert len(quantized) < 0.4 * len(float_model)  # int8 weights: about a quarter of the float32 file


def test_int8_model_keeps_the_metadata_and_runs_in_the_recognizer(int8_cnn, fer_faces, tmp_path):
    from emotionkit.export import attach_onnx

    rec, float_model, quantized = int8_cnn
    meta, float_meta = read_onnx_metadata(quantized), read_onnx_metadata(float_model)
    assert {k: v for k, v in meta.items() if k != "quantization"} == float_meta
    assert meta["quantization"]["calibration_faces"] == 256 and "int8" in meta["quantization"]["scheme"]
    (tmp_path / "cnn-int8.onnx").write_bytes(quantized)
    fast = attach_onnx(EmotionRecognizer.from_pretrained("cnn", detector="none"), tmp_path / "cnn-int8.onnx")
    assert fast.runtime == "onnx" and fast.inference.runtime.source == str(tmp_path / "cnn-int8.onnx")
    probs = fast.predict_proba(fer_faces)
    assert probs.shape == (len(fer_faces), 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == rec.predict_proba(fer_faces).argmax(1)).mean() >= 0.9


def test_int8_and_onnx_file_errors_are_clear(int8_cnn, model_dir, tmp_path):
    from emotionkit.export import attach_onnx

    rec, float_model, quantized = int8_cnn
    with pytest.raises(ValueError, match="already quantized"):
        quantize_onnx(quantized, np.zeros((4, 1, 48, 48), np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 1, 48, 48\).*got an array of shape \(4, 48, 48\)"):
        quantize_onnx(float_model, np.zeros((4, 48, 48), np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 1, 48, 48\).*\(0, 1, 48, 48\)"):
        quantize_onnx(float_model, np.zeros((0, 1, 48, 48), np.float32))
    other = EmotionRecognizer.from_pretrained(model_dir, detector="none")  # untrained cnn: other weights
    with pytest.raises(ValueError, match="exported from other weights"):
        attach_onnx(other, quantized)


def test_cli_export_int8_reports_agreement_on_held_out_faces(fer_csv, tmp_path, capsys):
    if "cnn" not in BUNDLED:
        pytest.skip("no bundled cnn weights")
    out = tmp_path / "cnn-int8.onnx"
    args = [
        "export",
        "cnn",
        "--int8",
        "--calibration-data",
        str(fer_csv),
        "--calibration-faces",
        "128",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "calibrated on 128 validation faces" in printed and "top-1 agreement with float32" in printed
    agreement = float(printed.split("top-1 agreement with float32 ")[1].split(",")[0])
    assert agreement >= 0.95
    assert read_onnx_metadata(out)["quantization"]["calibration_faces"] == 128
    assert cli.main(["export", "cnn", "--int8", "--calibration-faces", "0", "--out", str(out)]) == 2
    assert "--calibration-faces must be at least 1, got 0" in capsys.readouterr().err
