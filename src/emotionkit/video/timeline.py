"""Per-track timelines: one row per face per frame, streamed to CSV or JSON, read back, and plotted."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from ..exceptions import MissingDependencyError
from ..types import EMOTIONS
from .errors import InvalidVideoError, VideoNotFoundError, VideoWriteError
from .results import FrameResult

__all__ = ["TimelineWriter", "read_timeline", "plot_timeline", "TIMELINE_FORMAT"]

#: The ``format`` field of JSON timelines; :func:`read_timeline` checks it.
TIMELINE_FORMAT = "emotionkit-timeline/1"
_SUFFIXES = (".csv", ".json")


class TimelineWriter:
    """Stream one row per tracked face per frame to a ``.csv`` or ``.json`` file.

    Rows are written as frames arrive, so memory stays flat. Each row has the frame index,
    time (s), track id, box ``x1, y1, x2, y2``, whether the detector found the box in that
    frame, the smoothed label and its probability, the raw label, and every class's smoothed
    and raw probability. CSV columns: ``frame, time, track, x1, y1, x2, y2, detected, label,
    confidence, raw_label, <class>..., raw_<class>...``. JSON: ``{"format", "labels", "rows": [...]}``
    with ``box``, ``scores`` and ``raw_scores`` fields.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.csv`` or ``.json``.
    labels : sequence of str, default EMOTIONS
        Class names, in the model's order (``recognizer.labels``).

    Raises
    ------
    VideoWriteError
        Another suffix, or a path that cannot be written.
    """

    def __init__(self, path: str | os.PathLike, labels: Sequence[str] = EMOTIONS) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in _SUFFIXES:
            raise VideoWriteError(
                f"Timeline {str(self.path)!r} must end in .csv or .json, got {self.path.suffix or 'no suffix'!r}."
            )
        self.labels = tuple(labels)
        self.rows_written = 0
        try:
            self._file: IO[str] | None = open(
                self.path, "w", newline="" if self.format == ".csv" else None, encoding="utf-8"
            )
        except OSError as exc:
            raise VideoWriteError(
                f"Cannot write the timeline {str(self.path)!r} ({exc}). Check that its folder exists and is writable."
            ) from exc
        if self.format == ".csv":
            self._csv = csv.writer(self._file)
            self._csv.writerow(
                ["frame", "time", "track", "x1", "y1", "x2", "y2", "detected", "label", "confidence", "raw_label"]
                + list(self.labels)
                + [f"raw_{label}" for label in self.labels]
            )
        else:
            head = json.dumps({"format": TIMELINE_FORMAT, "labels": list(self.labels)})
            self._file.write(head[:-1] + ', "rows": [')

    def write(self, result: FrameResult) -> None:
        """Append one row per face of ``result``.

        Parameters
        ----------
        result : FrameResult
            One frame from :meth:`~emotionkit.EmotionRecognizer.stream`.

        Raises
        ------
        VideoWriteError
            The writer is closed.
        """
        if self._file is None:
            raise VideoWriteError(f"The timeline {str(self.path)!r} is closed.")
        for face in result.faces:
            box = [round(float(v), 2) for v in face.box]
            if self.format == ".csv":
                self._csv.writerow(
                    [
                        result.index,
                        f"{result.time:.6f}",
                        face.track_id,
                        *box,
                        int(face.detected),
                        face.label,
                        f"{face.confidence:.6f}",
                        face.raw_label,
                    ]
                    + [f"{face.smoothed[k]:.6f}" for k in self.labels]
                    + [f"{face.raw[k]:.6f}" for k in self.labels]
                )
            else:
                row = {
                    "frame": result.index,
                    "time": round(result.time, 6),
                    "track": face.track_id,
                    "box": box,
                    "detected": face.detected,
                    "label": face.label,
                    "confidence": round(face.confidence, 6),
                    "raw_label": face.raw_label,
                    "scores": {k: round(float(face.smoothed[k]), 6) for k in self.labels},
                    "raw_scores": {k: round(float(face.raw[k]), 6) for k in self.labels},
                }
                self._file.write(("\n" if self.rows_written == 0 else ",\n") + json.dumps(row))
            self.rows_written += 1

    def close(self) -> None:
        """Finish the file (idempotent)."""
        if self._file is None:
            return
        if self.format == ".json":
            self._file.write("\n]}\n")
        self._file.close()
        self._file = None

    def __enter__(self) -> TimelineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_timeline(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a timeline written by :class:`TimelineWriter` (CSV or JSON) into the same row dictionaries.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` or ``.json`` timeline.

    Returns
    -------
    list of dict
        Keys ``frame, time, track, box, detected, label, confidence, raw_label, scores, raw_scores``.

    Raises
    ------
    VideoNotFoundError
        No such file.
    InvalidVideoError
        The file is not a timeline (also a ``ValueError``).
    """
    p = Path(path)
    if not p.is_file():
        raise VideoNotFoundError(f"Timeline not found: {str(p)!r}.")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            if data.get("format") != TIMELINE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {TIMELINE_FORMAT!r}")
            return [dict(row, box=tuple(row["box"])) for row in data["rows"]]
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            labels = [c for c in (reader.fieldnames or [])[11:] if not c.startswith("raw_")]
            return [
                {
                    "frame": int(r["frame"]),
                    "time": float(r["time"]),
                    "track": int(r["track"]),
                    "box": tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2")),
                    "detected": r["detected"] == "1",
                    "label": r["label"],
                    "confidence": float(r["confidence"]),
                    "raw_label": r["raw_label"],
                    "scores": {k: float(r[k]) for k in labels},
                    "raw_scores": {k: float(r[f"raw_{k}"]) for k in labels},
                }
                for r in reader
            ]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidVideoError(f"{str(p)!r} is not an emotionkit timeline ({type(exc).__name__}: {exc}).") from exc


