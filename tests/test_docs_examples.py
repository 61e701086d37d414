"""The documentation's examples run: the plugin example package, and the ``pycon`` snippets of the guide pages.

- ``examples/emotionkit-plugin-example`` is installed with pip into a temporary folder (not
  into this environment), then used from a fresh interpreter: emotionkit discovers it through
  its entry point, runs it through ``EmotionRecognizer`` (photo, save/load, Grad-CAM), and the
  plugin's own tests (``check_backbone``) pass.
- Every ```` ```pycon ```` block of ``docs/**/*.md`` runs as a doctest, page by page in one
  namespace. A page marked ``<!-- doctest: needs-bundled-weights -->`` is skipped, with that
  reason, until bundled weights ship.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PLUGIN = REPO / "examples" / "emotionkit-plugin-example"
NEEDS_WEIGHTS = "<!-- doctest: needs-bundled-weights -->"
FENCE = re.compile(r"^```pycon[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _env(extra_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("KERAS_BACKEND", "torch")
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The example plugin, built from its pyproject.toml and installed into a temporary folder by pip."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment, so pip cannot build the example plugin offline")
    target = tmp_path_factory.mktemp("plugin-site")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    cmd += ["--target", str(target), str(PLUGIN)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    )
    assert done.returncode == 0, f"pip could not install the example plugin:\n{done.stdout}\n{done.stderr}"
    assert list(target.glob("emotionkit_plugin_example-0.1.0.dist-info/entry_points.txt"))
    return target


USE_PLUGIN = textwrap.dedent(
    """
    import json, tempfile
    import numpy as np
    from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone, sample_image_path
    from emotionkit.detectors.mtcnn import MTCNNDetector
    from emotionkit.registry import list_plugins, load_plugin

    info = list_plugins("backbones")["minicnn"]
    spec = load_plugin("backbones", "minicnn")
    rec = EmotionRecognizer(
        build_backbone("minicnn"),
        FacePreprocessor.from_dict(dict(spec.preprocessing)),
        MTCNNDetector(),
        backbone_name="minicnn",
        backbone_config=dict(spec.default_config),
    )
    faces = rec.predict(sample_image_path())
    explained = rec.explain(sample_image_path(), target="happy")
    with tempfile.TemporaryDirectory() as tmp:
        rec.save_pretrained(tmp)
        again = EmotionRecognizer.from_pretrained(tmp, detector="none")
        crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
        same = bool(np.allclose(again.predict_proba(crops), rec.predict_proba(crops), atol=1e-6))
    print(json.dumps({
        "distribution": info.distribution,
        "value": info.value,
        "faces": len(faces),
        "score_sum": sum(faces[0].scores.values()) if faces else None,
        "heatmap": list(explained[0].heatmap.shape) if explained else None,
        "roundtrip": same,
        "module": type(rec.model).__module__,
    }))
    """
)


def test_plugin_example_runs_through_emotionkit(plugin_site):
    done = subprocess.run(
        [sys.executable, "-c", USE_PLUGIN], capture_output=True, text=True, timeout=600, env=_env(plugin_site)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["distribution"] == "emotionkit-plugin-example"
    assert result["value"] == "emotionkit_plugin_example:SPEC"
    assert result["module"] == "emotionkit_plugin_example"  # the installed copy, found through the entry point
    assert result["faces"] == 1  # the sample photo has one face
    assert result["score_sum"] == pytest.approx(1.0, abs=1e-5)
    assert result["heatmap"] == [48, 48]
    assert result["roundtrip"] is True


def test_plugin_example_own_tests_pass(plugin_site):
    if importlib.util.find_spec("emotionkit.testing") is None:
        pytest.skip("emotionkit.testing (check_backbone) is not available in this emotionkit")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(cmd, cwd=PLUGIN, capture_output=True, text=True, timeout=600, env=_env(plugin_site))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "generated" not in p.parts and "_build" not in p.parts)


def _has_bundled_weights() -> bool:
    from emotionkit.recognizer import bundled_models

    return bool(bundled_models())


@pytest.mark.parametrize(
    "page", [p for p in _pages() if FENCE.search(p.read_text())], ids=lambda p: str(p.relative_to(DOCS))
)
def test_markdown_snippets(page: Path):
    text = page.read_text()
    if NEEDS_WEIGHTS in text and not _has_bundled_weights():
        pytest.skip(f"{page.relative_to(REPO)} uses bundled weights, and none ship yet")
    source = "\n".join(block for block in FENCE.findall(text))
    test = doctest.DocTestParser().get_doctest(
        source, {"__name__": "__docs__"}, str(page.relative_to(REPO)), str(page), 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries > 0


def test_every_snippet_page_is_found():
    # A guard against a fence regex that silently matches nothing.
    assert len([p for p in _pages() if FENCE.search(p.read_text())]) >= 3


def test_model_zoo_numbers_come_from_the_cards(tmp_path, monkeypatch, repo_script):
    import emotionkit.recognizer
    from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone
    from emotionkit.weights import WeightsSpec, sha256sum

    ek_zoo = repo_script("docs/_ext/ek_zoo.py")
    monkeypatch.setattr(emotionkit.recognizer, "bundled_models", lambda: {})
    assert "No bundled weights yet" in ek_zoo.render()

    # A package shipping weights with a card, laid out as tools/bundle_weights.py writes it.
    folder = tmp_path / "zoo_pkg" / "models" / "cnn"
    folder.mkdir(parents=True)
    (tmp_path / "zoo_pkg" / "__init__.py").write_text("")
    rec = EmotionRecognizer(
        build_backbone("cnn"), FacePreprocessor(), backbone_name="cnn", backbone_config={"in_channels": 1}
    )
    rec.save_pretrained(folder)
    card = {
        "labels": list(rec.labels),
        "num_params": 1_234_567,
        "publictest": {"accuracy": 0.6789, "macro_f1": 0.6123, "weighted_f1": 0.6543, "ece": 0.0312},
        "publictest_flip_tta": {"accuracy": 0.6912},
        "publictest_dedup": {"accuracy": 0.6701},
        "publictest_ferplus": {"accuracy": 0.8123},
    }
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "card.md").write_text("# `cnn`: cnn\n\n## FER-2013 PublicTest\n\nAccuracy 0.6789 on 3589 faces.\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    weights = WeightsSpec("cnn_test", "zoo_pkg", "models/cnn", sha256sum(folder / "model.safetensors"))
    monkeypatch.setattr(emotionkit.recognizer, "bundled_models", lambda: {"cnn": weights})

    text = ek_zoo.render()
    row = next(line for line in text.splitlines() if line.startswith("| `cnn`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    from emotionkit.pretrained import DEFAULT_MODEL

    assert cells == [
        "`cnn` (default)" if DEFAULT_MODEL == "cnn" else "`cnn`",
        "one crop",
        "1.23 M",
        "1×48×48",
        "67.9%",
        "69.1%",
        "67.0%",
        "0.612",
        "0.654",
        "0.031",
        "81.2%",
        cells[-1],
    ]
    assert cells[-1].endswith(" MB")

    # A model that predicts with flip TTA: its F1 and ECE columns are those of that protocol.
    tta = {"accuracy": 0.6912, "macro_f1": 0.6234, "weighted_f1": 0.6601, "ece": 0.0277}
    (folder / "card.json").write_text(json.dumps({**card, "flip_tta": True, "publictest_flip_tta": tta}))
    row = next(line for line in ek_zoo.render().splitlines() if line.startswith("| `cnn`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "flip TTA" and cells[4:10] == ["67.9%", "69.1%", "67.0%", "0.623", "0.660", "0.028"]
    assert "### `cnn`: cnn" in text and "#### FER-2013 PublicTest" in text  # the card, headings under the model's
    assert weights.sha256 in text
