"""Turn what a user names (a folder, a glob, a text file of paths, a table with a path column) into image paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from ..exceptions import ImageNotFoundError, InvalidDataError

__all__ = ["IMAGE_SUFFIXES", "expand_inputs"]

#: File suffixes a folder or glob contributes (lower case); a path list or table is taken as it is.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

_GLOB_CHARS = frozenset("*?[")


def expand_inputs(specs: str | os.PathLike | Iterable[str | os.PathLike], *, path_column: str = "path") -> list[str]:
    """Expand input specs into a list of image paths, in a stable order, without duplicates.

    Parameters
    ----------
    specs : str, os.PathLike or iterable of them
        Each is a folder (searched recursively for files with an image suffix, sorted), a glob pattern (``**``
        allowed), a ``.txt`` / ``.lst`` file with one path per line (blank lines and ``#`` comments skipped), a
        ``.csv`` or ``.parquet`` table with a column named ``path_column``, or one image file.
    path_column : str, default "path"
        The column of a CSV or Parquet table that holds the paths.

    Returns
    -------
    list of str
        Paths as written (relative paths stay relative), first occurrence kept.

    Raises
    ------
    ImageNotFoundError
        A spec that is neither an existing file or folder nor a glob that matches anything.
    InvalidDataError
        A table without the path column.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    seen: dict[str, None] = {}
    for spec in specs:
        for path in _expand_one(os.fspath(spec), path_column):
            seen.setdefault(path, None)
    return list(seen)


def _expand_one(spec: str, path_column: str) -> list[str]:
    path = Path(spec)
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".txt", ".lst"):
            return _read_path_list(path)
        if suffix in (".csv", ".parquet"):
            return _read_table(path, path_column)
        return [spec]
    if _GLOB_CHARS & set(spec):
        matches = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not matches:
            raise ImageNotFoundError(
                f"The pattern {spec!r} matches no image file ({', '.join(sorted(IMAGE_SUFFIXES))})."
            )
        return matches
    raise ImageNotFoundError(
        f"Input not found: {spec!r}. Pass a folder, a glob such as 'photos/**/*.jpg', a .txt file of paths, "
        f"a .csv/.parquet table with a {path_column!r} column, or an image file."
    )


def _read_path_list(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _read_table(path: Path, path_column: str) -> list[str]:
    if path.suffix.lower() == ".csv":
        import csv

        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if path_column not in columns:
                raise _no_column(path, path_column, columns)
            return [row[path_column] for row in reader if row[path_column]]
    from .sink import import_pyarrow

    pq = import_pyarrow().parquet
    table = pq.read_table(path)
    if path_column not in table.column_names:
        raise _no_column(path, path_column, table.column_names)
    return [str(p) for p in table.column(path_column).to_pylist() if p]


def _no_column(path: Path, column: str, columns: Iterable[str]) -> InvalidDataError:
    return InvalidDataError(
        f"The table {str(path)!r} has no column {column!r} (its columns: {', '.join(columns) or 'none'}). "
        "Name the column that holds the paths with --path-column."
    )
