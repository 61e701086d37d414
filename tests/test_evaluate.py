"""Evaluation, reports, plots, run comparison and the train / evaluate / compare commands, on real FER-2013 faces."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from emotionkit import EmotionRecognizer
from emotionkit.cli import main
from emotionkit.data.fer2013 import FaceDataset
from emotionkit.data.loading import load_splits
from emotionkit.exceptions import IncompatibleComponentsError, InvalidDataError
from emotionkit.training.evaluate import evaluate, predict_dataset
from emotionkit.training.metrics import classification_metrics, expected_calibration_error
from emotionkit.training.reports import compare_runs, comparison_markdown, write_comparison, write_report
from emotionkit.types import EMOTIONS

SMALL = {"widths": [8, 16, 32], "hidden": 64}


# ------------------------------------------------------------------------------------------ metrics
def _reference_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # bin i holds (i/bins, (i+1)/bins]
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() / len(labels) * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    return total


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 120), seed=st.integers(0, 2**16), sharp=st.floats(0.1, 10.0))
def test_metrics_equal_scikit_learn(n, seed, sharp):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7)) * sharp
    logits[np.arange(n), labels] += rng.random(n) * sharp  # better than chance, like a real model
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = classification_metrics(labels, probs, EMOTIONS)
    idx = list(range(7))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=idx, zero_division=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, labels=idx, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(f1_score(labels, pred, labels=idx, average="weighted", zero_division=0))
    assert m["confusion"] == confusion_matrix(labels, pred, labels=idx).tolist()
    for i, name in enumerate(EMOTIONS):
        got = m["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert m["accuracy"] == pytest.approx(np.trace(m["confusion"]) / n)
    rows = np.asarray(m["confusion_normalized"]).sum(1)
    assert np.allclose(rows[s > 0], 1.0, atol=1e-3) and np.all(rows[s == 0] == 0)
    assert m["ece"] == pytest.approx(_reference_ece(probs, labels), abs=1e-9)
    assert m["ece"] == pytest.approx(expected_calibration_error(probs, labels))


# ------------------------------------------------------------------------------------------ evaluate
@pytest.fixture(scope="module")
def faces(fer_train_small) -> FaceDataset:
    return fer_train_small.subset(np.arange(200))


@pytest.fixture(scope="module")
def untrained(model_dir) -> EmotionRecognizer:
    return EmotionRecognizer.from_pretrained(model_dir, detector=None)


def test_report_fields_are_consistent(untrained, faces):
    report = evaluate(untrained, faces, split="Training[:200]", model="untrained")
    cm = np.asarray(report["confusion"])
    assert report["n"] == 200 == cm.sum()
    assert report["accuracy"] == pytest.approx(np.trace(cm) / report["n"])
    assert (
        [report["per_class"][c]["support"] for c in EMOTIONS]
        == cm.sum(1).tolist()
        == list(faces.class_counts().values())
    )
    assert report["macro_f1"] == pytest.approx(np.mean([report["per_class"][c]["f1"] for c in EMOTIONS]))
    assert 0.0 <= report["ece"] <= 1.0 and report["labels"] == list(EMOTIONS)
    assert report["num_params"] == sum(p.numel() for p in untrained.model.parameters())
    probs = untrained.predict_proba(faces.images)
    assert report["accuracy"] == pytest.approx((probs.argmax(1) == faces.labels).mean())


def test_flip_tta_is_mirror_symmetric(untrained, faces):
    mirrored = FaceDataset(faces.images[:, :, ::-1].copy(), faces.labels)
    a = predict_dataset(untrained, faces, tta_flip=True)
    b = predict_dataset(untrained, mirrored, tta_flip=True)
    np.testing.assert_allclose(a, b, atol=1e-4)
    plain = predict_dataset(untrained, faces)
    assert not np.allclose(a, plain, atol=1e-4)
    report = evaluate(untrained, faces, tta_flip=True)
    assert report["tta_flip"] is True and report["accuracy"] == pytest.approx((a.argmax(1) == faces.labels).mean())


def test_a_flip_model_is_scored_as_it_predicts_unless_told(untrained, faces):
    """``tta_flip=None`` scores a model as it predicts (``flip_tta``); ``True``/``False`` force either, and the
    report says which was scored."""
    untrained.flip_tta = True
    try:
        own = evaluate(untrained, faces)
        one = evaluate(untrained, faces, tta_flip=False)
        np.testing.assert_allclose(predict_dataset(untrained, faces), predict_dataset(untrained, faces, tta_flip=True))
    finally:
        untrained.flip_tta = False
    assert own["tta_flip"] is True and one["tta_flip"] is False
    assert own["confusion"] == evaluate(untrained, faces, tta_flip=True)["confusion"]
    assert one["confusion"] == evaluate(untrained, faces)["confusion"]
    assert own["ece_uncalibrated"] != pytest.approx(one["ece_uncalibrated"])


def test_labels_are_matched_by_name(untrained, faces):
    order = list(reversed(EMOTIONS))
    relabelled = FaceDataset(faces.images, np.asarray([order.index(EMOTIONS[y]) for y in faces.labels]), tuple(order))
    assert evaluate(untrained, relabelled)["confusion"] == evaluate(untrained, faces)["confusion"]
    with pytest.raises(IncompatibleComponentsError, match="contempt"):
        evaluate(untrained, FaceDataset(faces.images[:2], np.array([0, 1]), ("happy", "contempt")))


def test_report_files_and_plots(untrained, faces, tmp_path):
    report = evaluate(untrained, faces, split="Training[:200]", model="untrained")
    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 1.9, "train_accuracy": 0.2, "val_accuracy": 0.25},
        {"epoch": 2, "train_loss": 1.7, "val_loss": 1.8, "train_accuracy": 0.3, "val_accuracy": 0.3},
    ]
    paths = write_report(report, tmp_path, history=history)
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(report))
    md = paths["markdown"].read_text()
    assert f"| accuracy | {report['accuracy']:.4f} |" in md and "## Confusion matrix (counts" in md
    assert sum(line.startswith("| disgust |") for line in md.splitlines()) == 3  # per-class table, both confusions
    for key, size in (("confusion", (650, 550)), ("f1", (700, 400)), ("curves", (1000, 400))):
        with Image.open(paths[key]) as im:
            assert im.format == "PNG" and im.size == size


def test_compare_runs(model_dir, untrained, faces, tmp_path):
    tested = tmp_path / "tested"
    shutil.copytree(model_dir, tested)
    write_report(evaluate(untrained, faces, split="PublicTest"), tested, plots=False)
    validated = tmp_path / "validated"
    shutil.copytree(model_dir, validated)
    summary_val = evaluate(untrained, faces.subset(np.arange(100)))
    (validated / "summary.json").write_text(json.dumps({"val": summary_val}))
    comparison = compare_runs([tested, validated], batch_size=16)
    first, second = comparison["rows"]
    assert (first["split"], second["split"]) == ("PublicTest", "validation")
    per = json.loads((tested / "report.json").read_text())["per_class"]
    assert first["best_class_f1"] == max(v["f1"] for v in per.values()) and first["worst_class_f1"] == min(
        v["f1"] for v in per.values()
    )
    assert first["num_params"] == json.loads((tested / "config.json").read_text())["num_params"]
    assert first["faces_per_second"] > 0 and comparison["batch_size"] == 16
    table = comparison_markdown(comparison).splitlines()
    assert len(table) == 4 and table[2].startswith("| tested | cnn | PublicTest |")
    paths = write_comparison(comparison, tmp_path / "cmp")
    assert json.loads(paths["json"].read_text())["rows"][1]["run"] == "validated"
    with pytest.raises(InvalidDataError, match="not a finished run directory"):
        compare_runs([tmp_path / "cmp"], speed=False)


# ------------------------------------------------------------------------------------------ commands
@pytest.fixture(scope="module")
def small_csv(fer_train_small, tmp_path_factory) -> Path:
    """Real faces in the CSV format: 300 Training rows and 101 PublicTest rows, one an exact copy of a Training face."""
    rows = ["emotion,pixels,Usage"]
    data = fer_train_small
    for i in range(401):
        j = i if i < 400 else 0
        rows.append(
            f"{data.labels[j]},{' '.join(map(str, data.images[j].ravel()))},{'Training' if i < 300 else 'PublicTest'}"
        )
    path = tmp_path_factory.mktemp("csv") / "small.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def cli_run(small_csv, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    args = ["train", "--data", str(small_csv), "--out", str(run), "--epochs", "1", "--batch-size", "32"]
    args += ["--config", json.dumps(SMALL), "--drop-duplicates", "--augment-copies", "1", "--tta", "--no-progress"]
    assert main(args) == 0
    return run


def test_train_command_writes_a_complete_run(cli_run, capsys):
    for name in (
        "config.json",
        "model.safetensors",
        "history.json",
        "checkpoint.pt",
        "data.json",
        "data.md",
        "report.json",
        "report.md",
        "confusion.png",
        "f1.png",
        "curves.png",
    ):
        assert (cli_run / name).is_file(), name
    data = json.loads((cli_run / "data.json").read_text())
    sizes = data["sizes"]
    assert sizes["train"] + sizes["val"] == 300 and 28 <= sizes["val"] <= 32  # 10% of Training held out, per class
    assert sizes["test"] == 100  # 101 PublicTest rows, the exact copy of a training face dropped
    assert data["duplicates"] == {"val_in_train": 0, "dropped": True, "test_in_train": 1, "test_groups": 1}
    total = f"| **total** | **{sizes['train']}** | 100.0 | **{sizes['val']}** | 100.0 | **100** | 100.0 |"
    assert total in (cli_run / "data.md").read_text()
    report = json.loads((cli_run / "report.json").read_text())
    assert report["split"] == "PublicTest" and report["n"] == 100 and report["tta_flip"] is True
    assert report["duplicates"] == {"found": 1, "groups": 1, "dropped": True}
    assert json.loads((cli_run / "train_config.json").read_text())["augment_copies"] == 1
    rec = EmotionRecognizer.from_pretrained(cli_run, detector=None)  # a finished run loads like a bundled model
    assert rec.backbone_config["widths"] == [8, 16, 32]


def test_evaluate_command(cli_run, small_csv, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(cli_run), "--data", str(small_csv), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        printed["split"] == "PublicTest"
        and printed["n"] == 101
        and printed["duplicates"] == {"found": 1, "dropped": False}
    )
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(np.trace(report["confusion"]) / 101)
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "confusion.png", "f1.png", "curves.png"}
    assert (
        main(
            [
                "evaluate",
                str(cli_run),
                "--data",
                str(small_csv),
                "--out",
                str(out),
                "--drop-duplicates",
                "--tta",
                "--no-plots",
            ]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["n"] == 100
    assert main(["evaluate", str(cli_run), "--data", str(small_csv), "--split", "Nope"]) == 2
    assert "Unknown usage ['Nope']" in capsys.readouterr().err


def test_evaluate_rebuilds_a_stratified_test_part(model_dir, fer_train_small, tmp_path, capsys):
    tree = tmp_path / "tree"
    for i, (face, label) in enumerate(zip(fer_train_small.images[:300], fer_train_small.labels[:300])):
        (tree / EMOTIONS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(tree / EMOTIONS[label] / f"{i:03d}.png")
    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    splits = load_splits(tree, "stratified", seed=4)
    (run / "data.json").write_text(json.dumps({**splits.to_dict(), "folder_options": {}}))
    assert main(["evaluate", str(run), "--no-plots"]) == 0  # data, split and seed come from data.json
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == len(splits.test) and report["split"] == "test part of the stratified split (seed 4)"
    assert report["per_class"]["disgust"]["support"] == 1


def test_compare_command(cli_run, tmp_path, capsys):
    assert main(["compare", str(cli_run), str(cli_run), "--out", str(tmp_path), "--batch-size", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| run | cnn | PublicTest +flip |")
    assert (tmp_path / "comparison.md").is_file() and len(
        json.loads((tmp_path / "comparison.json").read_text())["rows"]
    ) == 2


def test_split_seed_keeps_validation_and_warm_restart_refuses_another_split(cli_run, small_csv, tmp_path, capsys):
    """--seed alone no longer moves the validation split when --split-seed pins it; a warm restart
    or teacher trained on another split (which saw this run's validation faces) is refused."""
    base = ["train", "--data", str(small_csv), "--epochs", "1", "--batch-size", "32", "--no-progress", "--no-report"]
    base += ["--config", json.dumps(SMALL), "--drop-duplicates"]
    assert main([*base, "--out", str(tmp_path / "seed1"), "--seed", "1", "--split-seed", "0"]) == 0
    ours = json.loads((tmp_path / "seed1" / "data.json").read_text())
    theirs = json.loads((cli_run / "data.json").read_text())
    assert ours["settings"]["seed"] == theirs["settings"]["seed"] == 0 and ours["sizes"] == theirs["sizes"]
    assert json.loads((tmp_path / "seed1" / "train_config.json").read_text())["seed"] == 1
    capsys.readouterr()
    for option in ("--init-from", "--distill-from"):
        assert main([*base, "--out", str(tmp_path / "leak"), "--seed", "1", option, str(cli_run)]) == 2
        error = capsys.readouterr().err
        assert "--split-seed 1" in error and "validation faces" in error
        assert error.strip().endswith(
            "Pass --split official --split-seed 0 --val-fraction 0.1 (--seed can still differ)."
        )
    assert not (tmp_path / "leak").exists()  # refused before anything was written
    assert (
        main([*base, "--out", str(tmp_path / "warm"), "--seed", "1", "--split-seed", "0", "--init-from", str(cli_run)])
        == 0
    )


def _train_args(small_csv, out, *extra):
    return ["train", "--data", str(small_csv), "--out", str(out), "--epochs", "1", "--batch-size", "32",
            "--config", json.dumps(SMALL), "--drop-duplicates", "--augment-copies", "1", "--tta", "--no-progress",
            *extra]  # fmt: skip


def test_train_refuses_to_overwrite_a_run_without_overwrite(cli_run, small_csv, tmp_path, capsys):
    run = shutil.copytree(cli_run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(_train_args(small_csv, run, "--seed", "3")) == 2
    error = capsys.readouterr().err
    assert (
        "already holds a run (config.json, checkpoint.pt)" in error and "--resume" in error and "--overwrite" in error
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched
    assert main(_train_args(small_csv, run, "--resume", "--overwrite")) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(_train_args(small_csv, run, "--seed", "3", "--overwrite", "--no-report")) == 0
    assert json.loads((run / "train_config.json").read_text())["seed"] == 3
    assert not (run / "report.json").exists()  # the old run's report is not left beside the new model


@pytest.mark.parametrize(
    ("change", "key"),
    [(["--limit", "250"], "limit: None -> 250"), (["--val-fraction", "0.2"], "val_fraction: 0.1 -> 0.2")],
)
def test_resume_with_changed_data_options_is_refused(cli_run, small_csv, tmp_path, capsys, change, key):
    run = shutil.copytree(cli_run, tmp_path / "run")
    before = (run / "data.json").read_text()
    capsys.readouterr()
    assert main(_train_args(small_csv, run, "--resume", "--epochs", "2", *change)) == 2
    error = capsys.readouterr().err
    assert "Cannot resume" in error and "on other data than it was started with" in error
    assert key in error
    assert (run / "data.json").read_text() == before
    # The same data options resume (nothing left to train at --epochs 1).
    assert main(_train_args(small_csv, run, "--resume", "--no-report")) == 0
