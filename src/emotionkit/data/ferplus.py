"""FER+ votes for FER-2013 rows: ten annotators per face (Barsoum et al., ICMI 2016), row-aligned with the CSV.

``ferplus/ferplus_votes.csv.gz`` (beside ``fer2013/`` under ``$EMOTIONKIT_DATA``) has one line per
FER-2013 data row, in the same order: ``row`` (0-based data-row index), ``Usage``, ``fer2013_label``,
``ferplus_image`` and the vote counts of ``neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF``. The 159 rows that FER+ dropped have empty vote columns.

- :func:`read_ferplus` reads it, checking each row's Usage and label against FER-2013's;
- :meth:`FerPlusVotes.for_ids` aligns it with a :class:`~emotionkit.data.fer2013.FaceDataset` by its ids
  (1-based CSV data-row numbers);
- :func:`vote_distribution`: the votes of the seven FER-2013 classes, normalised (soft targets);
- :func:`majority_labels`: the FER+ paper's majority rule; :func:`relabel_by_majority` applies it to a
  dataset, for scoring.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import ImageNotFoundError, InvalidDataError
from ..types import EMOTIONS
from .fer2013 import FaceDataset, default_data_dir

__all__ = [
    "FERPLUS_COLUMNS",
    "FerPlusVotes",
    "ferplus_path",
    "read_ferplus",
    "vote_distribution",
    "majority_labels",
    "contempt_majority",
    "relabel_by_majority",
]

#: The vote columns of the FER+ file, in its order.
FERPLUS_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
# FER+ column of each FER-2013 class, in EMOTIONS order (angry, disgust, fear, happy, sad, surprise, neutral).
_TO_FER2013 = {"angry": 4, "disgust": 5, "fear": 6, "happy": 1, "sad": 3, "surprise": 2, "neutral": 0}
_CONTEMPT = 7


@dataclass(frozen=True)
class FerPlusVotes:
    """FER+ votes of FER-2013 rows.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(N,)`` 0-based FER-2013 data-row indices.
    votes : numpy.ndarray
        ``(N, 10)`` float32 vote counts in :data:`FERPLUS_COLUMNS` order; zeros where FER+ dropped the row.
    present : numpy.ndarray
        ``(N,)`` bool: FER+ kept the row (it has votes).
    usage : numpy.ndarray
        ``(N,)`` FER-2013 Usage of each row.
    fer2013_labels : numpy.ndarray
        ``(N,)`` the FER-2013 label copied into each line (a check that the files line up).
    """

    rows: np.ndarray
    votes: np.ndarray
    present: np.ndarray
    usage: np.ndarray
    fer2013_labels: np.ndarray

    def for_ids(self, ids: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Votes of the rows of a FER-2013 dataset, by its 1-based CSV data-row ids.

        Parameters
        ----------
        ids : numpy.ndarray
            :attr:`FaceDataset.ids` of a dataset read by :func:`~emotionkit.data.fer2013.read_fer2013`.
        labels : numpy.ndarray, optional
            The dataset's FER-2013 labels: each must equal the label the FER+ file copied for
            its row (the files line up).

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``(len(ids), 10)`` votes and the ``(len(ids),)`` mask of rows FER+ kept.

        Raises
        ------
        InvalidDataError
            An id without a FER+ line (e.g. a PrivateTest row, or ids that are not CSV row numbers),
            or a label that differs from the FER+ file's copy of it.
        """
        index = np.asarray(ids, dtype=np.int64) - 1
        position = np.full(int(self.rows.max()) + 1, -1, np.int64)
        position[self.rows] = np.arange(self.rows.shape[0])
        bad = (index < 0) | (index >= position.shape[0])
        found = np.where(bad, -1, position[np.clip(index, 0, position.shape[0] - 1)])
        if (found < 0).any():
            missing = (index[found < 0] + 1)[:5].tolist()
            raise InvalidDataError(
                f"FER+ has no votes for FER-2013 row id(s) {missing} ({int((found < 0).sum())} in all): it covers "
                "the Training and PublicTest rows of fer2013.csv.gz, by their 1-based data-row ids."
            )
        if labels is not None:
            wrong = np.flatnonzero(self.fer2013_labels[found] != np.asarray(labels))
            if wrong.size:
                raise InvalidDataError(
                    f"FER-2013 row id(s) {(index[wrong] + 1)[:5].tolist()} ({wrong.size} in all) carry other labels "
                    "than the FER+ file's copy: the CSV and the votes do not line up (another fer2013.csv?)."
                )
        return self.votes[found], self.present[found]


