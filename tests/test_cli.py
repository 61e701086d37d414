"""The ``emotionkit`` command line: predict (JSON, annotated output) and models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotionkit import EMOTIONS, __version__
from emotionkit.cli import main
from emotionkit.io import load_image, sample_image_path


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy)


def emotionkit_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m emotionkit``."""
    script = Path(sys.executable).with_name("emotionkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "emotionkit"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*emotionkit_command(), *args], capture_output=True, text=True, timeout=300, env=env or os.environ.copy()
    )


def test_predict_sample_json_and_annotated_image(model_dir, tmp_path, sample_face_box):
    out = tmp_path / "annotated.png"
    result = run_cli("predict", "--sample", "--json", "--model", str(model_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report) == 1 and Path(report[0]["image"]).name == "astronaut.jpg"
    faces = report[0]["faces"]
    assert len(faces) == 1
    face = faces[0]
    assert iou(face["box"], sample_face_box) > 0.7
    assert list(face["scores"]) == list(EMOTIONS)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["label"] == max(face["scores"], key=face["scores"].get)
    assert len(face["landmarks"]) == 5 and 0.9 < face["score"] <= 1.0
    # The annotated image: same size, unchanged far from the face, changed on the box outline.
    annotated = np.asarray(Image.open(out).convert("RGB")).astype(int)
    original = load_image(report[0]["image"]).astype(int)
    assert annotated.shape == original.shape
    x1, y1, x2, y2 = (round(v) for v in face["box"])
    assert np.abs(annotated[y1:y2, x1 - 1 : x1 + 2] - original[y1:y2, x1 - 1 : x1 + 2]).mean() > 20
    assert np.abs(annotated[400:, :100] - original[400:, :100]).max() == 0
    assert f"wrote {out}" in result.stderr


def test_predict_text_output_and_output_directory(model_dir, tmp_path, fer_faces, capsys):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"face{i}.png")
        Image.fromarray(fer_faces[i]).save(paths[-1])
    out_dir = tmp_path / "annotated"
    code = main(["predict", *map(str, paths), "--model", str(model_dir), "--detector", "none", "--out", str(out_dir)])
    assert code == 0
    text = capsys.readouterr().out
    assert text.count(": 1 face\n") == 3 and "face 1: " in text and "at (0, 0, 48, 48)" in text
    assert sorted(p.name for p in out_dir.iterdir()) == [f"face{i}_annotated.png" for i in range(3)]
    assert Image.open(out_dir / "face0_annotated.png").size == (48, 48)


