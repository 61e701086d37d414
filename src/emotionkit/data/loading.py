"""One entry point for every dataset layout: the FER-2013 CSV or a class-per-folder image tree."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..exceptions import ImageNotFoundError
from .fer2013 import FaceDataset, default_data_dir, read_fer2013
from .folders import read_image_folder
from .splits import DataSplits, canonical_usage, split_dataset

__all__ = ["load_dataset", "load_splits", "concatenate", "is_csv_source"]


def is_csv_source(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is a FER-2013-style CSV (``.csv``, ``.csv.gz``) or a folder holding one.

    Parameters
    ----------
    path : str or os.PathLike
        A file or folder.

    Returns
    -------
    bool
        ``True`` for a CSV file name or a folder with ``fer2013.csv[.gz]`` (directly or in ``fer2013/``).

    Examples
    --------
    >>> is_csv_source("fer2013.csv.gz"), is_csv_source("/nonexistent/images")
    (True, False)
    """
    p = Path(path)
    if p.name.lower().endswith((".csv", ".csv.gz")):
        return True
    if p.is_dir():
        return any(
            (folder / name).is_file() for folder in (p, p / "fer2013") for name in ("fer2013.csv.gz", "fer2013.csv")
        )
    return False


def load_dataset(
    path: str | os.PathLike | None = None,
    *,
    usage: str | Sequence[str] | None = None,
    limit: int | None = None,
    **folder_options: Any,
) -> FaceDataset:
    """Load faces and labels from a FER-2013 CSV or an image tree, whichever ``path`` is.

    Parameters
    ----------
    path : str or os.PathLike, optional
        ``fer2013.csv[.gz]``, a folder holding it (or ``fer2013/`` with it), or a class-per-folder
        image tree (see :func:`~emotionkit.data.folders.read_image_folder`); default
        ``$EMOTIONKIT_DATA``.
    usage : str or sequence of str, optional
        Keep only these usages / split folders.
    limit : int, optional
        CSV: the first ``limit`` rows of each usage; image tree: at most ``limit`` images per
        class folder.
    **folder_options
        Passed to :func:`~emotionkit.data.folders.read_image_folder` (``detector="mtcnn"``,
        ``size``, ``ignore``...); not allowed for a CSV.

    Returns
    -------
    FaceDataset

    Raises
    ------
    ImageNotFoundError
        ``path`` does not exist.
    InvalidDataError
        Bad rows, folders or files (see the two readers).
    TypeError
        Folder options given for a CSV.
    """
    p = Path(path) if path is not None else default_data_dir()
    if not p.exists():
        raise ImageNotFoundError(
            f"Dataset not found: {str(p)!r}. Pass a FER-2013 CSV (.csv or .csv.gz), a folder holding fer2013/, "
            "or an image tree root/<emotion>/*.jpg (or root/train/<emotion>/*.jpg); or set EMOTIONKIT_DATA."
        )
    if is_csv_source(p):
        options = {k: v for k, v in folder_options.items() if v is not None}
        if options:
            raise TypeError(f"Options {sorted(options)} apply to image folders, not to the CSV {str(p)!r}.")
        if usage is not None:
            names = [usage] if isinstance(usage, str) else list(usage)
            usage = [canonical_usage(u) or u for u in names]
        return read_fer2013(p, usage=usage, limit_per_usage=limit)
    return read_image_folder(p, usage=usage, max_per_class=limit, **folder_options)


def concatenate(parts: Sequence[FaceDataset]) -> FaceDataset:
    """Join datasets with the same classes (usages and ids kept when every part has them).

    Parameters
    ----------
    parts : sequence of FaceDataset
        Datasets with identical ``classes``.

    Returns
    -------
    FaceDataset
        The rows of every part, in order.

    Raises
    ------
    ValueError
        No parts, or parts with different classes.

    Examples
    --------
    >>> a = FaceDataset(np.zeros((2, 4, 4), np.uint8), np.array([0, 1]))
    >>> len(concatenate([a, a]))
    4
    """
    if not parts:
        raise ValueError("concatenate needs at least one dataset.")
    classes = parts[0].classes
    if any(p.classes != classes for p in parts):
        raise ValueError(f"Cannot join datasets with different classes: {[p.classes for p in parts]}.")

    def join(name: str) -> np.ndarray | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return FaceDataset(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        classes,
        join("usage"),
        join("ids"),
    )


def load_splits(
    path: str | os.PathLike | None = None,
    method: Literal["official", "stratified"] = "official",
    *,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    val_fraction: float = 0.1,
    seed: int = 0,
    drop_duplicates: bool = False,
    limit: int | None = None,
    **folder_options: Any,
) -> DataSplits:
    """Load a dataset and split it (before any augmentation) into training, validation and test parts.

    Parameters
    ----------
    path : str or os.PathLike, optional
        As :func:`load_dataset`.
    method, fractions, val_fraction, seed, drop_duplicates
        As :func:`~emotionkit.data.splits.split_dataset`.
    limit : int, optional
        CSV: the first ``limit`` rows of each usage (one pass); image tree: at most
        ``limit`` images per class folder. For quick runs and tests.
    **folder_options
        As :func:`load_dataset`.

    Returns
    -------
    DataSplits
        Its ``settings`` also record ``data`` (the path) and ``limit``.
    """
    p = Path(path) if path is not None else default_data_dir()
    data = load_dataset(p, limit=limit, **folder_options)
    splits = split_dataset(
        data, method, fractions=fractions, val_fraction=val_fraction, seed=seed, drop_duplicates=drop_duplicates
    )
    splits.settings.update({"data": str(p), "limit": limit})
    return splits