def plot_timeline(
    timeline: str | os.PathLike | Iterable[dict[str, Any]],
    out: str | os.PathLike,
    *,
    raw: bool = False,
    max_tracks: int = 8,
) -> Path:
    """Plot each track's emotion probabilities over time, one panel per track, to an image file.

    Parameters
    ----------
    timeline : path or iterable of dict
        A timeline file, or rows as :func:`read_timeline` returns them.
    out : str or os.PathLike
        Image path (``.png``, ``.svg``, ``.pdf``...).
    raw : bool, default False
        Also draw the raw (unsmoothed) probabilities as thin dotted lines.
    max_tracks : int, default 8
        Plot the longest tracks only (short ones are usually passers-by or false detections).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            "Plotting needs matplotlib: pip install 'emotionkit[video]' (or pip install matplotlib)."
        ) from exc
    rows = read_timeline(timeline) if isinstance(timeline, (str, os.PathLike)) else list(timeline)
    tracks: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        tracks.setdefault(int(row["track"]), []).append(row)
    chosen = sorted(sorted(tracks, key=lambda t: -len(tracks[t]))[:max_tracks])
    labels = list(rows[0]["scores"]) if rows else list(EMOTIONS)
    n = max(1, len(chosen))
    fig = Figure(figsize=(10, 1.8 + 2.2 * n), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for ax, track in zip(axes, chosen):
        series = sorted(tracks[track], key=lambda r: r["frame"])
        t = [r["time"] for r in series]
        for label in labels:
            ax.plot(t, [r["scores"][label] for r in series], color=colors[label], lw=1.6, label=label)
            if raw:
                ax.plot(t, [r["raw_scores"][label] for r in series], color=colors[label], lw=0.6, ls=":")
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"track {track}\nprobability")
        ax.grid(alpha=0.3)
    if not chosen:
        axes[0].text(0.5, 0.5, "no faces tracked", ha="center", va="center", transform=axes[0].transAxes)
    axes[-1].set_xlabel("time (s)")
    if chosen:
        axes[0].legend(ncol=len(labels), loc="lower left", bbox_to_anchor=(0, 1.02), frameon=False, fontsize="small")
    fig.suptitle("Emotions over time per track" + (" (dotted: raw)" if raw else " (smoothed)"))
    out_path = Path(out)
    fig.savefig(out_path, dpi=100)
    return out_path
