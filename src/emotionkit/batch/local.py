"""The local engine: photos read and classified by worker processes, results written in parts."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import InvalidOptionError
from .inputs import expand_inputs
from .rows import ModelIdentity, columns, model_identity, rows_for_error, rows_for_faces
from .sink import PartWriter, chunks

__all__ = ["BatchSummary", "JobConfig", "RowTally", "predict_files", "classify_paths"]


@dataclass(frozen=True)
class JobConfig:
    """What each worker needs to build its own recognizer (plain data, so it crosses process boundaries).

    Parameters
    ----------
    model : str, optional
        Bundled model name or saved directory (default: the default model).
    detector : str, optional
        Registered detector name (default: that of :meth:`EmotionRecognizer.from_pretrained`).
    detector_options : mapping, optional
        Keyword arguments for the detector.
    device : str, optional
        Torch device (default CPU).
    threads : int, optional
        Torch threads the worker sets before building the recognizer.
    """

    model: str | None = None
    detector: str | None = None
    detector_options: Mapping[str, Any] | None = None
    device: str | None = None
    threads: int | None = None

    @classmethod
    def create(
        cls,
        model: str | os.PathLike | None,
        detector: str | None,
        detector_options: Mapping[str, Any] | None,
        device: str | None,
        threads: int | None,
    ) -> JobConfig:
        """A config from user-facing arguments (a path-like model, any mapping of options).

        Parameters
        ----------
        model, detector, detector_options, device, threads
            As the fields.

        Returns
        -------
        JobConfig
        """
        return cls(None if model is None else os.fspath(model), detector, dict(detector_options or {}), device, threads)

    def recognizer(self) -> Any:
        """Build the recognizer this job describes.

        Returns
        -------
        EmotionRecognizer
        """
        from ..recognizer import EmotionRecognizer

        chosen: dict[str, Any] = {} if self.detector is None else {"detector": self.detector}  # None: the default
        return EmotionRecognizer.from_pretrained(
            self.model, device=self.device, detector_options=self.detector_options, **chosen
        )


@dataclass(frozen=True)
class BatchSummary:
    """What a batch job did.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.
    images : int
        Photos read in this run (each gave face rows, a no-face row or an error row).
    skipped : int
        Photos skipped because earlier parts already hold them.
    faces : int
        Face rows written.
    no_face : int
        Photos without a face.
    errors : int
        Files that could not be read or classified.
    seconds : float
        Wall time of this run, model loading and worker start included.
    """

    out: Path
    images: int
    skipped: int
    faces: int
    no_face: int
    errors: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Photos per second of wall time in this run."""
        return self.images / self.seconds if self.seconds > 0 else 0.0


class RowTally:
    """Counts a job's rows as they are written, and turns them into its :class:`BatchSummary`."""

    def __init__(self) -> None:
        self.faces = self.no_face = self.errors = 0
        self.start = time.perf_counter()

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Count rows: a face, a photo without a face, or a failed file.

        Parameters
        ----------
        rows : iterable of dict
            Result rows.
        """
        for row in rows:
            if row["error"]:
                self.errors += 1
            elif row["face"] is None:
                self.no_face += 1
            else:
                self.faces += 1

    def summary(self, out: str | os.PathLike, images: int, skipped: int) -> BatchSummary:
        """The job's summary, its time counted from this tally's creation.

        Parameters
        ----------
        out : str or os.PathLike
            The output folder.
        images, skipped : int
            Photos read in this run, and photos skipped as done.

        Returns
        -------
        BatchSummary
        """
        seconds = time.perf_counter() - self.start
        return BatchSummary(Path(out), images, skipped, self.faces, self.no_face, self.errors, seconds)


def classify_paths(recognizer: Any, identity: ModelIdentity, paths: Sequence[str]) -> list[dict[str, Any]]:
    """Rows for ``paths``, in order: read each file, classify the readable ones in one batch.

    A file that cannot be read, or whose photo makes classification fail, gets an error row; the others are
    unaffected.

    Parameters
    ----------
    recognizer : EmotionRecognizer
        Classifies the photos.
    identity : ModelIdentity
        Written on every row.
    paths : sequence of str
        The files.

    Returns
    -------
    list of dict
        The rows of every file.
    """
    from ..io import decode_image

    per_path: dict[str, list[dict[str, Any]]] = {}
    arrays, readable = [], []
    for path in paths:
        try:
            arrays.append(decode_image(path))
            readable.append(path)
        except Exception as exc:  # a bad file never stops the job: its error is its row
            per_path[path] = rows_for_error(path, exc, identity)
    try:
        results = recognizer.predict_batch(arrays) if arrays else []
    except Exception:
        results = None
    if results is None:  # one photo broke the batch: classify one by one to keep the others
        results = []
        for array in arrays:
            try:
                results.append(recognizer.predict_batch([array])[0])
            except Exception as exc:
                results.append(exc)
    for path, faces in zip(readable, results):
        per_path[path] = (
            rows_for_error(path, faces, identity)
            if isinstance(faces, Exception)
            else rows_for_faces(path, faces, identity)
        )
    return [row for path in paths for row in per_path[path]]


_WORKER: tuple[Any, ModelIdentity] | None = None


def _start_worker(config: JobConfig, identity: ModelIdentity) -> None:
    global _WORKER
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    _WORKER = (config.recognizer(), identity)


def _write_in_parts(
    results: Iterable[tuple[int, list[dict[str, Any]]]],
    writer: PartWriter,
    tally: RowTally,
    total: int,
    part_size: int,
    progress: bool | None,
) -> None:
    """Count and buffer each task's ``(photos, rows)``; write a part every ``part_size`` photos and at the end."""
    from tqdm.auto import tqdm

    buffer: list[dict[str, Any]] = []
    buffered = 0
    with tqdm(
        total=total, unit="img", desc="emotionkit batch", disable=None if progress is None else not progress
    ) as bar:
        for n_images, rows in results:
            tally.add(rows)
            buffer.extend(rows)
            buffered += n_images
            if buffered >= part_size:
                writer.write(buffer)
                buffer.clear()
                buffered = 0
            bar.update(n_images)
        writer.write(buffer)


