"""Real third-party plugin distributions (tests/plugins/*, each with its own dist-info) through the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone
from emotionkit.cli import main
from emotionkit.exceptions import EmotionKitError, PluginLoadError
from emotionkit.registry import list_plugins, load_plugin
from emotionkit.testing import check_backbone


def test_third_party_plugin_is_listed_with_its_distribution_without_import(use_plugins):
    use_plugins("good", "broken")
    backbones = list_plugins("backbones")
    assert backbones["tinynet"].distribution == "emotionkit-tinynet"
    assert backbones["tinynet"].value == "emotionkit_tinynet:SPEC"
    assert backbones["brokennet"].distribution == "emotionkit-brokennet"
    assert backbones["cnn"].distribution == "emotionkit"
    assert "emotionkit_tinynet" not in sys.modules and "emotionkit_brokennet" not in sys.modules


def test_broken_plugin_is_reported_and_isolated(use_plugins):
    use_plugins("good", "broken")
    with pytest.raises(PluginLoadError) as excinfo:
        load_plugin("backbones", "brokennet")
    err = excinfo.value
    assert isinstance(err, EmotionKitError) and isinstance(err, ImportError)
    assert "'emotionkit-brokennet'" in str(err) and "brokennet_kernels" in str(err)
    assert isinstance(err.__cause__, ImportError)
    # The others still load.
    assert load_plugin("backbones", "tinynet").name == "tinynet"
    assert load_plugin("backbones", "cnn").name == "cnn"


def test_plugin_backbone_runs_through_the_recognizer(use_plugins, sample_photo, tmp_path):
    use_plugins("good")
    spec = load_plugin("backbones", "tinynet")
    pre = FacePreprocessor.from_dict(dict(spec.preprocessing))
    rec = EmotionRecognizer(
        build_backbone("tinynet"), pre, backbone_name="tinynet", backbone_config=dict(spec.default_config)
    )
    faces = rec.predict(sample_photo)  # detector None: the whole photo is one RGB 32x32 face
    assert len(faces) == 1 and sum(faces[0].scores.values()) == pytest.approx(1.0, abs=1e-5)
    saved = rec.save_pretrained(tmp_path / "tiny")
    again = EmotionRecognizer.from_pretrained(saved, detector="none", runtime="torch")
    crops = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(again.predict_proba(crops), rec.predict_proba(crops))
    fast = EmotionRecognizer.from_pretrained(saved, detector="none")  # the onnxruntime graph: float rounding apart
    np.testing.assert_allclose(fast.predict_proba(crops), rec.predict_proba(crops), atol=1e-6, rtol=0)
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["backbone"] == "tinynet"


def test_plugin_passes_the_conformance_checks(use_plugins):
    use_plugins("good")
    passed = check_backbone("tinynet")
    assert "save_pretrained" in passed and "target_layer" in passed


def test_name_clash_warns_naming_both_distributions(use_plugins):
    use_plugins("clash")
    with pytest.warns(UserWarning) as record:
        backbones = list_plugins("backbones")
    message = " ".join(str(w.message) for w in record)
    assert "'cnn'" in message and "'emotionkit'" in message and "'emotionkit-clash'" in message
    assert backbones["cnn"].distribution == "emotionkit"  # the built-in wins
    from emotionkit.backbones.cnn import SPEC

    assert load_plugin("backbones", "cnn") is SPEC
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list_plugins("backbones")  # warned once per discovery, not on every call


def test_import_emotionkit_survives_a_broken_plugin(use_plugins):
    paths = use_plugins("broken")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    code = "import emotionkit; from emotionkit.registry import list_plugins; print(sorted(list_plugins('backbones')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "brokennet" in out.stdout and "cnn" in out.stdout


def test_models_command_lists_plugins_and_broken_ones(use_plugins, capsys):
    use_plugins("good", "broken")
    script = Path(sys.executable).with_name("emotionkit")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "emotionkit"]
    result = subprocess.run([*command, "models", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    backbones = {e["name"]: e for e in data["backbones"]}
    for name in ("cnn", "resnet", "mobilenetv2", "efficientnet", "vit"):
        assert backbones[name]["distribution"] == "emotionkit"
    assert backbones["tinynet"]["distribution"] == "emotionkit-tinynet" and backbones["tinynet"]["status"] == "ok"
    assert backbones["tinynet"]["description"].startswith("Tiny two-conv")
    broken = backbones["brokennet"]
    assert broken["status"] == "broken" and broken["distribution"] == "emotionkit-brokennet"
    assert "PluginLoadError" in broken["error"] and "brokennet_kernels" in broken["error"]
    assert main(["models"]) == 0  # the table, in this process (same sys.path)
    text = capsys.readouterr().out
    assert "Broken plugins" in text and "'brokennet' from 'emotionkit-brokennet'" in text
    assert "tinynet" in text and "emotionkit-tinynet" in text
