"""Distillation from an ensemble of bundled teachers, on real FER-2013 faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotionkit import EmotionRecognizer, FacePreprocessor
from emotionkit.exceptions import IncompatibleComponentsError, InvalidOptionError
from emotionkit.training.augment import RandomAffineFlip
from emotionkit.training.distill import TeacherEnsemble, adapt_faces, distillation_loss, teacher_names
from emotionkit.training.trainer import TrainConfig, Trainer

GREY48 = FacePreprocessor(size=48, channels=1)


@pytest.fixture(scope="module")
def bundled():
    return {name: EmotionRecognizer.from_pretrained(name, detector=None) for name in ("mobilenetv2", "cnn")}


def test_adapted_faces_equal_the_teachers_own_preprocessing(fer_faces, bundled):
    """A 48 px grey batch adapted to the larger, normalised mobilenetv2 input equals mobilenetv2's own faces()."""
    target = bundled["mobilenetv2"].preprocessor
    assert target.to_dict() != GREY48.to_dict()  # the case that needs adapting
    adapted = adapt_faces(GREY48.faces(fer_faces), GREY48, target)
    own = target.faces(fer_faces)
    assert target.size[0] > 48 and adapted.shape == own.shape == (len(fer_faces), 1, *target.size)
    torch.testing.assert_close(adapted, own, atol=1e-5, rtol=0)


def test_adapting_to_rgb_and_back_keeps_the_pixels(fer_faces):
    rgb = FacePreprocessor(size=48, channels=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    x = GREY48.faces(fer_faces[:8])
    there = adapt_faces(x, GREY48, rgb)
    assert there.shape == (8, 3, 48, 48)
    torch.testing.assert_close(adapt_faces(there, rgb, GREY48), x, atol=1e-5, rtol=0)
    assert adapt_faces(x, GREY48, FacePreprocessor(size=48, channels=1)) is x  # equal preprocessing: untouched


def test_a_different_margin_is_refused():
    with pytest.raises(IncompatibleComponentsError, match="margin 0.1.*0.3"):
        adapt_faces(torch.rand(1, 1, 48, 48), GREY48, FacePreprocessor(size=48, margin=0.3))


def test_ensemble_targets_are_the_mean_of_each_teachers_softened_probabilities(fer_faces, bundled):
    ensemble = TeacherEnsemble.load("mobilenetv2, cnn", GREY48)
    assert ensemble.names == ["mobilenetv2", "cnn"]
    # Augmented faces, as in training: each teacher must see the same augmented pixels.
    x = RandomAffineFlip(10, 0.1, 0.1)(GREY48.faces(fer_faces[:32]), generator=torch.Generator().manual_seed(0))
    targets = ensemble.soft_targets(x, temperature=2.0)
    assert targets.shape == (32, 7)
    torch.testing.assert_close(targets.sum(1), torch.ones(32))
    expected = torch.zeros(32, 7)
    for rec in bundled.values():
        faces = adapt_faces(x, GREY48, rec.preprocessor)
        expected += F.softmax(rec.inference.logits(faces, flip_tta=False) / 2.0, dim=1) / 2  # teachers: one crop
    torch.testing.assert_close(targets, expected, atol=1e-5, rtol=0)
    # The two teachers disagree somewhere: the ensemble is not one of them.
    single = TeacherEnsemble.load("cnn", GREY48).soft_targets(x, 2.0)
    assert float((single - targets).abs().max()) > 1e-3


def test_a_flip_tta_teacher_gives_one_crop_targets(fer_faces, bundled):
    """The batch is already flipped at random: a teacher that predicts with flip TTA is asked for one crop."""
    x = GREY48.faces(fer_faces[:16])
    teacher = EmotionRecognizer.from_pretrained("cnn", detector=None, flip_tta=True).inference
    got = TeacherEnsemble([teacher], GREY48, ["cnn"]).soft_targets(x, temperature=2.0)
    one = F.softmax(bundled["cnn"].logits(x, flip_tta=False) / 2.0, dim=1)
    torch.testing.assert_close(got, one, atol=1e-5, rtol=0)
    assert not torch.allclose(got, F.softmax(teacher.logits(x) / 2.0, dim=1), atol=1e-4)


def test_distillation_loss_is_zero_only_at_the_teachers_distribution():
    logits = torch.randn(16, 7, generator=torch.Generator().manual_seed(1))
    target = F.softmax(logits / 3.0, dim=1)
    assert float(distillation_loss(logits, target, 3.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(logits + torch.randn(16, 7), target, 3.0)) > 1e-3


def test_teacher_names_and_an_empty_ensemble():
    assert teacher_names(["a,b", " c "]) == ["a", "b", "c"]
    with pytest.raises(InvalidOptionError, match="at least one teacher"):
        TeacherEnsemble([], GREY48)


def test_a_student_learns_from_a_64px_teacher(fer_train_small, tmp_path):
    """A small 48 px CNN trains against the mobilenetv2 + cnn ensemble; the run records its teachers."""
    data = fer_train_small.subset(np.arange(256))
    train, val = data.subset(np.arange(192)), data.subset(np.arange(192, 256))
    logs: list[str] = []
    config = TrainConfig(
        backbone="cnn",
        backbone_config={"widths": [8, 16, 32], "hidden": 64},
        batch_size=32,
        epochs=1,
        tta_flip=False,
        progress=False,
        distill_from="mobilenetv2,cnn",
        distill_alpha=0.7,
        distill_temperature=3.0,
    )
    summary = Trainer(config, tmp_path, log=logs.append).fit(train, val)
    assert np.isfinite(summary["history"][0]["train_loss"])
    assert sum("distilling from" in line for line in logs) == 2
    recorded = json.loads((tmp_path / "train_config.json").read_text())
    assert recorded["distill_from"] == "mobilenetv2,cnn" and recorded["distill_alpha"] == 0.7
