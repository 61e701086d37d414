"""Reading the official FER-2013 CSV (``emotion,pixels,Usage``; plain or gzip)."""

from __future__ import annotations

import csv
import gzip
import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import ImageNotFoundError, InvalidDataError
from ..types import EMOTIONS

__all__ = ["FaceDataset", "read_fer2013", "USAGES", "default_data_dir", "fer2013_path"]

#: The Usage values of the official CSV.
USAGES = ("Training", "PublicTest", "PrivateTest")
_SIDE = 48


@dataclass(frozen=True)
class FaceDataset:
    """Face crops with integer labels in the canonical :data:`~emotionkit.EMOTIONS` order.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, H, W)`` uint8 grayscale (or ``(N, H, W, 3)`` RGB).
    labels : numpy.ndarray
        ``(N,)`` int64 indices into ``classes``.
    classes : tuple of str
        Label names (the canonical order).
    usage : numpy.ndarray, optional
        ``(N,)`` split names from the source (FER-2013's Usage column).
    ids : numpy.ndarray, optional
        ``(N,)`` source identifiers (CSV row numbers or file paths), for error messages and reports.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = EMOTIONS
    usage: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray | Iterable[int]) -> FaceDataset:
        """Return the rows at ``index`` (a boolean mask or integer indices).

        Parameters
        ----------
        index : numpy.ndarray or iterable of int
            A boolean mask of length ``len(self)`` or row indices.

        Returns
        -------
        FaceDataset
            The selected rows, with their usages and ids.
        """
        index = np.asarray(index)
        return FaceDataset(
            self.images[index],
            self.labels[index],
            self.classes,
            None if self.usage is None else self.usage[index],
            None if self.ids is None else self.ids[index],
        )

    def class_counts(self) -> dict[str, int]:
        """Return the number of samples of each class, in class order.

        Returns
        -------
        dict of str to int
            Every class of :attr:`classes`, zero counts included.
        """
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(c) for name, c in zip(self.classes, counts)}


def default_data_dir() -> Path:
    """Return the data folder: ``$EMOTIONKIT_DATA``, else ``../shared/data`` from the working directory.

    It is the folder that holds ``fer2013/fer2013.csv.gz``.

    Returns
    -------
    pathlib.Path
        The folder (not checked for existence).
    """
    return Path(os.environ.get("EMOTIONKIT_DATA", os.path.join("..", "shared", "data")))


def fer2013_path(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the FER-2013 CSV inside ``data_dir`` (``fer2013.csv.gz`` or ``fer2013.csv``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder holding ``fer2013/`` (or the CSV itself); default :func:`default_data_dir`.

    Returns
    -------
    pathlib.Path
        The CSV found.

    Raises
    ------
    ImageNotFoundError
        Neither file exists; the message names the folders searched and the setting to change.
    """
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    candidates = [base, base / "fer2013"] if base.is_dir() else []
    for folder in candidates:
        for name in ("fer2013.csv.gz", "fer2013.csv"):
            if (folder / name).is_file():
                return folder / name
    raise ImageNotFoundError(
        f"FER-2013 not found under {str(base)!r} (looked for fer2013/fer2013.csv.gz and fer2013.csv). "
        "Set EMOTIONKIT_DATA to the folder that holds fer2013/, or pass the CSV path."
    )


