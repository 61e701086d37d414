"""PNG plots of a run: loss and accuracy curves, confusion-matrix heatmap, per-class F1 bars.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so plotting never changes
the caller's backend and works without a display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import MissingDependencyError

__all__ = ["plot_history", "plot_confusion", "plot_f1", "plot_report"]


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError("Plots need matplotlib: pip install 'emotionkit[plots]'") from exc
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig: Any, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Plot training and validation loss and accuracy per epoch (``history.json`` entries).

    Parameters
    ----------
    history : sequence of dict
        One entry per epoch with ``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``.
    path : str or os.PathLike
        Output PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    fig, (ax_loss, ax_acc) = _figure(10, 4, ncols=2)
    from matplotlib.ticker import MaxNLocator

    epochs = [e["epoch"] for e in history]
    for ax, key, name in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [e.get(f"{split}_{key}") for e in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, markersize=3, label="training" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name.lower())
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(report: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Heatmap of the row-normalised confusion matrix, each cell annotated with its count.

    Parameters
    ----------
    report : dict
        An :func:`~emotionkit.training.evaluate.evaluate` report (``labels``, ``confusion``,
        ``confusion_normalized``).
    path : str or os.PathLike
        Output PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
    """
    labels = list(report["labels"])
    counts = np.asarray(report["confusion"])
    norm = np.asarray(report["confusion_normalized"], dtype=float)
    fig, ax = _figure(6.5, 5.5)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n{counts[i, j]}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_title(title or "Confusion matrix (rows: true class)")
    return _save(fig, path)


def plot_f1(report: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Bar chart of per-class F1, with the macro F1 as a line.

    Parameters
    ----------
    report : dict
        An :func:`~emotionkit.training.evaluate.evaluate` report (``per_class``, ``macro_f1``).
    path : str or os.PathLike
        Output PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
    """
    names = list(report["per_class"])
    f1 = [report["per_class"][n]["f1"] for n in names]
    fig, ax = _figure(7, 4)
    bars = ax.bar(names, f1, color="tab:blue")
    for bar, value in zip(bars, f1):
        ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(report["macro_f1"], color="tab:red", linestyle="--", label=f"macro F1 {report['macro_f1']:.3f}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title or "Per-class F1")
    ax.legend()
    return _save(fig, path)


def plot_report(
    report: Mapping[str, Any], out_dir: str | os.PathLike, *, history: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Path]:
    """Write ``confusion.png``, ``f1.png`` and (with a history) ``curves.png`` into ``out_dir``.

    Parameters
    ----------
    report : dict
        An :func:`~emotionkit.training.evaluate.evaluate` report.
    out_dir : str or os.PathLike
        Output folder (created).
    history : sequence of dict, optional
        ``history.json`` entries, for the training curves.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"confusion": ..., "f1": ..., "curves": ...}``.
    """
    out = Path(out_dir)
    name = report.get("model") or report.get("backbone") or "model"
    split = f" on {report['split']}" if report.get("split") else ""
    paths = {
        "confusion": plot_confusion(
            report, out / "confusion.png", title=f"{name}{split}: confusion (rows: true class)"
        ),
        "f1": plot_f1(report, out / "f1.png", title=f"{name}{split}: per-class F1"),
    }
    if history:
        paths["curves"] = plot_history(history, out / "curves.png", title=f"{name}: training curves")
    return paths