def test_predict_json_for_several_images(model_dir, fer_faces, tmp_path, capsys):
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, face in zip(paths, fer_faces):
        Image.fromarray(face).save(path)
    assert main(["predict", *map(str, paths), "--model", str(model_dir), "--detector", "none", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in report] == list(map(str, paths))
    assert all(len(r["faces"]) == 1 and r["faces"][0]["box"] == [0.0, 0.0, 48.0, 48.0] for r in report)


def test_predict_flip_tta_flag_overrides_the_models_choice(fer_faces, tmp_path, capsys):
    """The bundled cnn predicts with flip TTA (its card); ``--no-flip-tta`` gives the one-crop scores."""
    from emotionkit import EmotionRecognizer

    path = tmp_path / "face.png"
    Image.fromarray(fer_faces[0]).save(path)
    scores = {}
    for flag in ("--flip-tta", "--no-flip-tta"):
        assert main(["predict", str(path), "--model", "cnn", "--detector", "none", "--json", flag]) == 0
        scores[flag] = json.loads(capsys.readouterr().out)[0]["faces"][0]["scores"]
    for flip, flag in ((True, "--flip-tta"), (False, "--no-flip-tta")):
        rec = EmotionRecognizer.from_pretrained("cnn", detector="none", flip_tta=flip)
        expected = rec.predict(str(path))[0].scores
        assert scores[flag] == pytest.approx(expected, abs=1e-4)
    assert scores["--flip-tta"] != pytest.approx(scores["--no-flip-tta"], abs=1e-4)


def test_predict_passes_detector_options(model_dir, capsys):
    options = '{"min_face_size": 20, "max_side": 256}'
    assert main(["predict", "--sample", "--json", "--model", str(model_dir), "--detector-options", options]) == 0
    faces = json.loads(capsys.readouterr().out)[0]["faces"]
    assert len(faces) == 1 and faces[0]["box"][2] <= 512  # found on a 256-pixel copy, box in the photo's pixels
    assert iou(faces[0]["box"], (182, 60, 268, 170)) > 0.6


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["predict"], "Received no images"),
        (["predict", "missing.jpg"], "Image not found: 'missing.jpg'"),
        (["predict", "--sample", "--model", "vitt"], "Did you mean 'vit'?"),
        (["predict", "--sample", "--detector", "mtcn"], "Did you mean 'mtcnn'?"),
        (["predict", "--sample", "--out", "result.xyz"], "unknown extension"),
        (["predict", "--sample", str(sample_image_path()), "--out", "one.png"], "Pass a directory to --out"),
        (["predict", "--sample", "--detector-options", "min_face_size=20"], "must be a JSON object"),
        (["predict", "--sample", "--detector-options", '{"min_face": 20}'], "Did you mean 'min_face_size'?"),
    ],
    ids=[
        "no-images",
        "missing-file",
        "unknown-model",
        "unknown-detector",
        "bad-extension",
        "file-for-several",
        "options-not-json",
        "unknown-option",
    ],
)
def test_predict_user_errors_exit_2_with_one_line(args, fragment, capsys, model_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if "--model" not in args:
        args = [*args, "--model", str(model_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("emotionkit predict: error: ") and fragment in err
    assert "Traceback" not in err


def test_models_lists_builtins_from_emotionkit(capsys):
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    backbones = {e["name"]: e for e in data["backbones"]}
    for name in ("cnn", "resnet", "mobilenetv2", "efficientnet", "vit"):
        assert backbones[name]["distribution"] == "emotionkit" and backbones[name]["status"] == "ok"
        assert isinstance(backbones[name]["weights"], list)
    assert {e["name"] for e in data["detectors"]} >= {"mtcnn", "none"}
    for entry in backbones.values():
        for weights in entry["weights"]:  # bundled weights, once they exist, carry a card with metrics
            if weights["available"]:
                assert weights["card"], weights
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "Backbones (entry points: emotionkit.backbones)" in text and "cnn" in text and "emotionkit" in text


def test_version_and_module_entry():
    result = subprocess.run(
        [sys.executable, "-m", "emotionkit", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == f"emotionkit {__version__}"


def test_models_shows_bundled_weights_metrics(fake_bundled, capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "cnnbundled" in text and "weights cnnbundled_v1: publictest accuracy=0.2500 macro_f1=0.1250" in text
    assert main(["models", "--json"]) == 0
    entry = {e["name"]: e for e in json.loads(capsys.readouterr().out)["backbones"]}["cnnbundled"]
    assert entry["distribution"] == "<runtime>" and entry["weights"][0]["card"]["publictest"]["accuracy"] == 0.25


def test_predict_reports_good_files_and_lists_bad_ones(model_dir, fer_faces, tmp_path, capsys):
    """`emotionkit predict a.png broken.jpg c.png`: a and c reported, broken.jpg on stderr, exit 1 (like cp)."""
    good = []
    for i in (0, 1):
        good.append(tmp_path / f"{'ac'[i]}.png")
        Image.fromarray(fer_faces[i]).save(good[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(sample_image_path().read_bytes()[:2000])  # a truncated JPEG
    names = [str(good[0]), str(broken), str(tmp_path / "missing.png"), str(good[1])]
    args = ["predict", *names, "--model", str(model_dir), "--detector", "none", "--json"]
    assert main(args) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert [r["image"] for r in report] == [str(good[0]), str(good[1])]
    assert all(len(r["faces"]) == 1 for r in report)
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and "Traceback" not in captured.err
    assert errors[0].startswith("emotionkit predict: error: Could not read") and "broken.jpg" in errors[0]
    assert errors[1].startswith("emotionkit predict: error: Image not found") and "missing.png" in errors[1]
    assert errors[2] == "emotionkit predict: 2 of 4 images could not be read (listed above); the other 2 are reported."
    # Text output, and annotated images for the good ones only.
    out_dir = tmp_path / "out"
    assert main([*args[:-1], "--out", str(out_dir)]) == 1
    text = capsys.readouterr().out
    assert f"{good[0]}: 1 face" in text and f"{good[1]}: 1 face" in text and "broken" not in text
    assert sorted(p.name for p in out_dir.iterdir()) == ["a_annotated.png", "c_annotated.png"]
    # Every file bad: nothing to report, exit 2.
    assert main(["predict", str(broken), "--model", str(model_dir)]) == 2


def test_cli_error_messages_are_one_line(model_dir, tmp_path, capsys):
    """A multi-line message (torch's size mismatch, wrapped) still prints as one line."""
    broken = tmp_path / "widths"
    import shutil

    shutil.copytree(model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["backbone_config"]["widths"] = [16, 32, 64]
    (broken / "config.json").write_text(json.dumps(config))
    assert main(["predict", "--sample", "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("emotionkit predict: error: The weights do not fit")


def test_models_name_shows_the_whole_card(capsys):
    assert main(["models", "cnn"]) == 0
    text = capsys.readouterr().out
    for fragment in ("Command: `emotionkit train", "Per-class F1", "Confusion matrix", "Calibration: temperature"):
        assert fragment in text, fragment
    assert "FER-2013 PublicTest" in text and "sha256 " in text
    assert main(["models", "cnn", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["card"]["name"] == "cnn" and entry["available"] is True
    assert main(["models", "cnnn"]) == 2
    assert "Did you mean 'cnn'?" in capsys.readouterr().err


def test_models_name_without_card_md_prints_the_card_fields(fake_bundled, capsys):
    assert main(["models", "cnnbundled"]) == 0
    text = capsys.readouterr().out
    assert '- publictest: {"accuracy": 0.25, "macro_f1": 0.125}' in text and "cnnbundled_v1" in text


def test_output_into_a_closed_pipe_is_not_a_traceback(tmp_path):
    command = [*emotionkit_command(), "models", "cnn"]
    result = subprocess.run(f"{' '.join(command)} | head -1", shell=True, capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("# `cnn`") and "Traceback" not in result.stderr, result.stderr
