"""Training curves, confusion matrix and per-class F1 of a model, as PNG figures.

Writes ``training_curves.png`` (loss and accuracy per epoch, training and validation)
and ``confusion_matrix.png`` (row-normalised confusion matrix with counts, and per-class F1).

Where the numbers come from, in order:

1. ``--run DIR``: a run directory written by ``emotionkit train`` (``history.json``, ``summary.json``);
2. the default bundled model's card, when it carries a confusion matrix and a history;
3. otherwise a tiny demonstration run trained here: a narrow cnn, 900 real FER-2013 Training
   faces, 4 epochs (a few seconds; needs ``EMOTIONKIT_DATA``); its figures say so, and its
   numbers are far below a real model's.

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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _find(card: Mapping[str, Any], key: str) -> Any:
    """Return the first value stored under ``key`` anywhere in a nested card (breadth first), or ``None``."""
    queue: list[Any] = [card]
    while queue:
        node = queue.pop(0)
        if isinstance(node, Mapping):
            if key in node:
                return node[key]
            queue.extend(node.values())
    return None


def from_run(run: Path) -> dict[str, Any]:
    """Read a run directory written by ``emotionkit train``."""
    summary = json.loads((run / "summary.json").read_text())
    history = json.loads((run / "history.json").read_text())
    return {"history": history, "metrics": summary["val"], "source": f"run {run} (validation split)"}


def from_bundled_card() -> dict[str, Any] | None:
    """Read the default bundled model's card, when it has both a confusion matrix and a history."""
    from emotionkit.recognizer import DEFAULT_MODEL, bundled_models

    spec = bundled_models().get(DEFAULT_MODEL)
    if spec is None:
        return None
    card = spec.card()
    confusion, history = _find(card, "confusion"), _find(card, "history")
    if confusion is None or not history:
        return None
    metrics = {"confusion": confusion, "per_class": _find(card, "per_class") or {}, "accuracy": _find(card, "accuracy")}
    return {"history": history, "metrics": metrics, "source": f"bundled model {DEFAULT_MODEL!r} (its card)"}


def tiny_run(workdir: Path) -> dict[str, Any]:
    """Train a narrow cnn for 4 epochs on 900 FER-2013 Training faces; validate on 300 others."""
    from emotionkit.data.fer2013 import read_fer2013
    from emotionkit.data.splits import stratified_split
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
    return {
        "history": summary["history"],
        "metrics": summary["val"],
        "source": "tiny demo run: narrow cnn, 900 FER-2013 Training faces, 4 epochs (not a bundled model)",
    }


def plot_curves(history: list[Mapping[str, Any]], source: str, path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("train_loss", "training"), ("val_loss", "validation")):
        if key in history[0]:
            ax_loss.plot(epochs, [h[key] for h in history], marker="o", label=label)
    for key, label in (("train_accuracy", "training"), ("val_accuracy", "validation")):
        if key in history[0]:
            ax_acc.plot(epochs, [h[key] for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(source, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_confusion(metrics: Mapping[str, Any], classes: tuple[str, ...], source: str, path: Path) -> None:
    counts = np.asarray(metrics["confusion"], dtype=float)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    per_class = metrics.get("per_class") or {}
    fig, (ax_cm, ax_f1) = plt.subplots(1, 2, figsize=(10, 4.3), gridspec_kw={"width_ratios": [1.3, 1]})
    image = ax_cm.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            color = "white" if norm[i, j] > 0.5 else "black"
            ax_cm.text(
                j, i, f"{norm[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=6.5, color=color
            )
    ax_cm.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax_cm.set_yticks(range(len(classes)), classes)
    ax_cm.set(xlabel="predicted", ylabel="true", title="confusion matrix (rows sum to 1)")
    fig.colorbar(image, ax=ax_cm, fraction=0.046)
    if per_class:
        f1 = [float(per_class.get(c, {}).get("f1", 0.0)) for c in classes]
        ax_f1.barh(classes, f1, color="#3f51b5")
        ax_f1.invert_yaxis()
        ax_f1.set_xlim(0, 1)
        ax_f1.set(xlabel="F1", title="per-class F1")
        ax_f1.grid(axis="x", alpha=0.3)
    else:
        ax_f1.set_axis_off()
    accuracy = metrics.get("accuracy")
    fig.suptitle(source + (f": accuracy {100 * float(accuracy):.1f}%" if accuracy is not None else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a run directory written by `emotionkit train`")
    parser.add_argument("--out", default=".", help="output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    from emotionkit import EMOTIONS

    with tempfile.TemporaryDirectory() as tmp:
        report = from_run(Path(args.run)) if args.run else (from_bundled_card() or tiny_run(Path(tmp)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "training_curves.png", out / "confusion_matrix.png"]
    plot_curves(report["history"], report["source"], paths[0])
    plot_confusion(report["metrics"], EMOTIONS, report["source"], paths[1])
    for path in paths:
        print(path)
    print(f"{report['source']}; {time.perf_counter() - start:.1f} s")
    return paths


if __name__ == "__main__":
    main()
