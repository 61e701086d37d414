"""The moving average of the weights (``emotionkit train --ema-decay``): its arithmetic, and the trainer's use of it
on real FER-2013 faces (a small CNN, and a warm restart of the bundled cnn)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emotionkit import EmotionRecognizer
from emotionkit.data.splits import stratified_split
from emotionkit.exceptions import InvalidOptionError, InvalidWeightsError
from emotionkit.recognizer import build_backbone
from emotionkit.training.metrics import classification_metrics, softmax
from emotionkit.training.trainer import TrainConfig, Trainer, predict_logits
from emotionkit.training.weight_average import WeightAverage

SMALL = {"widths": [8, 16, 32], "hidden": 64}
BASE = {"backbone": "cnn", "backbone_config": SMALL, "batch_size": 32, "lr": 3e-3, "tta_flip": False, "progress": False}


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def parts(fer_train_small):
    """300 training and 100 validation faces (stratified) from the first 400 FER-2013 Training rows."""
    data = fer_train_small.subset(np.arange(400))
    train, val = stratified_split(data.labels, (0.75, 0.25), seed=0, class_names=data.classes)
    return data.subset(train), data.subset(val)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("cnn", {**SMALL, "in_channels": 1}, num_classes=7)


def test_average_is_the_exponential_mean_of_the_steps_and_applied_restores_the_weights():
    net = _net()
    w0 = {k: v.clone() for k, v in net.state_dict().items()}
    average = WeightAverage(net, decay=0.8)
    steps = []
    for _ in range(3):  # three "optimiser steps": arbitrary new weights and batch-norm statistics
        with torch.no_grad():
            for value in net.state_dict().values():
                if value.is_floating_point():
                    value.add_(torch.randn_like(value))
                else:
                    value.add_(1)
        steps.append({k: v.clone() for k, v in net.state_dict().items()})
        average.update(net)
    own = {k: v.clone() for k, v in net.state_dict().items()}
    d = 0.8
    with average.applied(net) as held:
        assert held is net
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                expected = d**3 * w0[key] + d**2 * (1 - d) * steps[0][key] + d * (1 - d) * steps[1][key]
                expected = expected + (1 - d) * steps[2][key]
                torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
            else:  # counters are the latest step's
                assert torch.equal(value, steps[2][key])
    assert all(torch.equal(net.state_dict()[k], own[k]) for k in own)  # the network's own weights are back
    assert average.updates == 3


def test_applied_restores_the_weights_when_the_block_raises():
    net = _net()
    average = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    own = {k: v.clone() for k, v in net.state_dict().items()}
    average.update(net)
    with pytest.raises(RuntimeError, match="inside"), average.applied(net):
        raise RuntimeError("inside")
    assert all(torch.equal(net.state_dict()[k], own[k]) for k in own)


def test_state_dict_round_trip_and_a_mismatched_one_is_refused():
    net = _net()
    average = WeightAverage(net, decay=0.9)
    with torch.no_grad():
        next(net.parameters()).mul_(2.0)
    average.update(net)
    fresh = WeightAverage(_net(), decay=0.9)
    fresh.load_state_dict(average.state_dict())
    assert fresh.updates == 1 and all(torch.equal(fresh.state[k], average.state[k]) for k in average.state)
    other = WeightAverage(
        build_backbone("cnn", {"widths": [8, 16, 16], "hidden": 64, "in_channels": 1}, num_classes=7), 0.9
    )
    with pytest.raises(InvalidWeightsError, match="of shape .*same backbone and config"):
        other.load_state_dict(average.state_dict())
    with pytest.raises(InvalidWeightsError, match="does not match this network's tensors"):
        fresh.load_state_dict({"state": {"weight": torch.zeros(1)}})


@settings(max_examples=40, deadline=None)
@given(decay=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.booleans(), st.none()))
def test_decay_outside_zero_one_is_a_clear_error(decay):
    net = torch.nn.Linear(2, 1)
    if isinstance(decay, float) and 0.0 < decay < 1.0:
        assert WeightAverage(net, decay).decay == decay
    else:
        with pytest.raises(InvalidOptionError, match=r"decay must be a number in \(0, 1\).*got"):
            WeightAverage(net, decay)


def test_trainer_refuses_a_bad_ema_decay(tmp_path):
    with pytest.raises(InvalidOptionError, match=r"ema_decay .* must be a number in \(0, 1\).*got 1.0"):
        Trainer(TrainConfig(**BASE, epochs=1, ema_decay=1.0), tmp_path, log=quiet)


def test_a_warm_restart_whose_steps_ruin_the_weights_keeps_their_average(parts, tmp_path):
    """From the bundled cnn with a learning rate far too high, the raw weights fall apart within an epoch; the
    average (99% per step, ten steps) stays near the trained start, wins on validation and is what gets saved."""
    config = TrainConfig(
        backbone="cnn",
        init_from="cnn",
        epochs=1,
        batch_size=32,
        lr=0.05,
        warmup_epochs=0.0,
        ema_decay=0.99,
        recalibrate_bn=False,
        tta_flip=False,
        progress=False,
    )
    logs: list[str] = []
    summary = Trainer(config, tmp_path, log=logs.append).fit(*parts)
    entry = summary["history"][0]
    assert entry["val_accuracy_average"] > entry["val_accuracy"] + 0.1
    assert any("average: val acc" in line for line in logs)
    saved = EmotionRecognizer.from_pretrained(tmp_path, detector=None)
    assert saved.meta["training"]["weight_average"] == {"decay": 0.99, "best_is": "average"}
    # The saved weights are the average the checkpoint holds, and score what the history says they scored.
    average = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["weight_average"]["state"]
    state = saved.model.state_dict()
    assert all(torch.equal(state[k], average[k].to(state[k].dtype)) for k in state)
    val = parts[1]
    logits = predict_logits(saved, saved.preprocessor.faces(val.images), tta_flip=False)
    assert classification_metrics(val.labels, softmax(logits), val.classes)["accuracy"] == pytest.approx(
        entry["val_accuracy_average"]
    )


def test_a_run_resumed_after_a_kill_has_the_same_average(parts, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    Trainer(TrainConfig(**BASE, epochs=2, ema_decay=0.9), full, log=quiet).fit(*parts)
    Trainer(TrainConfig(**BASE, epochs=1, ema_decay=0.9), cut, log=quiet).fit(*parts)
    Trainer(TrainConfig(**BASE, epochs=2, ema_decay=0.9), cut, log=quiet).fit(*parts, resume=True)
    a = torch.load(full / "checkpoint.pt", weights_only=True)["weight_average"]
    b = torch.load(cut / "checkpoint.pt", weights_only=True)["weight_average"]
    assert a["updates"] == b["updates"] == 20
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    history = json.loads((cut / "history.json").read_text())
    assert [round(e["val_loss_average"], 6) for e in history] == [
        round(e["val_loss_average"], 6) for e in json.loads((full / "history.json").read_text())
    ]


def test_without_ema_decay_nothing_is_averaged(parts, tmp_path):
    Trainer(TrainConfig(**BASE, epochs=1), tmp_path, log=quiet).fit(*parts)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["weight_average"] is None
    assert "val_accuracy_average" not in json.loads((tmp_path / "history.json").read_text())[0]
    assert "weight_average" not in EmotionRecognizer.from_pretrained(tmp_path, detector=None).meta["training"]
