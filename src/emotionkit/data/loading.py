"""One entry point for every dataset layout: the FER-2013 CSV or a class-per-folder image tree."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..exceptions import ImageNotFoundError
from .fer2013 import FaceDataset, default_data_dir, read_fer2013
from .folders import read_image_folder
from .splits import canonical_usage

__all__ = ["load_dataset", "is_csv_source"]


def is_csv_source(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is a FER-2013-style CSV (``.csv``, ``.csv.gz``) or a folder holding one.

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
        CSV: the first ``limit`` kept rows; image tree: at most ``limit`` images per class folder.
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
        return read_fer2013(p, usage=usage, limit=limit)
    return read_image_folder(p, usage=usage, max_per_class=limit, **folder_options)
