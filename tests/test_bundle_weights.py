"""``tools/bundle_weights.py``: how a card names the teachers of a distilled model.

Real parts: the bundled ``resnet``'s files as a run folder's weights, and its real sha256.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emotionkit.recognizer import bundled_models
from emotionkit.weights import sha256sum


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A finished training run's folder: the bundled resnet's weights and a validation accuracy."""
    run = tmp_path / "mnv2_fp"
    shutil.copytree(bundled_models()["resnet"].path, run)
    (run / "summary.json").write_text(json.dumps({"val": {"accuracy": 0.6949}, "best_epoch": 15}))
    return run


def test_a_run_teacher_is_recorded_with_its_weights_accuracy_and_command(run_folder, repo_script):
    tool = repo_script("tools/bundle_weights.py")
    command = "emotionkit train --backbone mobilenetv2 --init-from mobilenetv2 --soft-targets ferplus"
    runs = tool._teacher_runs(["cnn", str(run_folder)], [f"{run_folder}={command}"])
    assert list(runs) == [str(run_folder)]  # the bundled cnn is not a run
    assert runs[str(run_folder)] == {
        "name": "mnv2_fp",
        "sha256": sha256sum(run_folder / "model.safetensors"),
        "validation_accuracy": 0.6949,
        "command": command,
    }

    training = {
        "config": {"distill_from": f"cnn,{run_folder}", "distill_alpha": 0.7, "distill_temperature": 3.0},
        "teacher_sha256": {"cnn": "a" * 64, str(run_folder): runs[str(run_folder)]["sha256"]},
        "teacher_runs": runs,
    }
    (line,) = tool._distill_line(training, init=None)
    assert "the bundled `cnn` (weights sha256 aaaaaaaaaaaa...)" in line
    assert f"the run `mnv2_fp` (not bundled; weights sha256 {runs[str(run_folder)]['sha256'][:12]}..." in line
    assert "validation accuracy 0.6949" in line and f"made by `{command}`" in line
    assert str(run_folder) not in line  # a machine's path is no use on the card


def test_a_run_teacher_without_its_command_is_refused(run_folder, repo_script):
    tool = repo_script("tools/bundle_weights.py")
    with pytest.raises(SystemExit, match="--teacher-run"):
        tool._teacher_runs(["cnn", str(run_folder)], [])
    with pytest.raises(SystemExit, match="DIR=COMMAND"):
        tool._teacher_runs([str(run_folder)], [str(run_folder)])


def test_a_warm_restart_lists_every_earlier_command_oldest_first(repo_script):
    tool = repo_script("tools/bundle_weights.py")
    first = {"training": {"command": "emotionkit train --init start.safetensors --out runs/a"}}
    second = {
        "sha256": "b" * 64,
        "training": {"command": "emotionkit train --init-from m --out runs/b", "previous": first},
        "batchnorm_command": "emotionkit train --init-from runs/b --epochs 0 --out runs/bbn",
    }
    assert tool._stage_commands(second) == [
        "emotionkit train --init start.safetensors --out runs/a",
        "emotionkit train --init-from m --out runs/b",
        "emotionkit train --init-from runs/b --epochs 0 --out runs/bbn",
    ]
    (line,) = tool._previous_lines("m", {**second, "publictest_accuracy": 0.61})
    assert line.index("runs/a`") < line.index("runs/b`") < line.index("runs/bbn`")


def test_card_says_whether_the_fitted_temperature_was_kept(repo_script):
    bundle = repo_script("tools/bundle_weights.py")
    kept = {"temperature": 0.8, "fitted_temperature": 0.8, "kept": True, "ece_before": 0.09, "ece_after": 0.03}
    assert bundle._calibration_line(kept) == (
        "- Calibration: temperature 0.800 fitted on the validation split; validation ECE 0.0900 before, 0.0300 after."
    )
    older = {k: v for k, v in kept.items() if k not in ("fitted_temperature", "kept")}  # cards before the rule
    assert bundle._calibration_line(older) == bundle._calibration_line(kept)
    dropped = {
        "temperature": 1.0,
        "fitted_temperature": 0.871,
        "kept": False,
        "ece_before": 0.0382,
        "ece_after": 0.0441,
    }
    line = bundle._calibration_line(dropped)
    assert "(0.871, least NLL) raised its ECE from 0.0382 to 0.0441, so it was not kept: temperature 1." in line


