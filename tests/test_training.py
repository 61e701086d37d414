"""The trainer on real FER-2013 faces: tiny runs (a few hundred faces, 1-2 epochs, a small CNN)."""

from __future__ import annotations

import copy
import json
import shutil
import time

import numpy as np
import pytest
import torch

from emotionkit import EmotionRecognizer
from emotionkit.data.splits import stratified_split
from emotionkit.exceptions import IncompatibleComponentsError, InvalidOptionError, MissingDependencyError
from emotionkit.recognizer import build_backbone
from emotionkit.training.finetune import head_index, layer_groups, set_trainable
from emotionkit.training.trainer import TrainConfig, Trainer

# A small CNN (80k parameters) keeps every run to seconds; the recipe is otherwise the default.
SMALL = {"widths": [8, 16, 32], "hidden": 64}
BASE = {"backbone": "cnn", "backbone_config": SMALL, "batch_size": 32, "lr": 3e-3, "tta_flip": False, "progress": False}
TIMING_KEYS = {"seconds", "images_per_second"}


def quiet(_: str) -> None:
    pass


def _same(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in TIMING_KEYS} == {k: v for k, v in b.items() if k not in TIMING_KEYS}


@pytest.fixture(scope="module")
def parts(fer_train_small):
    """300 training and 100 validation faces (stratified) from the first 400 FER-2013 Training rows."""
    data = fer_train_small.subset(np.arange(400))
    train, val = stratified_split(data.labels, (0.75, 0.25), seed=0, class_names=data.classes)
    return data.subset(train), data.subset(val)