def read_fer2013(
    path: str | os.PathLike | None = None,
    *,
    usage: str | Iterable[str] | None = None,
    limit: int | None = None,
    limit_per_usage: int | None = None,
) -> FaceDataset:
    """Read the official FER-2013 CSV.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The CSV (plain or ``.gz``) or a folder holding it; default :func:`fer2013_path`.
    usage : str or iterable of str, optional
        Keep only these Usage values (``"Training"``, ``"PublicTest"``, ``"PrivateTest"``).
    limit : int, optional
        Stop after this many kept rows (for quick looks and tests).
    limit_per_usage : int, optional
        Keep at most this many rows of each Usage (e.g. the first 300 Training and the first
        300 PublicTest rows, in one pass).

    Returns
    -------
    FaceDataset
        ``images`` (N, 48, 48) uint8; ``ids`` are 1-based CSV data-row numbers.

    Raises
    ------
    InvalidDataError
        A row with the wrong pixel count, a non-integer pixel, an unknown label or Usage,
        or a missing column; the message names the row.
    """
    p = Path(path) if path is not None else fer2013_path()
    if p.is_dir():
        p = fer2013_path(p)
    if not p.is_file():
        raise ImageNotFoundError(
            f"FER-2013 CSV not found: {str(p)!r}. Pass the path to fer2013.csv(.gz) or set EMOTIONKIT_DATA."
        )
    wanted = None if usage is None else ({usage} if isinstance(usage, str) else set(usage))
    if wanted is not None and not wanted <= set(USAGES):
        raise InvalidDataError(f"Unknown usage {sorted(wanted - set(USAGES))}. Allowed: {', '.join(USAGES)}.")
    opener = gzip.open if p.suffix == ".gz" else open
    pixel_rows: list[str] = []
    labels: list[int] = []
    usages: list[str] = []
    ids: list[int] = []
    per_usage: dict[str, int] = {}
    with opener(p, "rb") as raw:
        lines = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        header = _split_row(next(lines, ""))
        if not header or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
            raise InvalidDataError(f"{str(p)!r} does not start with the header 'emotion,pixels,Usage' (got {header}).")
        for row_number, line in enumerate(lines, start=1):
            row = _split_row(line)
            if not row:  # a blank line, e.g. at the end of the file
                continue
            if len(row) < 3:
                raise InvalidDataError(
                    f"{p.name} row {row_number}: expected 3 columns (emotion,pixels,Usage), got {len(row)}."
                )
            label_text, pixels, row_usage = row[0], row[1], row[2].strip()
            if row_usage not in USAGES:
                raise InvalidDataError(
                    f"{p.name} row {row_number}: unknown Usage {row_usage!r}. Allowed: {', '.join(USAGES)}."
                )
            if wanted is not None and row_usage not in wanted:
                continue
            if limit_per_usage is not None:
                if per_usage.get(row_usage, 0) >= limit_per_usage:
                    if wanted is not None and all(per_usage.get(u, 0) >= limit_per_usage for u in wanted):
                        break
                    continue
                per_usage[row_usage] = per_usage.get(row_usage, 0) + 1
            pixel_rows.append(pixels)
            labels.append(_checked_label(label_text, pixels, f"{p.name} row {row_number}"))
            usages.append(row_usage)
            ids.append(row_number)
            if limit is not None and len(labels) >= limit:
                break
    if not labels:
        raise InvalidDataError(f"No rows read from {str(p)!r} (usage={usage!r}).")
    images = _parse_pixels(pixel_rows, ids, p.name)
    return FaceDataset(
        images,
        np.asarray(labels, dtype=np.int64),
        EMOTIONS,
        np.asarray(usages),
        np.asarray(ids),
    )


def _checked_label(label_text: str, pixels: str, where: str) -> int:
    """The row's emotion label, after checking it and the row's pixel count (``where`` names the row)."""
    try:
        label = int(label_text)
    except ValueError:
        label = -1
    if not 0 <= label < len(EMOTIONS):
        raise InvalidDataError(f"{where}: unknown emotion label {label_text!r}. Allowed: 0-6 ({', '.join(EMOTIONS)}).")
    count = pixels.strip().count(" ") + 1 if pixels.strip() else 0
    if count != _SIDE * _SIDE:
        raise InvalidDataError(f"{where}: expected {_SIDE * _SIDE} pixels (48x48), got {count}. Fix or drop that row.")
    return label


def _split_row(line: str) -> list[str]:
    """Split one CSV line; plain ``str.split`` (5x faster than :mod:`csv`) unless the line has quotes."""
    line = line.rstrip("\r\n")
    if not line:
        return []
    if '"' in line:
        return next(csv.reader([line]), [])
    return line.split(",")


def _parse_pixels(rows: list[str], ids: list[int], name: str) -> np.ndarray:
    """Parse all pixel strings at once (one C-level pass); name the first bad row on failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            flat = np.fromstring(" ".join(rows), dtype=np.int64, sep=" ") if rows else np.empty(0, np.int64)
        except ValueError:  # numpy >= 2.3 raises on a non-numeric token (older ones stopped early)
            flat = np.empty(0, np.int64)
    if flat.size != len(rows) * _SIDE * _SIDE or (flat.size and (flat.min() < 0 or flat.max() > 255)):
        for row_id, text in zip(ids, rows):  # slow path only to find and name the bad row
            try:
                values = np.array(text.split(), dtype=np.int64)
            except ValueError as exc:
                raise InvalidDataError(
                    f"{name} row {row_id}: pixels must be space-separated integers ({exc})."
                ) from exc
            except OverflowError as exc:  # a token of 19+ digits: no int64 holds it
                big = max(text.split(), key=len)
                raise InvalidDataError(
                    f"{name} row {row_id}: pixel values must be 0-255, got {big[:24]}{'...' if len(big) > 24 else ''}."
                ) from exc
            if values.min() < 0 or values.max() > 255:
                raise InvalidDataError(
                    f"{name} row {row_id}: pixel values must be 0-255, got {values.min()}..{values.max()}."
                )
            if values.size != _SIDE * _SIDE:
                raise InvalidDataError(
                    f"{name} row {row_id}: expected {_SIDE * _SIDE} pixels (48x48), got {values.size}. Fix or drop that row."
                )
        flat = np.concatenate([np.array(text.split(), dtype=np.int64) for text in rows])
    return flat.astype(np.uint8).reshape(-1, _SIDE, _SIDE)
