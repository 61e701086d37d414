"""The layers: the inference core under the recognizer, weights metadata resolved once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone
from emotionkit.inference import InferenceModel, TorchRuntime
from emotionkit.pretrained import bundled_models, resolve_pretrained
from emotionkit.registry import load_plugin
from emotionkit.weights import WEIGHTS_NAME, sha256sum

BUNDLED = sorted(bundled_models())


@pytest.mark.parametrize("name", BUNDLED or [pytest.param("none", marks=pytest.mark.skip(reason="no bundled weights"))])
def test_bundled_weights_record_their_checksum_once_and_it_is_the_files(name):
    weights = load_plugin("backbones", name).weights[0]
    # The spec carries no hard-coded copy: it reads config.json's record, which must be the file's digest.
    assert weights.sha256 == weights.config()["weights_sha256"] == sha256sum(weights.path / WEIGHTS_NAME)


@pytest.mark.parametrize("name", BUNDLED[:1] or [pytest.param("none", marks=pytest.mark.skip(reason="no weights"))])
def test_from_pretrained_keeps_what_it_resolved(name, model_dir):
    rec = EmotionRecognizer.from_pretrained(name, detector="none")
    spec = load_plugin("backbones", name)
    assert rec.pretrained_model is not None and rec.pretrained_model.spec is spec
    assert rec.inference.spec is spec and rec.pretrained_model.weights is spec.weights[0]
    assert rec.pretrained_model.path == spec.weights[0].path
    saved = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    assert saved.pretrained_model is not None and saved.pretrained_model.weights is None
    assert saved.inference.spec is load_plugin("backbones", "cnn")  # the backbone config.json names
    assert EmotionRecognizer(build_backbone("cnn"), FacePreprocessor()).pretrained_model is None


def test_resolve_pretrained_reads_a_directory_once(model_dir):
    resolved = resolve_pretrained(model_dir)
    assert resolved.config["backbone"] == "cnn" and resolved.sha256 == sha256sum(model_dir / WEIGHTS_NAME)
    state = resolved.state_dict()
    model = build_backbone(resolved.backbone_spec(), resolved.config["backbone_config"])
    model.load_state_dict(state)  # build_backbone takes the resolved spec as well as a name


def test_the_recognizer_is_a_facade_over_its_core(model_dir, fer_faces):
    rec = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    core = rec.inference
    assert isinstance(core, InferenceModel) and isinstance(core.runtime, TorchRuntime) and rec.runtime == "torch"
    assert rec.model is core.model and rec.preprocessor is core.preprocessor and rec.labels == core.labels
    x = core.preprocessor.faces(fer_faces[:8])
    expected = torch.softmax(core.logits(x) / core.temperature, dim=1).numpy()
    np.testing.assert_allclose(core.probabilities(x), expected, atol=1e-7, rtol=0)
    np.testing.assert_array_equal(rec.predict_proba(fer_faces[:8]), core.probabilities(x))
    prepared = core.prepare(x)
    assert prepared.is_contiguous(memory_format=torch.channels_last)  # the CPU convnet's layout, made in one place
    assert core.logits(x[:0]).shape == (0, len(core.labels))


def test_face_detector_is_a_public_accessor_that_does_not_mutate(model_dir, sample_photo):
    rec = EmotionRecognizer.from_pretrained(model_dir, detector=None)
    assert rec.detector is None
    whole = rec.face_detector
    assert rec.face_detector is whole and rec.detector is None  # reading it changes nothing
    assert len(rec.predict(sample_photo)) == 1 and rec.detector is None
