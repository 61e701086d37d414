"""Shared fixtures: real FER-2013 faces from ../shared (skipped with a reason when absent) and real photos."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
REPO = Path(__file__).resolve().parents[1]
# The one documented setting: EMOTIONKIT_DATA, the folder holding fer2013/ (default ../shared/data from the repo root).
os.environ.setdefault("EMOTIONKIT_DATA", str(REPO.parent / "shared" / "data"))


def _fer_csv() -> Path | None:
    from emotionkit.data.fer2013 import fer2013_path

    try:
        return fer2013_path()
    except FileNotFoundError:
        return None


@pytest.fixture(scope="session")
def repo_script() -> Callable[[str], ModuleType]:
    """Import a script of the repository that is not in the package (``tools/``, ``docs/_ext/``) by its path."""

    def load(relative: str) -> ModuleType:
        path = REPO / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def fer_csv() -> Path:
    """Path of the real FER-2013 CSV; skips when EMOTIONKIT_DATA has no fer2013/."""
    path = _fer_csv()
    if path is None:
        pytest.skip(
            f"FER-2013 not found under EMOTIONKIT_DATA={os.environ['EMOTIONKIT_DATA']!r}; set it to the folder holding fer2013/"
        )
    return path


@pytest.fixture(scope="session")
def fer_train_small(fer_csv):
    """The first 600 FER-2013 Training rows (real 48x48 faces)."""
    from emotionkit.data.fer2013 import read_fer2013

    return read_fer2013(fer_csv, usage="Training", limit=600)


@pytest.fixture(scope="session")
def fer_faces(fer_train_small) -> np.ndarray:
    """64 real FER-2013 faces, (64, 48, 48) uint8."""
    return fer_train_small.images[:64]


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    """The bundled sample photo (one face)."""
    from emotionkit.io import sample_image_path

    return sample_image_path()


# --- models, detectors and plugins -------------------------------------------------------------------------------
# The plugin distributions under tests/plugins are put on sys.path by `use_plugins`, never collected
# (emotionkit_brokennet fails to import on purpose).
collect_ignore_glob = ["plugins/*"]
PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """An untrained 'cnn' recognizer written by save_pretrained (independent of any bundled weights).

    Its BatchNorm running statistics are moved off their defaults, so a save/load that dropped
    buffers would change its outputs.
    """
    import torch

    from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone
    from emotionkit.backbones.cnn import SPEC

    torch.manual_seed(0)
    model = build_backbone("cnn").train()
    with torch.no_grad():
        model(torch.rand(32, 1, 48, 48) * 0.5 + 0.25)
    pre = FacePreprocessor.from_dict(dict(SPEC.preprocessing))
    rec = EmotionRecognizer(model, pre, backbone_name="cnn", backbone_config=dict(SPEC.default_config))
    return rec.save_pretrained(tmp_path_factory.mktemp("models") / "cnn-untrained")


@pytest.fixture(scope="session")
def recognizer(model_dir):
    """The `model_dir` recognizer with the 'none' detector (every image is one face)."""
    from emotionkit import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(model_dir, detector="none")


@pytest.fixture(scope="session")
def mtcnn_recognizer(model_dir):
    """The `model_dir` recognizer with the MTCNN face detector."""
    from emotionkit import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(model_dir, detector="mtcnn")


@pytest.fixture(scope="session")
def sample_face_box() -> tuple[float, float, float, float]:
    """The astronaut's face in the 512x512 sample photo, labelled by hand: (x1, y1, x2, y2), brow to chin, ear to ear."""
    return (182.0, 60.0, 268.0, 170.0)


@pytest.fixture(scope="session")
def sample_faces(mtcnn_recognizer, sample_photo):
    """What `mtcnn_recognizer.predict` finds on the sample photo (computed once)."""
    return mtcnn_recognizer.predict(sample_photo)


@pytest.fixture
def fake_bundled(monkeypatch, model_dir, tmp_path):
    """Register a backbone 'cnnbundled' whose WeightsSpec points at a copy of `model_dir` with a card."""
    import json
    import shutil
    from dataclasses import replace

    from emotionkit import registry
    from emotionkit.backbones.cnn import SPEC
    from emotionkit.weights import WEIGHTS_NAME, WeightsSpec, sha256sum

    class LocalWeights(WeightsSpec):
        @property
        def path(self):
            return tmp_path / "cnnbundled"

    shutil.copytree(model_dir, tmp_path / "cnnbundled")
    card = {"publictest": {"accuracy": 0.25, "macro_f1": 0.125}, "protocol": "test card"}
    (tmp_path / "cnnbundled" / "card.json").write_text(json.dumps(card))
    weights = LocalWeights("cnnbundled_v1", "emotionkit", "unused", sha256sum(model_dir / WEIGHTS_NAME))
    monkeypatch.setattr(registry, "_runtime", {kind: {} for kind in registry.GROUPS})
    registry.register("backbones", replace(SPEC, name="cnnbundled", weights=(weights,)))
    return weights


@pytest.fixture
def use_plugins(monkeypatch):
    """Return ``use(*names)``: put plugin distributions from tests/plugins on sys.path and PYTHONPATH.

    The registry is refreshed on use and again after the test, when sys.path is restored.
    """
    import sys

    from emotionkit import registry

    def use(*names: str) -> list[str]:
        paths = [str(PLUGINS / name) for name in names]
        for path in paths:
            monkeypatch.syspath_prepend(path)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        registry.refresh()
        return paths

    yield use
    for module in [
        m for m in sys.modules if m.startswith(("emotionkit_tinynet", "emotionkit_brokennet", "emotionkit_clash"))
    ]:
        del sys.modules[module]
    registry.refresh()
