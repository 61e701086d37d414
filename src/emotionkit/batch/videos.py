"""Many videos, one task each: follow the faces of every video and write its timeline.

Each video gets ``OUT/<name>.csv``, the same per-track timeline ``emotionkit video --timeline`` writes, and one
line in ``OUT/videos.jsonl`` (frames, face observations, tracks, seconds, or the error that stopped it). A
timeline appears whole or not at all (written aside, then renamed), so a rerun skips the videos that are done.
Tasks run in local worker processes, or as Ray tasks (:func:`emotionkit.distributed.predict_videos_ray`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..exceptions import ImageNotFoundError, InvalidOptionError
from .local import JobConfig

__all__ = ["VIDEO_SUFFIXES", "SUMMARY_NAME", "expand_videos", "timeline_name", "timeline_for", "predict_videos"]

#: Suffixes a folder or glob contributes as videos (lower case).
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v"})
#: The job's summary: one JSON line per finished video.
SUMMARY_NAME = "videos.jsonl"


def expand_videos(specs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Video paths from folders (recursive), globs, ``.txt`` path lists or video files, in a stable order.

    Parameters
    ----------
    specs : str, os.PathLike or iterable of them
        As for :func:`emotionkit.batch.expand_inputs`, with video suffixes instead of image ones.

    Returns
    -------
    list of str

    Raises
    ------
    ImageNotFoundError
        A spec that is no file, no folder and a glob that matches no video.
    """
    import glob

    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    seen: dict[str, None] = {}
    for raw in specs:
        spec, path = os.fspath(raw), Path(raw)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file() and path.suffix.lower() in (".txt", ".lst"):
            lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
            found = [line for line in lines if line and not line.startswith("#")]
        elif path.is_file():
            found = [spec]
        else:
            found = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise ImageNotFoundError(
                    f"Video input not found: {spec!r}. Pass a folder, a glob such as 'clips/**/*.mp4', a .txt file "
                    "of paths, or a video file."
                )
        for item in found:
            seen.setdefault(item, None)
    return list(seen)


def timeline_name(video: str) -> str:
    """The timeline's file name for a video: its path with separators as ``__`` (unique within one job).

    Parameters
    ----------
    video : str
        The video's path as the job's input named it.

    Returns
    -------
    str

    Examples
    --------
    >>> timeline_name("clips/day1/talk.mp4")
    'clips__day1__talk.csv'
    """
    stem = Path(video).with_suffix("").as_posix().lstrip("./").replace("/", "__").replace(":", "_")
    return f"{stem or 'video'}.csv"


def timeline_for(video: str, out: str | os.PathLike, config: JobConfig, stream_options: Mapping[str, Any]) -> dict:
    """Follow every face of one video and write its timeline; never raises for a bad video.

    Parameters
    ----------
    video : str
        The video file.
    out : str or os.PathLike
        The job's output folder.
    config : JobConfig
        Model, detector and device (a recognizer is built for the task).
    stream_options : mapping
        Keyword arguments of :meth:`EmotionRecognizer.stream` (``every``, ``smoothing``, ``min_hits``, ...).

    Returns
    -------
    dict
        ``video``, ``timeline`` (empty on error), ``frames``, ``faces``, ``tracks``, ``seconds``, ``error``.
    """
    from ..video import TimelineWriter

    start = time.perf_counter()
    target = Path(out) / timeline_name(video)
    staging = target.with_name(f".{target.stem}.tmp.csv")
    frames = faces = 0
    tracks: set[int] = set()
    try:
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        recognizer = config.recognizer()
        with recognizer.stream(video, **stream_options) as stream, TimelineWriter(staging, recognizer.labels) as w:
            for result in stream:
                w.write(result)
                frames += 1
                faces += len(result.faces)
                tracks.update(face.track_id for face in result.faces)
        os.replace(staging, target)
        error = None
    except Exception as exc:  # one bad video never stops the job: its error goes in the summary
        staging.unlink(missing_ok=True)
        error = f"{type(exc).__name__}: {exc}"
    return {
        "video": video,
        "timeline": None if error else str(target),
        "frames": frames,
        "faces": faces,
        "tracks": len(tracks),
        "seconds": round(time.perf_counter() - start, 3),
        "error": error,
    }


def _task(job: tuple[str, str, JobConfig, dict[str, Any]]) -> dict:
    return timeline_for(*job)


def pending_videos(videos: list[str], out: str | os.PathLike) -> list[str]:
    """The videos whose timeline is not in ``out`` yet (``out`` is created)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return [v for v in videos if not (Path(out) / timeline_name(v)).is_file()]


def record(out: str | os.PathLike, summary: dict) -> None:
    """Append one video's summary line to the job's ``videos.jsonl``."""
    with open(Path(out) / SUMMARY_NAME, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(summary) + "\n")


def predict_videos(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    detector: str | None = None,
    detector_options: Mapping[str, Any] | None = None,
    device: str | None = None,
    workers: int = 1,
    threads: int | None = None,
    **stream_options: Any,
) -> list[dict]:
    """Write a per-track timeline for every video, one task per video in ``workers`` processes; resumable.

    Parameters
    ----------
    inputs : str, os.PathLike or iterable of them
        Video folders, globs, path lists or files (:func:`expand_videos`).
    out : str or os.PathLike
        Output folder: ``<name>.csv`` per video (:func:`timeline_name`) and ``videos.jsonl``.
    model, detector, detector_options, device
        As for :func:`emotionkit.batch.predict_files`.
    workers : int, default 1
        Processes, one video at a time each; 0 runs in this process.
    threads : int, optional
        Torch threads per task (default: cores divided by workers).
    **stream_options
        For :meth:`EmotionRecognizer.stream`: ``every``, ``smoothing``, ``alpha``, ``window``, ``min_hits``, ...

    Returns
    -------
    list of dict
        The summary of each video processed in this run (see :func:`timeline_for`).

    Raises
    ------
    InvalidOptionError
        A negative or non-integer ``workers``.
    ImageNotFoundError
        An input that names no video.
    """
    import multiprocessing

    if not isinstance(workers, int) or workers < 0:
        raise InvalidOptionError(f"workers must be an integer >= 0, got {workers!r}.")
    todo = pending_videos(expand_videos(inputs), out)
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    config = JobConfig.create(model, detector, detector_options, device, threads if workers else None)
    jobs = [(video, os.fspath(out), config, dict(stream_options)) for video in todo]
    summaries = []
    if workers == 0:
        results: Iterable[dict] = map(_task, jobs)
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(_task, jobs)
    try:
        for summary in results:
            record(out, summary)
            summaries.append(summary)
    finally:
        if workers:
            pool.close()
            pool.join()
    return summaries