def _work(paths: list[str]) -> tuple[int, list[dict[str, Any]]]:
    assert _WORKER is not None, "worker not started"
    return len(paths), classify_paths(_WORKER[0], _WORKER[1], paths)


def predict_files(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    detector: str | None = None,
    detector_options: Mapping[str, Any] | None = None,
    device: str | None = None,
    workers: int = 1,
    threads: int | None = None,
    chunk_size: int = 8,
    part_size: int = 256,
    format: str | None = None,
    overwrite: bool = False,
    path_column: str = "path",
    progress: bool | None = None,
) -> BatchSummary:
    """Classify every face in many photos and write the rows to ``out`` in parts; resume where a run stopped.

    Parameters
    ----------
    inputs : str, os.PathLike or iterable of them
        Folders, globs, path lists or tables (see :func:`expand_inputs`).
    out : str or os.PathLike
        Output folder of ``part-NNNNNN.parquet`` / ``.jsonl`` files. Photos that its finished parts already hold
        are skipped, so rerunning a killed job finishes it.
    model : str or os.PathLike, optional
        Bundled model name or saved directory (default: the default model).
    detector : str, optional
        Registered detector name (``"none"``: each photo is one face crop); default: that of
        :meth:`EmotionRecognizer.from_pretrained`.
    detector_options : mapping, optional
        Keyword arguments for the detector.
    device : str, optional
        Torch device of each worker (default CPU).
    workers : int, default 1
        Worker processes that read and classify photos; 0 runs everything in this process.
    threads : int, optional
        Torch threads per worker (default: CPU cores divided by workers).
    chunk_size : int, default 8
        Photos per task: read, detected and classified together (one classifier pass for their faces).
    part_size : int, default 256
        Photos per output part: a killed job loses at most this many.
    format : {"parquet", "jsonl"}, optional
        Default: that of the parts already in ``out``, else Parquet.
    overwrite : bool, default False
        Delete the parts already in ``out`` and start again instead of resuming.
    path_column : str, default "path"
        Column of a CSV/Parquet input that holds the paths.
    progress : bool, optional
        Show a progress bar with photos/s; ``None`` shows it when stderr is a terminal.

    Returns
    -------
    BatchSummary

    Raises
    ------
    InvalidOptionError
        A non-positive ``chunk_size`` / ``part_size``, negative ``workers``, or an output that cannot be resumed.
    """
    for name, value, low in (("workers", workers, 0), ("chunk_size", chunk_size, 1), ("part_size", part_size, 1)):
        if not isinstance(value, int) or value < low:
            raise InvalidOptionError(f"{name} must be an integer >= {low}, got {value!r}.")
    tally = RowTally()  # the job's clock starts here
    paths = expand_inputs(inputs, path_column=path_column)
    if overwrite and Path(out).is_dir():
        shutil.rmtree(out)
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    config = JobConfig.create(model, detector, detector_options, device, threads if workers else None)
    recognizer = config.recognizer()  # also checks the model and detector before any worker starts
    identity = model_identity(config.model, recognizer.labels)
    writer = PartWriter(out, columns(identity.labels), format)
    done = writer.done_paths()
    todo = [p for p in paths if p not in done]
    tasks = chunks(todo, chunk_size)
    if workers == 0:
        results = ((len(task), classify_paths(recognizer, identity, task)) for task in tasks)
        _write_in_parts(results, writer, tally, len(todo), part_size, progress)
    else:
        del recognizer  # each worker builds its own
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        with context.Pool(workers, initializer=_start_worker, initargs=(config, identity)) as pool:
            _write_in_parts(pool.imap(_work, tasks), writer, tally, len(todo), part_size, progress)
    return tally.summary(out, len(todo), len(paths) - len(todo))