@pytest.fixture(scope="module")
def full_run(parts, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    start = time.process_time()  # CPU time of this process: the work, whatever else the machine runs
    summary = Trainer(TrainConfig(**BASE, epochs=2), out, log=quiet).fit(*parts)
    return out, summary, time.process_time() - start


@pytest.fixture(scope="module")
def resumed_run(parts, tmp_path_factory):
    """The same recipe and seed, 'killed' after epoch 1 (a 1-epoch run), then resumed to 2 epochs."""
    out = tmp_path_factory.mktemp("resumed")
    first = Trainer(TrainConfig(**BASE, epochs=1), out, log=quiet).fit(*parts)
    logs: list[str] = []
    second = Trainer(TrainConfig(**BASE, epochs=2), out, log=logs.append).fit(*parts, resume=True)
    return out, first, second, logs


def test_two_epochs_loss_falls(full_run):
    out, summary, cpu_seconds = full_run
    history = summary["history"]
    assert [e["epoch"] for e in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert cpu_seconds < 60  # two epochs, validation, calibration and saving
    assert json.loads((out / "history.json").read_text()) == history


def test_checkpoint_and_run_directory(full_run):
    out, summary, _ = full_run
    for name in (
        "checkpoint.pt",
        "config.json",
        "preprocessor.json",
        "model.safetensors",
        "history.json",
        "train_config.json",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    payload = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = json.loads(payload["state"])
    assert state["epoch"] == 2 and state["step"] == 2 * 10 and state["best_epoch"] == summary["best_epoch"]
    assert payload["backbone"] == "cnn" and payload["backbone_config"]["widths"] == [8, 16, 32]
    assert json.loads((out / "train_config.json").read_text())["epochs"] == 2


def test_same_seed_same_history_and_kill_resume_same_weights(full_run, resumed_run):
    full, full_summary, _ = full_run
    out, first, second, logs = resumed_run
    assert any("resumed from" in line and "at epoch 1" in line for line in logs)
    assert len(first["history"]) == 1 and len(second["history"]) == 2
    # Epoch 1 of the killed run, of the resumed run and of the uninterrupted run: identical (determinism).
    assert _same(first["history"][0], full_summary["history"][0])
    assert _same(second["history"][0], first["history"][0])
    # Epoch 2 after the resume equals epoch 2 of the uninterrupted run, and so do the final weights.
    assert _same(second["history"][1], full_summary["history"][1])
    a = torch.load(full / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_loads_with_from_pretrained(full_run, fer_faces):
    out, summary, _ = full_run
    rec = EmotionRecognizer.from_pretrained(out, detector=None)
    probs = rec.predict_proba(fer_faces[:8])
    assert probs.shape == (8, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert rec.temperature == pytest.approx(summary["temperature"])
    assert rec.meta["training"]["best_epoch"] == summary["best_epoch"]
    assert rec.backbone_config["widths"] == [8, 16, 32]


def test_temperature_is_kept_only_when_it_lowers_the_validation_ece(full_run, parts):
    """The saved temperature is the NLL-fitted one when it did not raise validation ECE, else 1; the recorded ECEs
    are those of the saved model's validation logits at T = 1 and at the fitted temperature."""
    from emotionkit.training.metrics import expected_calibration_error, softmax

    out, _, _ = full_run
    _, val = parts
    rec = EmotionRecognizer.from_pretrained(out, detector=None)
    cal = rec.meta["calibration"]
    logits = rec.logits(rec.preprocessor.faces(val.images)).numpy()
    assert expected_calibration_error(softmax(logits), val.labels) == pytest.approx(cal["ece_before"])
    fitted = expected_calibration_error(softmax(logits, cal["fitted_temperature"]), val.labels)
    assert fitted == pytest.approx(cal["ece_after"])
    assert cal["kept"] == (cal["ece_after"] <= cal["ece_before"])
    assert rec.temperature == pytest.approx(cal["fitted_temperature"] if cal["kept"] else 1.0)


def test_batch_norm_re_estimated_on_the_plain_training_faces(full_run, parts):
    out, summary, _ = full_run
    train, val = parts
    rec = EmotionRecognizer.from_pretrained(out, detector=None)
    info = rec.meta["batchnorm"]
    assert info["images"] == len(train) == 300 and info["layers"] == 4  # 3 conv blocks + the dense layer
    # The saved model scores on validation what was recorded for the statistics it kept.
    accuracy = float((rec.logits(rec.preprocessor.faces(val.images)).argmax(1).numpy() == val.labels).mean())
    assert accuracy == pytest.approx(info["val_accuracy_after" if info["kept"] else "val_accuracy_before"])
    assert summary["val"]["accuracy"] == pytest.approx(accuracy)


def test_zero_epochs_with_init_from_only_finishes_the_weights(full_run, parts, tmp_path):
    source = EmotionRecognizer.from_pretrained(full_run[0], detector=None)
    config = TrainConfig(backbone="cnn", init_from=str(full_run[0]), epochs=0, progress=False, tta_flip=False)
    summary = Trainer(config, tmp_path, log=quiet).fit(*parts)
    assert summary["history"] == [] and summary["best_epoch"] is None
    finished = EmotionRecognizer.from_pretrained(tmp_path, detector=None)
    # Its training record is the source's (those epochs made these weights), plus what finished them.
    assert finished.meta["training"]["epochs_run"] == 2 == source.meta["training"]["epochs_run"]
    assert finished.meta["training"]["finished_by"]["epochs"] == 0 and finished.meta["batchnorm"]["images"] == 300
    state = finished.model.state_dict()
    for name, tensor in source.model.state_dict().items():
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(state[name], tensor), name  # only batch-norm statistics may change


def test_predict_flip_saves_a_mirror_averaging_model_calibrated_on_those_logits(full_run, parts, tmp_path):
    """``predict_flip``: the saved model predicts on each face and its mirror image, and its temperature and recorded
    validation ECEs are those of the averaged logits, not of one crop."""
    from emotionkit.training.metrics import expected_calibration_error, softmax

    _, val = parts
    config = TrainConfig(
        backbone="cnn", init_from=str(full_run[0]), epochs=0, progress=False, tta_flip=False, predict_flip="yes"
    )
    Trainer(config, tmp_path, log=quiet).fit(*parts)
    assert json.loads((tmp_path / "config.json").read_text())["flip_tta"] is True
    rec = EmotionRecognizer.from_pretrained(tmp_path, detector=None)
    assert rec.flip_tta
    x = rec.preprocessor.faces(val.images)
    one, mirrored = rec.logits(x, flip_tta=False), rec.logits(torch.flip(x, dims=[3]), flip_tta=False)
    both = rec.logits(x)
    torch.testing.assert_close(both, (one + mirrored) / 2, atol=1e-5, rtol=1e-5)
    cal = rec.meta["calibration"]
    assert expected_calibration_error(softmax(both.numpy()), val.labels) == pytest.approx(cal["ece_before"])
    assert expected_calibration_error(softmax(one.numpy()), val.labels) != pytest.approx(cal["ece_before"])
    assert rec.temperature == pytest.approx(cal["fitted_temperature"] if cal["kept"] else 1.0)
    assert not EmotionRecognizer.from_pretrained(full_run[0], detector=None).flip_tta  # the default: one crop
    assert "flip_tta" not in rec.meta  # chosen, not decided on validation


def test_predict_flip_auto_keeps_the_mirror_only_when_it_raises_the_validation_score(full_run, parts, tmp_path):
    from emotionkit.training.metrics import classification_metrics, softmax

    _, val = parts
    config = TrainConfig(
        backbone="cnn", init_from=str(full_run[0]), epochs=0, progress=False, tta_flip=False, predict_flip="auto"
    )
    Trainer(config, tmp_path, log=quiet).fit(*parts)
    rec = EmotionRecognizer.from_pretrained(tmp_path, detector=None)
    record = rec.meta["flip_tta"]
    x = rec.preprocessor.faces(val.images)
    for flip, key in ((False, "one_crop"), (True, "flip")):
        m = classification_metrics(val.labels, softmax(rec.logits(x, flip_tta=flip).numpy()), rec.labels)
        assert (record[f"val_macro_f1_{key}"], record[f"val_accuracy_{key}"]) == (
            round(m["macro_f1"], 4),
            pytest.approx(m["accuracy"]),
        )
    one = (record["val_macro_f1_one_crop"], record["val_accuracy_one_crop"])
    assert record["kept"] == rec.flip_tta == ((record["val_macro_f1_flip"], record["val_accuracy_flip"]) > one)


def test_predict_flip_must_be_a_known_choice(tmp_path):
    with pytest.raises(InvalidOptionError, match="predict_flip must be 'no', 'yes' or 'auto'.*got True"):
        Trainer(TrainConfig(**BASE, predict_flip=True), tmp_path)


def test_a_finish_without_batch_norm_re_estimation_keeps_the_sources_record(full_run, parts, tmp_path):
    """The weights' batch-norm statistics are still the source's re-estimated ones, so its card must still say so."""
    source = EmotionRecognizer.from_pretrained(full_run[0], detector=None)
    config = TrainConfig(
        backbone="cnn", init_from=str(full_run[0]), epochs=0, progress=False, tta_flip=False, recalibrate_bn=False
    )
    Trainer(config, tmp_path, log=quiet).fit(*parts)
    finished = EmotionRecognizer.from_pretrained(tmp_path, detector=None)
    assert finished.meta["batchnorm"] == source.meta["batchnorm"]
    state = finished.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.model.state_dict().items())


def test_zero_epochs_without_init_from_is_refused(tmp_path):
    with pytest.raises(InvalidOptionError, match="epochs must be >= 1 .*got 0 without init_from"):
        Trainer(TrainConfig(**BASE, epochs=0), tmp_path)
    with pytest.raises(InvalidOptionError, match="got -1"):
        Trainer(TrainConfig(**BASE, epochs=-1), tmp_path)


def test_resume_from_another_architecture_is_refused(full_run, parts, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(full_run[0], run)
    before = (run / "train_config.json").read_text()
    trainer = Trainer(TrainConfig(**{**BASE, "backbone": "resnet", "backbone_config": {}}, epochs=3), run, log=quiet)
    with pytest.raises(
        IncompatibleComponentsError, match="Cannot resume: .* checkpoint of backbone 'cnn'.*this run trains 'resnet'"
    ):
        trainer.fit(*parts, resume=True)
    assert (run / "train_config.json").read_text() == before  # the refused resume left the run intact


def test_resume_with_changed_settings_warns(full_run, parts, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(full_run[0], run)
    logs: list[str] = []
    summary = Trainer(TrainConfig(**{**BASE, "lr": 1e-3}, epochs=2), run, log=logs.append).fit(*parts, resume=True)
    assert any("changed settings lr: 0.003 -> 0.001" in line for line in logs)
    assert len(summary["history"]) == 2  # nothing left to train


def test_early_stopping_fires(parts, tmp_path):
    train, val = parts
    # A learning rate too small to improve the validation score: it stops after `patience` epochs without progress.
    config = TrainConfig(**{**BASE, "lr": 1e-7}, epochs=8, early_stopping_patience=2, augment=False)
    summary = Trainer(config, tmp_path, log=quiet).fit(train.subset(np.arange(96)), val)
    history = summary["history"]
    assert summary["stop_reason"] == "early_stopping"
    assert len(history) == summary["best_epoch"] + 2 < 8


def test_plateau_schedule_reduces_lr(parts, tmp_path):
    train, val = parts
    # This seed and learning rate overshoot in epoch 2 (validation loss 2.4 -> 4.0), so epoch 3 runs at half the rate.
    config = TrainConfig(
        **{**BASE, "lr": 0.03, "label_smoothing": 0.0, "class_balance": "none"},
        epochs=3,
        schedule="plateau",
        plateau_patience=0,
        plateau_factor=0.5,
        augment=False,
    )
    history = Trainer(config, tmp_path, log=quiet).fit(train.subset(np.arange(96)), val)["history"]
    lrs = [e["lr"] for e in history]
    # Replay torch's rule on the recorded validation losses: the same learning rates come out.
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.03)
    rule = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    expected = []
    for entry in history:
        expected.append(opt.param_groups[0]["lr"])
        rule.step(entry["val_loss"])
    assert lrs == pytest.approx(expected)
    assert min(lrs) < 0.03  # it did reduce


def test_two_phase_fine_tuning(parts, tmp_path):
    train, val = parts
    train = train.subset(np.arange(96))
    config = {**BASE, "freeze_epochs": 1, "unfreeze_layers": 2, "finetune_lr_factor": 0.1}
    trainer = Trainer(TrainConfig(**config, epochs=1), tmp_path, log=quiet)
    initial = copy.deepcopy(trainer.model.state_dict())
    names = [name for name, _ in layer_groups(trainer.model)]
    assert names == [
        "features.0.0",
        "features.0.1",
        "features.1.0",
        "features.1.1",
        "features.2.0",
        "features.2.1",
        "classifier.1",
        "classifier.2",
        "classifier.5",
    ]

    def changed() -> list[str]:
        state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
        return sorted({k.rsplit(".", 1)[0] for k in state if not torch.equal(state[k], initial[k])})

    trainer.fit(train, val)
    assert changed() == ["classifier.5"]  # phase 1: the head alone (frozen batch norms keep their statistics)
    logs: list[str] = []
    summary = Trainer(TrainConfig(**config, epochs=2), tmp_path, log=logs.append).fit(train, val, resume=True)
    assert changed() == ["classifier.1", "classifier.2", "classifier.5"]  # phase 2: + the top 2 layers
    assert [e["phase"] for e in summary["history"]] == [1, 2]
    assert summary["history"][1]["lr"] <= 3e-3 * 0.1
    assert any("phase 2" in line for line in logs)


def test_mobilenetv2_layers_for_fine_tuning():
    model = build_backbone("mobilenetv2")
    groups = layer_groups(model)
    names = [n for n, _ in groups]
    assert names[:2] == ["conv_stem", "bn1"] and names[-3:] == ["conv_head", "bn2", "classifier"] and len(names) == 22
    assert head_index(groups, model) == 21
    set_trainable(model, 1)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"classifier.weight", "classifier.bias"}
    frozen = set_trainable(model, 2, unfreeze_layers=3)
    trainable = {
        n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("blocks") else "")
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    assert trainable == {"blocks.6", "conv_head", "bn2", "classifier"} and len(frozen) == 18
    set_trainable(model, 2)
    assert all(p.requires_grad for p in model.parameters())


def test_efficientnet_layers_for_fine_tuning():
    """EfficientNet-Lite0 shares timm's EfficientNet layout with mobilenetv2: stem, 7 stages, head conv, classifier."""
    model = build_backbone("efficientnet")
    groups = layer_groups(model)
    names = [n for n, _ in groups]
    assert names[:2] == ["conv_stem", "bn1"] and names[-3:] == ["conv_head", "bn2", "classifier"]
    assert head_index(groups, model) == len(names) - 1
    set_trainable(model, 2, unfreeze_layers=3)
    trainable = {g for n, p in model.named_parameters() if p.requires_grad for g in names if n.startswith(g + ".")}
    assert names[-4] == "blocks.6.0" and trainable == {"blocks.6.0", "conv_head", "bn2", "classifier"}


def test_init_from_a_run_starts_from_its_weights_and_architecture(full_run, tmp_path):
    source_dir = full_run[0]
    source = EmotionRecognizer.from_pretrained(source_dir, detector=None)
    warm = Trainer(TrainConfig(backbone="cnn", init_from=str(source_dir)), tmp_path / "warm", log=quiet)
    assert warm.config.backbone_config == source.backbone_config  # no --config needed
    assert warm.preprocessor.to_dict() == source.preprocessor.to_dict()
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(warm.model.state_dict()[name], tensor), name
    cold = Trainer(TrainConfig(**BASE), tmp_path / "cold", log=quiet)
    assert not torch.equal(
        cold.model.state_dict()["features.0.0.weight"], source.model.state_dict()["features.0.0.weight"]
    )
    assert warm.config.to_dict()["init_from"] == str(source_dir)  # what train_config.json records


def test_init_from_refuses_what_does_not_fit(full_run, tmp_path):
    source_dir = str(full_run[0])
    with pytest.raises(IncompatibleComponentsError, match="holds a 'cnn' model, but this run trains 'resnet'"):
        Trainer(TrainConfig(backbone="resnet", init_from=source_dir), tmp_path, log=quiet)
    with pytest.raises(IncompatibleComponentsError, match="Leave --config/--preprocessing unset"):
        Trainer(TrainConfig(backbone="cnn", backbone_config={"widths": [8, 16, 64]}, init_from=source_dir), tmp_path)
    with pytest.raises(IncompatibleComponentsError, match="give one of them"):
        Trainer(TrainConfig(backbone="cnn", init="imagenet", init_from=source_dir), tmp_path, log=quiet)


def test_init_from_at_a_new_input_size(full_run, tmp_path):
    """A warm restart may change the input size alone, when no tensor's shape follows it (global pooling)."""
    from emotionkit.preprocessing import FacePreprocessor

    config = {"in_channels": 1, "image_size": 48, "widths": [8, 16], "blocks": [1, 1], "strides": [1, 2]}
    pre = FacePreprocessor.from_dict({"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]})
    source = EmotionRecognizer(
        build_backbone("resnet", config), pre, None, backbone_name="resnet", backbone_config=config
    )
    source_dir = source.save_pretrained(tmp_path / "source")
    bigger = {"size": 64, "channels": 1, "mean": [0.0], "std": [1.0]}
    warm = Trainer(TrainConfig(backbone="resnet", init_from=str(source_dir), preprocessing=bigger), tmp_path / "warm")
    assert warm.preprocessor.size == (64, 64) and warm._resized_from == [48, 48]
    assert warm.backbone_config == {**config, "image_size": 64}  # told the new size without --config
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(warm.model.state_dict()[name], tensor), name
    assert warm.model(warm.preprocessor.faces(np.zeros((2, 80, 80), np.uint8))).shape == (2, 7)
    with pytest.raises(IncompatibleComponentsError, match="Leave --config/--preprocessing unset"):  # size and more
        Trainer(
            TrainConfig(backbone="resnet", init_from=str(source_dir), preprocessing={**bigger, "mean": [0.5]}), tmp_path
        )
    # The CNN's dense layer follows the input size: refused with what to do, not a torch size-mismatch traceback.
    cnn_bigger = {"size": 64, "channels": 1, "mean": [0.0], "std": [1.0], "margin": 0.1}
    with pytest.raises(IncompatibleComponentsError, match="trained at 48x48 px.*keep the source's size"):
        Trainer(
            TrainConfig(
                backbone="cnn",
                init_from=str(full_run[0]),
                preprocessing=cnn_bigger,
            ),
            tmp_path / "cnn",
        )


def test_imagenet_init_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(MissingDependencyError, match="init='scratch'") as info:
        Trainer(TrainConfig(backbone="mobilenetv2", init="imagenet"), tmp_path, log=quiet)
    assert time.perf_counter() - start < 10
    assert isinstance(info.value, ImportError) and "Hugging Face Hub" in str(info.value)
    with pytest.raises(IncompatibleComponentsError, match="'cnn' has none. Use init='scratch'"):
        Trainer(TrainConfig(backbone="cnn", init="imagenet"), tmp_path, log=quiet)


@pytest.mark.parametrize("how", ["truncated", "empty", "foreign"])
def test_damaged_checkpoint_on_resume_is_a_clear_error(full_run, parts, tmp_path, how):
    from emotionkit.exceptions import InvalidWeightsError

    run = tmp_path / "run"
    shutil.copytree(full_run[0], run)
    ckpt = run / "checkpoint.pt"
    data = ckpt.read_bytes()
    if how == "truncated":
        ckpt.write_bytes(data[: len(data) // 3])
    elif how == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"epoch": 3}, ckpt)  # a loadable file, but not one of ours
    trainer = Trainer(TrainConfig(**BASE, epochs=3), run, log=quiet)
    with pytest.raises(InvalidWeightsError) as excinfo:
        trainer.fit(*parts, resume=True)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError) and str(ckpt) in message
    assert "truncated or not an emotionkit checkpoint" in message and "Delete it" in message and "\n" not in message