def ferplus_path(data_dir: str | os.PathLike | None = None) -> Path:
    """Return ``ferplus/ferplus_votes.csv.gz`` under ``data_dir`` (default ``$EMOTIONKIT_DATA``).

    ``data_dir`` may also be the votes file itself, or the FER-2013 CSV (``.../fer2013/fer2013.csv.gz``):
    then the votes are looked for beside its ``fer2013/`` folder.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder holding ``ferplus/``, the votes file, or the FER-2013 CSV.

    Returns
    -------
    pathlib.Path
        The votes file.

    Raises
    ------
    ImageNotFoundError
        The file is not there; the message names where it looked.
    """
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base.is_file() and not base.name.startswith("ferplus_votes"):  # the FER-2013 CSV
        base = base.parent.parent if base.parent.name == "fer2013" else base.parent
    for candidate in (base, base / "ferplus_votes.csv.gz", base / "ferplus" / "ferplus_votes.csv.gz"):
        if candidate.is_file():
            return candidate
    raise ImageNotFoundError(
        f"FER+ votes not found under {str(base)!r} (looked for ferplus/ferplus_votes.csv.gz). Set EMOTIONKIT_DATA "
        "to the folder that holds fer2013/ and ferplus/, or pass the file."
    )


def read_ferplus(path: str | os.PathLike | None = None) -> FerPlusVotes:
    """Read the FER+ votes file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The file or a folder holding ``ferplus/``; default :func:`ferplus_path`.

    Returns
    -------
    FerPlusVotes

    Raises
    ------
    InvalidDataError
        A header other than the documented one, or a row with a non-integer vote; the message names the row.
    """
    p = ferplus_path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    rows, usages, labels, votes, present = [], [], [], [], []
    with opener(p, "rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(reader, [])
        if tuple(header[4:14]) != FERPLUS_COLUMNS or header[:2] != ["row", "Usage"]:
            raise InvalidDataError(
                f"{p.name}: header {header} is not row,Usage,fer2013_label,ferplus_image,{','.join(FERPLUS_COLUMNS)}."
            )
        for line_number, row in enumerate(reader, start=2):
            try:
                rows.append(int(row[0]))
                usages.append(row[1])
                labels.append(int(row[2]))
                cells = row[4:14]
                kept = bool(row[3]) and all(c != "" for c in cells)
                votes.append([float(c) for c in cells] if kept else [0.0] * len(FERPLUS_COLUMNS))
                present.append(kept)
            except (ValueError, IndexError) as exc:
                raise InvalidDataError(f"{p.name} line {line_number}: cannot read {row[:4]}... ({exc}).") from exc
    return FerPlusVotes(
        np.asarray(rows, np.int64),
        np.asarray(votes, np.float32),
        np.asarray(present, bool),
        np.asarray(usages),
        np.asarray(labels, np.int64),
    )


def vote_distribution(votes: np.ndarray, classes: tuple[str, ...] = EMOTIONS) -> tuple[np.ndarray, np.ndarray]:
    """Normalised votes over ``classes`` (FER-2013's seven): soft targets.

    Contempt, unknown and not-a-face votes are left out before normalising.

    Parameters
    ----------
    votes : numpy.ndarray
        ``(N, 10)`` counts in :data:`FERPLUS_COLUMNS` order.
    classes : tuple of str
        Class names; each must be one of :data:`~emotionkit.EMOTIONS`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(N, len(classes))`` float32 distributions (rows sum to 1) and the ``(N,)`` mask of rows
        with at least one vote for those classes (other rows are all zero).

    Raises
    ------
    InvalidDataError
        A class that is not one of FER-2013's seven.

    Examples
    --------
    >>> v = np.zeros((2, 10), np.float32); v[0, [0, 1, 7]] = [6, 2, 2]; v[1, 9] = 10
    >>> dist, ok = vote_distribution(v)
    >>> dist[0].round(2).tolist(), ok.tolist()
    ([0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.75], [True, False])
    """
    try:
        columns = [_TO_FER2013[c] for c in classes]
    except KeyError as exc:
        raise InvalidDataError(
            f"FER+ votes exist for the FER-2013 classes {', '.join(EMOTIONS)}; got class {exc.args[0]!r}."
        ) from exc
    counts = np.asarray(votes, np.float32)[:, columns]
    total = counts.sum(1, keepdims=True)
    ok = total[:, 0] > 0
    return np.where(total > 0, counts / np.maximum(total, 1e-9), 0.0).astype(np.float32), ok


def majority_labels(votes: np.ndarray, classes: tuple[str, ...] = EMOTIONS) -> np.ndarray:
    """The FER+ majority rule: class indices into ``classes``, or -1 where FER+ scoring leaves the face out.

    Categories with a single vote are dropped; the label is the category with more than half of the
    remaining votes. Faces whose majority is ``unknown`` or ``NF``, or that have no majority, are left
    out (-1), as in the FER+ paper; so are faces whose majority is ``contempt``, a class FER-2013's
    seven-class models cannot predict (:func:`contempt_majority` counts them).

    Parameters
    ----------
    votes : numpy.ndarray
        ``(N, 10)`` counts in :data:`FERPLUS_COLUMNS` order (all-zero rows: left out).
    classes : tuple of str
        The model's classes.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` int64.

    Raises
    ------
    InvalidDataError
        A class that is not one of FER-2013's seven.

    Examples
    --------
    >>> v = np.array([[6, 3, 1, 0, 0, 0, 0, 0, 0, 0],   # neutral 6 of 9 after the single vote goes
    ...               [4, 4, 0, 0, 0, 0, 0, 0, 2, 0],   # no majority
    ...               [1, 0, 0, 0, 0, 0, 0, 0, 9, 0],   # unknown
    ...               [0, 0, 5, 0, 0, 0, 4, 0, 0, 1]])  # surprise 5 of 9
    >>> majority_labels(v).tolist()
    [6, -1, -1, 5]
    """
    counts = np.asarray(votes, np.float32).copy()
    counts[counts <= 1] = 0.0
    total = counts.sum(1)
    top = counts.argmax(1)
    has_majority = (total > 0) & (counts.max(1) > total / 2.0)
    out = np.full(counts.shape[0], -1, np.int64)
    for i, name in enumerate(classes):
        if name not in _TO_FER2013:
            raise InvalidDataError(f"FER+ scores the FER-2013 classes {', '.join(EMOTIONS)}; got class {name!r}.")
        out[has_majority & (top == _TO_FER2013[name])] = i
    return out


def contempt_majority(votes: np.ndarray) -> np.ndarray:
    """Mask of faces whose FER+ majority (see :func:`majority_labels`) is ``contempt``.

    Parameters
    ----------
    votes : numpy.ndarray
        ``(N, 10)`` counts in :data:`FERPLUS_COLUMNS` order.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` bool.

    Examples
    --------
    >>> contempt_majority(np.array([[2, 0, 0, 0, 0, 0, 0, 7, 1, 0]])).tolist()
    [True]
    """
    counts = np.asarray(votes, np.float32).copy()
    counts[counts <= 1] = 0.0
    total = counts.sum(1)
    return (total > 0) & (counts.max(1) > total / 2.0) & (counts.argmax(1) == _CONTEMPT)


def relabel_by_majority(data: FaceDataset, votes: FerPlusVotes) -> tuple[FaceDataset, dict[str, int]]:
    """The faces of a FER-2013 dataset that FER+ scoring keeps, labelled by the FER+ majority rule.

    Parameters
    ----------
    data : FaceDataset
        FER-2013 rows (e.g. PublicTest) read by :func:`~emotionkit.data.fer2013.read_fer2013`.
    votes : FerPlusVotes
        What :func:`read_ferplus` returns.

    Returns
    -------
    (FaceDataset, dict)
        The kept faces with their majority labels, and the counts ``n`` (kept), ``rows``,
        ``no_votes`` (dropped by FER+), ``contempt`` (contempt majority) and ``left_out``
        (no majority, unknown or not a face).

    Raises
    ------
    InvalidDataError
        The dataset has no row ids, rows FER+ does not cover, or labels that do not line up with the votes file.
    """
    if data.ids is None:
        raise InvalidDataError("FER+ votes are found by FER-2013 row ids; this dataset has none.")
    counts, present = votes.for_ids(data.ids, data.labels)
    labels = majority_labels(counts, tuple(data.classes))
    keep = np.flatnonzero(labels >= 0)
    contempt = int((present & contempt_majority(counts)).sum())
    kept = FaceDataset(
        data.images[keep],
        labels[keep],
        data.classes,
        None if data.usage is None else data.usage[keep],
        data.ids[keep],
    )
    info = {
        "n": int(keep.size),
        "rows": len(data),
        "no_votes": int((~present).sum()),
        "contempt": contempt,
        "left_out": int(len(data) - keep.size - (~present).sum() - contempt),
    }
    return kept, info
