"""Batch-norm re-estimation on real FER-2013 faces (``emotionkit.training.batchnorm``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emotionkit import EmotionRecognizer
from emotionkit.exceptions import InvalidDataError
from emotionkit.training.batchnorm import batchnorm_layers, recalibrate_batchnorm, recalibrate_if_better


@pytest.fixture()
def cnn():
    """The bundled cnn (fresh per test: recalibration changes it in place)."""
    return EmotionRecognizer.from_pretrained("cnn", detector=None)


@pytest.fixture(scope="module")
def faces(fer_train_small):
    """300 real training faces, preprocessed as the cnn takes them: (300, 1, 48, 48) in [0, 1]."""
    return torch.as_tensor(fer_train_small.images[:300]).float().div(255).unsqueeze(1)


def _first_bn_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The activations entering the model's first batch-norm layer (they do not depend on its statistics)."""
    seen = []
    handle = batchnorm_layers(model)[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return seen[0]


def test_statistics_are_those_of_the_given_faces(cnn, faces):
    model = cnn.model
    first = batchnorm_layers(model)[0]
    before = first.running_mean.clone()
    acts = _first_bn_input(model, faces)
    assert recalibrate_batchnorm(model, faces, batch_size=len(faces)) == len(batchnorm_layers(model)) > 0
    # One batch: the running statistics are that batch's mean and unbiased variance per channel.
    torch.testing.assert_close(first.running_mean, acts.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.running_var, acts.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(before, first.running_mean, atol=1e-3)  # they did change
    assert not model.training and first.momentum == 0.1  # mode and momentum restored


def test_batches_weigh_equally_and_a_last_single_face_is_skipped(cnn, faces):
    model = cnn.model
    first = batchnorm_layers(model)[0]
    acts = _first_bn_input(model, faces[:201])
    recalibrate_batchnorm(model, faces[:201], batch_size=100)  # batches of 100, 100 and 1 (skipped)
    means = torch.stack([acts[:100].mean(dim=(0, 2, 3)), acts[100:200].mean(dim=(0, 2, 3))])
    torch.testing.assert_close(first.running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
    assert int(first.num_batches_tracked) == 2


def test_dropout_stays_off_during_the_pass(faces):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 16), nn.Dropout(0.5), nn.BatchNorm1d(16)).train()
    recalibrate_batchnorm(net, faces, batch_size=len(faces))
    with torch.no_grad():
        plain = net[1](net[0](faces))  # what the batch norm receives at inference: no dropout
    torch.testing.assert_close(net[3].running_mean, plain.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net[3].running_var, plain.var(0), rtol=1e-4, atol=1e-5)  # dropout would inflate it
    assert net.training  # it was in training mode, and is again


def test_model_without_batch_norm_is_left_alone(faces):
    net = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert recalibrate_batchnorm(net, faces) == 0
    assert recalibrate_if_better(net, faces, lambda: (0.0,)) == {"layers": 0}
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(1, 1, 48, 48), "at least 2 training faces.*got 1"),
        (torch.rand(8, 48, 48), r"float tensor \(N, C, H, W\); got Tensor \(8, 48, 48\)"),
        (torch.zeros(8, 1, 48, 48, dtype=torch.uint8), "torch.uint8.*preprocessor's faces"),
        ("faces.png", "got str"),
    ],
)
def test_bad_input_says_what_was_given(cnn, bad, match):
    with pytest.raises(InvalidDataError, match=match):
        recalibrate_batchnorm(cnn.model, bad)


def test_new_statistics_are_kept_only_when_the_score_does_not_drop(cnn, faces):
    model = cnn.model
    layers = batchnorm_layers(model)
    old = [layer.running_var.clone() for layer in layers]
    scores = iter([(0.5, 0.6), (0.5, 0.59)])  # after < before: dropped, the old statistics come back
    info = recalibrate_if_better(model, faces, lambda: next(scores))
    assert info == {
        "layers": len(layers),
        "images": 300,
        "score_before": [0.5, 0.6],
        "score_after": [0.5, 0.59],
        "kept": False,
    }
    assert all(torch.equal(a, layer.running_var) for a, layer in zip(old, layers))

    scores = iter([(0.5, 0.6), (0.5, 0.6)])  # a tie keeps them
    assert recalibrate_if_better(model, faces, lambda: next(scores))["kept"]
    assert not torch.allclose(old[0], layers[0].running_var)


def test_real_validation_score_drives_the_choice(cnn, fer_train_small):
    """With the recognizer's own logits as the score, the kept statistics never score lower than the old ones."""
    x = cnn.preprocessor.faces(fer_train_small.images)
    train, val, y_val = x[:400], x[400:], torch.as_tensor(fer_train_small.labels[400:])

    def score() -> tuple[float]:
        return (float((cnn.logits(val).argmax(1) == y_val).float().mean()),)

    info = recalibrate_if_better(cnn.model, train, score)
    assert info["images"] == 400 and score() == tuple(info["score_after"] if info["kept"] else info["score_before"])
    assert score() >= tuple(info["score_before"])