def test_card_says_whether_the_model_predicts_with_its_mirror_image_and_why(repo_script):
    bundle = repo_script("tools/bundle_weights.py")
    bundled = json.loads((bundle.ASSETS / "cnn" / "card.json").read_text())
    card = {k: v for k, v in bundled.items() if k not in ("flip_tta", "flip_tta_choice")}  # a card from before
    assert bundle._flip_lines(card) == bundle._flip_lines({**card, "flip_tta": False}) == []  # nothing to say
    choice = {
        "val_macro_f1_one_crop": 0.6365,
        "val_accuracy_one_crop": 0.6764,
        "val_macro_f1_flip": 0.6391,
        "val_accuracy_flip": 0.6792,
        "kept": True,
    }
    training = {**card["training"], "finish_command": "emotionkit train --init-from cnn --epochs 0 --predict-flip auto"}
    flipped = {**card, "training": training, "flip_tta": True, "flip_tta_choice": choice}
    (line,) = bundle._flip_lines(flipped)
    assert line.startswith("- Predicts with horizontal-flip test-time augmentation")
    assert "macro F1 0.6365 -> 0.6391, accuracy 0.6764 -> 0.6792" in line and "--predict-flip auto`." in line
    (line,) = bundle._flip_lines({**flipped, "flip_tta": False, "flip_tta_choice": {**choice, "kept": False}})
    assert line.startswith("- Predicts on one crop per face: flip test-time augmentation did not raise")
    # The per-class F1 and the confusion matrix are those of the protocol the model predicts with.
    tta = card["publictest_flip_tta"]
    text = bundle.card_markdown("cnn", flipped)
    assert "| horizontal-flip TTA (as it predicts) |" in text and "| one crop |" in text
    assert (
        "Per-class F1 (horizontal-flip TTA): " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in tta["per_class"].items())
        in text
    )
    assert " ".join(f"{v:4d}" for v in tta["confusion"][0]) in text
    plain = bundle.card_markdown("cnn", {**card, "flip_tta": False})
    assert "| one crop (as it predicts) |" in plain and "Per-class F1 (one crop): " in plain


def test_card_of_a_model_with_a_ferplus_head_scores_both_heads_on_ferplus_labels(repo_script):
    bundle = repo_script("tools/bundle_weights.py")
    card = json.loads((bundle.ASSETS / "cnn" / "card.json").read_text())
    assert bundle._head_lines("cnn", card) == []  # one head: nothing to say
    fp = card["publictest_ferplus"]
    own = {**fp, "accuracy": 0.6512}
    headed = {
        **card,
        "training": {**card["training"], "config": {**card["training"]["config"], "ferplus_head": 1.0}},
        "heads": {"ferplus": {"labels": card["labels"], "temperature": 1.0}},
        "publictest_ferplus": {**fp, "head": "ferplus"},
        "publictest_ferplus_own_labels": own,
        "validation_ferplus_head": {"n": 2500, "accuracy": 0.8123, "macro_f1": 0.6011},
    }
    (line,) = bundle._head_lines("cnn", headed)
    assert "(loss weight 1.0; `--ferplus-head 1.0`)" in line and 'from_pretrained("cnn", head="ferplus")' in line
    assert "(n=2500): accuracy 0.8123, macro F1 0.6011." in line
    probed = {
        **headed,
        "heads_fit": {"ferplus": {"faces": 25698, "method": "linear probe on frozen features", "steps": 300}},
        "heads_calibration": {
            "ferplus": {"split": "validation", "temperature": 1.0, "fitted_temperature": 1.02, "kept": False}
        },
    }
    (line,) = bundle._head_lines("cnn", probed)
    assert "vote distributions of 25,698 training faces on this network's frozen features" in line
    assert (
        "Its temperature 1.000 (fitted 1.020 on the validation votes, not kept: it raised the validation ECE)." in line
    )
    text = bundle.card_markdown("cnn", headed)
    assert f"FER+ majority labels, FER+ head | {fp['n']} | {fp['accuracy']:.4f} |" in text
    assert f"FER+ majority labels, FER-2013 head | {fp['n']} | 0.6512 |" in text
    assert "FER-2013 head |" not in bundle.card_markdown("cnn", card)


def test_card_says_whether_the_weights_are_their_moving_average(repo_script):
    """The record is what ``Trainer`` writes into ``meta["training"]["weight_average"]`` (tests/test_weight_average.py)."""
    bundle = repo_script("tools/bundle_weights.py")
    assert bundle._average_line({"config": {}}) == []  # a run without an average: no line
    assert bundle._average_line({"weight_average": {"decay": 0.999, "best_is": "average"}}) == [
        "- Exponential moving average of the weights during training (`--ema-decay 0.999`, "
        "`emotionkit.training.weight_average`); the best epoch's model is the average's weights (they scored higher "
        "on validation than the epoch's own)."
    ]
    line = bundle._average_line({"weight_average": {"decay": 0.99, "best_is": "weights"}})[0]
    assert "`--ema-decay 0.99`" in line and "the epoch's own weights (they scored higher" in line


def test_training_time_of_a_warm_restart_counts_the_previous_model_and_every_own_stage(repo_script):
    bundle = repo_script("tools/bundle_weights.py")
    previous = {"seconds": 600.0, "total_seconds": 22062.0}
    assert bundle._total_seconds({"seconds": 5982.0}, previous) == 22062.0 + 5982.0
    # With a first stage of its own (--first-stage): that stage's time too.
    assert bundle._total_seconds({"seconds": 5982.0, "total_seconds": 5675.3 + 5982.0}, previous) == pytest.approx(
        22062.0 + 5675.3 + 5982.0
    )
    assert bundle._total_seconds({"seconds": 60.0}, {"seconds": 120.0}) == 180.0  # an older card without a total
