"""Batch jobs on Ray Data: one recognizer per actor, photos as a Ray Dataset.

``pip install "emotionkit[ray]"``. :func:`predict_dataset` is for people already in Ray: it takes a
:class:`ray.data.Dataset` with a ``path`` column (files every node can read) or the ``bytes`` and ``path`` columns
of :func:`ray.data.read_binary_files` (files anywhere Ray reads, object stores included), and returns a
Dataset with the rows of :func:`emotionkit.batch.columns`, ready for ``write_parquet``. :func:`predict_files_ray`
is ``emotionkit batch --engine ray``: the same job as the local engine (same rows, same resumable parts), run by
Ray actors.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .batch.inputs import expand_inputs
from .batch.local import BatchSummary, JobConfig, RowTally, classify_paths
from .batch.rows import ModelIdentity, columns, model_identity, rows_for_error, rows_for_faces
from .batch.sink import PartWriter, arrow_schema, import_pyarrow
from .exceptions import InvalidDataError, InvalidOptionError, MissingDependencyError

__all__ = ["RecognizerActor", "predict_dataset", "predict_files_ray", "predict_videos_ray", "require_ray"]


def require_ray() -> Any:
    """Import and return :mod:`ray` (with Ray Data), or say how to install it.

    Returns
    -------
    module
        :mod:`ray`.

    Raises
    ------
    MissingDependencyError
        Ray is not installed.
    """
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            'The Ray engine needs Ray Data: pip install "emotionkit[ray]" (or use --engine local).'
        ) from exc
    return ray


class RecognizerActor:
    """A callable class for :meth:`ray.data.Dataset.map_batches`: each actor holds one recognizer.

    Parameters
    ----------
    config : JobConfig
        Which model, detector and device; ``threads`` sets the actor's torch threads.
    identity : ModelIdentity
        Written on every row.
    """

    def __init__(self, config: JobConfig, identity: ModelIdentity) -> None:
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        self.recognizer = config.recognizer()
        self.identity = identity
        self.columns = columns(identity.labels)

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        """Classify one batch of files.

        Parameters
        ----------
        batch : mapping
            Ray's numpy batch: a ``path`` column, and the files' ``bytes`` when the dataset carries them.

        Returns
        -------
        pyarrow.Table
            The batch's rows (:func:`emotionkit.batch.columns`).
        """
        paths = [str(p) for p in batch["path"]]
        if "bytes" in batch:
            rows = [row for path, data in zip(paths, batch["bytes"]) for row in self._from_bytes(path, data)]
        else:
            rows = classify_paths(self.recognizer, self.identity, paths)
        return import_pyarrow().Table.from_pylist(rows, schema=arrow_schema(self.columns))

    def _from_bytes(self, path: str, data: bytes) -> list[dict[str, Any]]:
        from PIL import Image

        from .exceptions import InvalidImageError
        from .io import decode_image

        try:
            try:
                image = Image.open(io.BytesIO(bytes(data)))
                image.load()
            except Exception as exc:
                raise InvalidImageError(f"Could not read {path!r} as an image ({type(exc).__name__}: {exc}).") from exc
            faces = self.recognizer.predict(decode_image(image))
        except Exception as exc:  # a bad file never stops the job: its error is its row
            return rows_for_error(path, exc, self.identity)
        return rows_for_faces(path, faces, self.identity)


def _check_dataset(ds: Any) -> None:
    names = set(ds.schema().names)
    if "path" not in names:
        raise InvalidDataError(
            f"The dataset has no 'path' column (its columns: {', '.join(sorted(names))}). Build it with "
            "ray.data.from_items([{'path': p} for p in paths]) or ray.data.read_binary_files(..., include_paths=True)."
        )


def predict_dataset(
    ds: Any,
    *,
    model: str | os.PathLike | None = None,
    detector: str | None = None,
    detector_options: Mapping[str, Any] | None = None,
    device: str | None = None,
    batch_size: int = 8,
    concurrency: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    threads: int | None = None,
) -> Any:
    """Classify every face of every file in a Ray Dataset; one recognizer per actor.

    Parameters
    ----------
    ds : ray.data.Dataset
        With a ``path`` column, and optionally the files' ``bytes`` (as :func:`ray.data.read_binary_files` with
        ``include_paths=True`` gives them).
    model, detector, detector_options, device
        As for :func:`emotionkit.batch.predict_files`.
    batch_size : int, default 8
        Files per ``map_batches`` call (their faces are classified in one pass).
    concurrency : int, default 1
        Actors, each holding one recognizer.
    num_cpus, num_gpus : float
        Resources per actor.
    threads : int, optional
        Torch threads per actor (default: ``num_cpus`` rounded, at least 1).

    Returns
    -------
    ray.data.Dataset
        One row per face, per photo without a face and per failed file (:func:`emotionkit.batch.columns`).

    Raises
    ------
    MissingDependencyError
        Ray is not installed.
    InvalidOptionError
        ``batch_size`` or ``concurrency`` below 1.
    InvalidDataError
        A dataset without a ``path`` column.
    """
    ray = require_ray()
    if batch_size < 1 or concurrency < 1:
        raise InvalidOptionError(f"batch_size and concurrency must be >= 1, got {batch_size} and {concurrency}.")
    _check_dataset(ds)
    config = JobConfig.create(model, detector, detector_options, device, threads or max(1, round(num_cpus)))
    identity = model_identity(config.model, config.recognizer().labels)
    return ds.map_batches(
        RecognizerActor,
        fn_constructor_kwargs={"config": config, "identity": identity},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )


def predict_files_ray(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    actors: int = 1,
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    threads: int | None = None,
    chunk_size: int = 8,
    format: str | None = None,
    overwrite: bool = False,
    path_column: str = "path",
    **recognizer_options: Any,
) -> BatchSummary:
    """``emotionkit batch --engine ray``: the local engine's job (same rows, same resumable parts) on Ray actors.

    Results stream back to this process and are written as parts of ``out`` as they arrive, so a rerun resumes
    exactly like the local engine's. Connects to ``address`` (``"auto"``, ``"ray://host:10001"``), or starts a
    local Ray when none is given and none is running.

    Parameters
    ----------
    inputs, out, chunk_size, format, overwrite, path_column
        As for :func:`emotionkit.batch.predict_files` (one part per ``chunk_size`` photos' batch).
    actors : int, default 1
        Ray actors, each holding one recognizer.
    address : str, optional
        Ray cluster address.
    num_cpus, num_gpus, threads
        Resources and torch threads per actor.
    **recognizer_options
        ``model``, ``detector``, ``detector_options``, ``device``.

    Returns
    -------
    BatchSummary
    """
    import shutil

    ray = require_ray()
    tally = RowTally()  # the job's clock starts here
    paths = expand_inputs(inputs, path_column=path_column)
    if overwrite and Path(out).is_dir():
        shutil.rmtree(out)
    model = recognizer_options.get("model")
    labels = JobConfig(model, "none").recognizer().labels
    writer = PartWriter(out, columns(labels), format)
    todo = [p for p in paths if p not in writer.done_paths()]
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        ds = ray.data.from_items([{"path": p} for p in todo])
        results = predict_dataset(
            ds,
            batch_size=chunk_size,
            concurrency=actors,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            threads=threads,
            **recognizer_options,
        )
        for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows = batch.to_pylist()
            tally.add(rows)
            writer.write(rows)
    return tally.summary(out, len(todo), len(paths) - len(todo))


def predict_videos_ray(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    detector: str | None = None,
    detector_options: Mapping[str, Any] | None = None,
    device: str | None = None,
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    threads: int | None = None,
    **stream_options: Any,
) -> list[dict]:
    """:func:`emotionkit.batch.videos.predict_videos` with one Ray task per video (tracking and timeline per video).

    Parameters
    ----------
    inputs, out, model, detector, detector_options, device, **stream_options
        As for :func:`emotionkit.batch.videos.predict_videos`.
    address : str, optional
        Ray cluster address; default: the running Ray, else a local one.
    num_cpus, num_gpus : float
        Resources per task.
    threads : int, optional
        Torch threads per task (default: ``num_cpus`` rounded, at least 1).

    Returns
    -------
    list of dict
        The summary of each video processed in this run, in input order.
    """
    from .batch.videos import expand_videos, pending_videos, record, timeline_for

    ray = require_ray()
    todo = pending_videos(expand_videos(inputs), out)
    if not todo:
        return []
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    config = JobConfig.create(model, detector, detector_options, device, threads or max(1, round(num_cpus)))
    task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(timeline_for)
    pending = [task.remote(video, os.fspath(out), config, dict(stream_options)) for video in todo]
    summaries = []
    for ref in pending:
        summary = ray.get(ref)
        record(out, summary)
        summaries.append(summary)
    return summaries
