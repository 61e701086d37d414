"""Training curves, confusion matrix and per-class F1 of a model, drawn by :mod:`emotionkit.training.plots`.

Writes ``training_curves.png`` (loss and accuracy per epoch, training and validation),
``confusion_matrix.png`` (row-normalised, with counts) and ``per_class_f1.png``.

Where the numbers come from, in order:

1. ``--run DIR``: a run directory written by ``emotionkit train`` (``report.json`` of its test
   part, ``history.json``);
2. the default bundled model's card: its PublicTest evaluation (confusion matrix, per-class
   F1) and, when the card has it, its training history;
3. otherwise (and for the curves when the card has no history) a tiny demonstration run
   trained here: a narrow cnn, 900 real FER-2013 Training faces, 4 epochs, evaluated on 300
   others (seconds; needs ``EMOTIONKIT_DATA``). Its figures say so, and its numbers are far
   below a real model's.

    python examples/training_report.py [--run runs/cnn] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emotionkit.training.plots import plot_confusion, plot_f1, plot_history

#: What :func:`~emotionkit.training.plots.plot_confusion` and ``plot_f1`` read from a report (and ``labels``).
REPORT_KEYS = ("confusion", "confusion_normalized", "per_class", "macro_f1")


def _find_report(node: Any) -> Mapping[str, Any] | None:
    """The first mapping inside a card (breadth first) that has every key of an evaluation report."""
    queue = [node]
    while queue:
        node = queue.pop(0)
        if isinstance(node, Mapping):
            if all(k in node for k in REPORT_KEYS):
                return node
            queue.extend(node.values())
    return None


def _find_history(node: Any) -> list[Mapping[str, Any]] | None:
    queue = [node]
    while queue:
        node = queue.pop(0)
        if isinstance(node, Mapping):
            history = node.get("history")
            if isinstance(history, list) and history and isinstance(history[0], Mapping) and "epoch" in history[0]:
                return history
            queue.extend(node.values())
    return None


def from_run(run: Path) -> dict[str, Any]:
    """Read the test report and history of a run directory written by ``emotionkit train``."""
    report = json.loads((run / "report.json").read_text())
    history = json.loads((run / "history.json").read_text())
    return {"report": report, "history": history, "source": f"run {run.name}, {report.get('split') or 'test'} split"}


def from_bundled_card() -> dict[str, Any] | None:
    """Read the default bundled model's card: its test report, and its history when it has one."""
    from emotionkit.recognizer import DEFAULT_MODEL, bundled_models

    spec = bundled_models().get(DEFAULT_MODEL)
    if spec is None:
        return None
    card = spec.card()
    report = card.get("publictest") if isinstance(card.get("publictest"), Mapping) else _find_report(card)
    if report is None:
        return None
    report = {"labels": card.get("labels") or list(spec.config().get("labels", [])), **report}
    split = report.get("split") or "PublicTest"
    source = f"bundled model {DEFAULT_MODEL!r}, FER-2013 {split}, one crop (its card)"
    return {"report": report, "history": _find_history(card), "source": source}


def tiny_run(workdir: Path) -> dict[str, Any]:
    """Train a narrow cnn for 4 epochs on 900 FER-2013 Training faces; evaluate it on 300 others."""
    from emotionkit import EmotionRecognizer
    from emotionkit.data.fer2013 import read_fer2013
    from emotionkit.data.splits import stratified_split
    from emotionkit.training.evaluate import evaluate
    from emotionkit.training.trainer import TrainConfig, Trainer

    data = read_fer2013(usage="Training", limit=1200)
    train_idx, val_idx = stratified_split(data.labels, (0.75, 0.25), seed=0)
    small = {"widths": [16, 32, 64], "hidden": 128}  # a quarter of the seed's width: seconds, not minutes
    config = TrainConfig(
        backbone="cnn",
        backbone_config=small,
        epochs=4,
        batch_size=64,
        lr=3e-3,
        warmup_epochs=0.5,
        seed=0,
        tta_flip=False,
    )
    summary = Trainer(config, workdir, log=lambda msg: None).fit(data.subset(train_idx), data.subset(val_idx))
    model = EmotionRecognizer.from_pretrained(workdir, detector=None)
    report = evaluate(model, data.subset(val_idx), split="validation", model="tiny demo cnn")
    source = (
        "tiny demo run: narrow cnn, 900 FER-2013 Training faces, 4 epochs, 300 held-out faces (not a bundled model)"
    )
    return {"report": report, "history": summary["history"], "source": source}


def placeholders(out: Path, message: str) -> list[Path]:
    """Write the three figures as notes saying why they could not be drawn."""
    from PIL import Image, ImageDraw

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "training_curves.png", out / "confusion_matrix.png", out / "per_class_f1.png"]
    for path in paths:
        note = Image.new("RGB", (900, 60), (255, 255, 255))
        ImageDraw.Draw(note).text((8, 8), message[:400], fill=(0, 0, 0))
        note.save(path)
        print(path)
    print(message)
    return paths


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a run directory written by `emotionkit train`")
    parser.add_argument("--out", default=".", help="output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            found = from_run(Path(args.run)) if args.run else (from_bundled_card() or tiny_run(Path(tmp)))
            curves = found if found["history"] else tiny_run(Path(tmp) / "curves")
    except FileNotFoundError as exc:  # no run, no card, and no FER-2013 for the demo run
        return placeholders(out, f"Not drawn: {exc}")
    source, report = found["source"], found["report"]
    accuracy = f", accuracy {100 * float(report['accuracy']):.1f}%" if report.get("accuracy") is not None else ""
    paths = [
        plot_history(curves["history"], out / "training_curves.png", title=curves["source"]),
        plot_confusion(report, out / "confusion_matrix.png", title=f"{source}{accuracy}"),
        plot_f1(report, out / "per_class_f1.png", title=f"Per-class F1: {source}"),
    ]
    for path in paths:
        print(path)
    print(f"{source}; {time.perf_counter() - start:.1f} s")
    return paths


if __name__ == "__main__":
    main()
