"""Reports as JSON and Markdown: one evaluation, class distributions per split, and a comparison of runs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InvalidDataError

__all__ = [
    "report_markdown",
    "write_report",
    "distribution_markdown",
    "inference_speed",
    "compare_runs",
    "comparison_markdown",
    "write_comparison",
]

REPORT_JSON, REPORT_MD = "report.json", "report.md"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(report: Mapping[str, Any]) -> str:
    """Render an :func:`~emotionkit.training.evaluate.evaluate` report as Markdown.

    Parameters
    ----------
    report : dict
        What :func:`~emotionkit.training.evaluate.evaluate` returns.

    Returns
    -------
    str
        Headline metrics, the per-class table and the confusion matrix.

    Examples
    --------
    >>> report = {"labels": ["a", "b"], "n": 2, "accuracy": 0.5, "macro_f1": 0.33, "weighted_f1": 0.33,
    ...           "ece": 0.1, "per_class": {"a": {"precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1},
    ...           "b": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}},
    ...           "confusion": [[1, 0], [1, 0]], "confusion_normalized": [[1.0, 0.0], [1.0, 0.0]]}
    >>> print(report_markdown(report).splitlines()[0])
    # Evaluation of model
    """
    labels = list(report["labels"])
    title = report.get("model") or report.get("backbone") or "model"
    lines = [f"# Evaluation of {title}", ""]
    facts = [
        ("data", report.get("data")),
        ("split", report.get("split")),
        ("faces", report["n"]),
        ("flip test-time augmentation", "yes" if report.get("tta_flip") else "no"),
        ("temperature", f"{report['temperature']:.3f}" if report.get("temperature") is not None else None),
        ("backbone", report.get("backbone")),
        ("parameters", f"{report['num_params']:,}" if report.get("num_params") else None),
    ]
    duplicates = report.get("duplicates")
    if duplicates:
        facts.append(("exact duplicates of training images", _duplicates_text(duplicates)))
    lines += [f"- {k}: {v}" for k, v in facts if v is not None]
    lines += ["", "## Summary", ""]
    summary = [
        ("accuracy", f"{report['accuracy']:.4f}"),
        ("macro F1", f"{report['macro_f1']:.4f}"),
        ("weighted F1", f"{report['weighted_f1']:.4f}"),
        ("expected calibration error", f"{report['ece']:.4f}"),
    ]
    if report.get("ece_uncalibrated") is not None:
        summary.append(("ECE before temperature scaling", f"{report['ece_uncalibrated']:.4f}"))
    lines += [_table(["metric", "value"], summary), "", "## Per class", ""]
    per = report["per_class"]
    lines.append(
        _table(
            ["class", "precision", "recall", "F1", "support"],
            [
                [n, f"{per[n]['precision']:.3f}", f"{per[n]['recall']:.3f}", f"{per[n]['f1']:.3f}", per[n]["support"]]
                for n in labels
            ],
        )
    )
    for name, key, fmt in (("counts", "confusion", "{}"), ("row-normalised", "confusion_normalized", "{:.3f}")):
        lines += ["", f"## Confusion matrix ({name}; rows: true class, columns: predicted)", ""]
        matrix = report[key]
        lines.append(
            _table(
                ["true \\ predicted", *labels],
                [[labels[i], *(fmt.format(v) for v in row)] for i, row in enumerate(matrix)],
            )
        )
    return "\n".join(lines) + "\n"


def _duplicates_text(d: Mapping[str, Any]) -> str:
    found = d.get("found", d.get("test_in_train", 0))
    return f"{found} found, {'dropped' if d.get('dropped') else 'kept (use --drop-duplicates to drop them)'}"


def write_report(
    report: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (with ``plots``) the PNG plots into ``out_dir``.

    Parameters
    ----------
    report : dict
        What :func:`~emotionkit.training.evaluate.evaluate` returns.
    out_dir : str or os.PathLike
        Output folder (created).
    history : sequence of dict, optional
        ``history.json`` entries, for the training curves.
    plots : bool, default True
        Also draw the PNG plots (needs matplotlib).

    Returns
    -------
    dict of str to pathlib.Path
        ``{"json": ..., "markdown": ..., "confusion": ..., "f1": ..., "curves": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / REPORT_JSON, "markdown": out / REPORT_MD}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(report_markdown(report))
    if plots:
        from .plots import plot_report

        paths.update(plot_report(report, out, history=history))
    return paths


def distribution_markdown(counts: Mapping[str, Mapping[str, int]]) -> str:
    """Markdown table of class counts (and shares) per split.

    Parameters
    ----------
    counts : dict
        ``{split: {class: count}}``, e.g. :meth:`~emotionkit.data.splits.DataSplits.class_counts`.

    Returns
    -------
    str
        One row per class and a total row; one count and share column per split.

    Examples
    --------
    >>> print(distribution_markdown({"train": {"a": 3, "b": 1}, "test": {"a": 1, "b": 1}}))
    | class | train | % | test | % |
    |---|---:|---:|---:|---:|
    | a | 3 | 75.0 | 1 | 50.0 |
    | b | 1 | 25.0 | 1 | 50.0 |
    | **total** | **4** | 100.0 | **2** | 100.0 |
    """
    splits = list(counts)
    classes = list(next(iter(counts.values()))) if counts else []
    totals = {s: sum(counts[s].values()) for s in splits}
    rows = []
    for c in classes:
        row: list[Any] = [c]
        for s in splits:
            row += [counts[s][c], f"{100.0 * counts[s][c] / max(totals[s], 1):.1f}"]
        rows.append(row)
    total_row: list[Any] = ["**total**"]
    for s in splits:
        total_row += [f"**{totals[s]}**", "100.0"]
    rows.append(total_row)
    header = ["class"]
    for s in splits:
        header += [s, "%"]
    return _table(header, rows)


def inference_speed(model: str | os.PathLike, *, batch_size: int = 64, seconds: float = 1.0) -> float:
    """Measure faces per second of ``predict_proba`` on batches of ``batch_size`` 48x48 uint8 faces.

    Preprocessing, the network and the softmax are timed (not face detection), after one
    warm-up batch, for at least ``seconds`` of wall time, with the current torch thread count.

    Parameters
    ----------
    model : str or os.PathLike
        A bundled model name or a model directory.
    batch_size : int, default 64
        Faces per batch.
    seconds : float, default 1.0
        Least measurement time.

    Returns
    -------
    float
        Faces per second.
    """
    import torch

    from ..recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained(model, detector=None)
    size = rec.preprocessor.size
    faces = np.random.default_rng(0).integers(0, 256, (batch_size, *size)).astype(np.uint8)  # type: ignore[misc]
    with torch.inference_mode():
        rec.predict_proba(faces)
        done, start = 0, time.perf_counter()
        while True:
            rec.predict_proba(faces)
            done += batch_size
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and done >= 3 * batch_size:
                return done / elapsed


def _run_row(run: Path, *, speed: bool, batch_size: int) -> dict[str, Any]:
    config_path = run / "config.json"
    if not config_path.is_file():
        raise InvalidDataError(
            f"{str(run)!r} is not a finished run directory (no config.json); train it with `emotionkit train --out {run}`."
        )
    config = json.loads(config_path.read_text())
    report_path = run / REPORT_JSON
    summary_path = run / "summary.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        split = report.get("split") or "test"
    elif summary_path.is_file():
        report = json.loads(summary_path.read_text())["val"]
        split = "validation"
    else:
        raise InvalidDataError(
            f"{str(run)!r} has no {REPORT_JSON} or summary.json to compare; run `emotionkit evaluate {run} --data PATH` first."
        )
    per = report["per_class"]
    best = max(per, key=lambda n: per[n]["f1"])
    worst = min(per, key=lambda n: per[n]["f1"])
    training = (config.get("meta") or {}).get("training") or {}
    seconds_per_epoch = training.get("seconds_per_epoch")
    if seconds_per_epoch is None and (run / "history.json").is_file():
        history = json.loads((run / "history.json").read_text())
        seconds_per_epoch = round(float(np.mean([e["seconds"] for e in history])), 1) if history else None
    row = {
        "run": run.name,
        "path": str(run),
        "backbone": config.get("backbone"),
        "split": split,
        "n": report.get("n"),
        "tta_flip": bool(report.get("tta_flip", False)),
        "accuracy": report["accuracy"],
        "best_class": best,
        "best_class_f1": per[best]["f1"],
        "worst_class": worst,
        "worst_class_f1": per[worst]["f1"],
        "macro_f1": report["macro_f1"],
        "weighted_f1": report["weighted_f1"],
        "ece": report.get("ece"),
        "epochs": training.get("epochs_run"),
        "seconds_per_epoch": seconds_per_epoch,
        "num_params": config.get("num_params"),
        "faces_per_second": None,
    }
    if speed:
        row["faces_per_second"] = round(inference_speed(run, batch_size=batch_size), 1)
    return row


def compare_runs(runs: Sequence[str | os.PathLike], *, speed: bool = True, batch_size: int = 64) -> dict[str, Any]:
    """Compare finished runs: test (or validation) metrics, training time, size and inference speed.

    Parameters
    ----------
    runs : sequence of path
        Run directories (``emotionkit train --out``), each with ``config.json`` and either a
        ``report.json`` (test evaluation) or a ``summary.json`` (validation metrics).
    speed : bool, default True
        Measure inference speed (faces/s of ``predict_proba`` at ``batch_size``; about 1 s per run).
    batch_size : int, default 64
        Batch of the speed measurement.

    Returns
    -------
    dict
        ``{"rows": [...], "batch_size": ..., "threads": ...}``; one row per run with ``accuracy``,
        ``best_class`` / ``best_class_f1``, ``worst_class`` / ``worst_class_f1``, ``macro_f1``,
        ``weighted_f1``, ``seconds_per_epoch``, ``num_params``, ``faces_per_second`` and more.

    Raises
    ------
    InvalidDataError
        A directory that is not a finished run, or has nothing to compare.
    """
    import torch

    rows = [_run_row(Path(r), speed=speed, batch_size=batch_size) for r in runs]
    return {"rows": rows, "batch_size": batch_size, "threads": torch.get_num_threads()}


def comparison_markdown(comparison: Mapping[str, Any]) -> str:
    """Render :func:`compare_runs` as a Markdown table (like the seed's model comparison).

    Parameters
    ----------
    comparison : dict
        What :func:`compare_runs` returns.

    Returns
    -------
    str
        One row per run.
    """

    def fmt(v: Any, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    rows = [
        [
            r["run"],
            r["backbone"],
            f"{r['split']}{' +flip' if r['tta_flip'] else ''}",
            fmt(r["accuracy"], ".4f"),
            f"{r['best_class']} {r['best_class_f1']:.3f}",
            f"{r['worst_class']} {r['worst_class_f1']:.3f}",
            fmt(r["macro_f1"], ".4f"),
            fmt(r["weighted_f1"], ".4f"),
            fmt(r["seconds_per_epoch"], ".1f"),
            fmt(r["num_params"], ","),
            fmt(r["faces_per_second"], ".0f"),
        ]
        for r in comparison["rows"]
    ]
    header = [
        "run",
        "backbone",
        "evaluated on",
        "accuracy",
        "best class F1",
        "worst class F1",
        "macro F1",
        "weighted F1",
        "s/epoch",
        "parameters",
        f"faces/s (batch {comparison['batch_size']}, {comparison['threads']} threads)",
    ]
    return _table(header, rows, "lll" + "r" * (len(header) - 3)) + "\n"


def write_comparison(comparison: Mapping[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``comparison.json`` and ``comparison.md`` into ``out_dir``.

    Parameters
    ----------
    comparison : dict
        What :func:`compare_runs` returns.
    out_dir : str or os.PathLike
        Output folder (created).

    Returns
    -------
    dict of str to pathlib.Path
        ``{"json": ..., "markdown": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "comparison.json", "markdown": out / "comparison.md"}
    paths["json"].write_text(json.dumps(comparison, indent=2) + "\n")
    paths["markdown"].write_text("# Model comparison\n\n" + comparison_markdown(comparison))
    return paths
