"""The rows of a batch job: one per face, one per photo without a face, one per unreadable file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import EMOTIONS, FaceEmotion

__all__ = [
    "COLUMNS",
    "PROBABILITY_PREFIX",
    "ModelIdentity",
    "columns",
    "model_identity",
    "rows_for_faces",
    "rows_for_error",
]

#: Prefix of the columns that hold one class probability each (``prob_angry``, ...).
PROBABILITY_PREFIX = "prob_"


def columns(labels: Sequence[str] = EMOTIONS) -> tuple[str, ...]:
    """Every column of a result row, in order, for a model with these labels.

    ``face`` is the face's index in the photo (highest detection score first), empty for a photo without a face
    or a file that failed; ``error`` is empty unless the file failed.

    Parameters
    ----------
    labels : sequence of str, default EMOTIONS
        The model's class names; each gets a ``prob_<label>`` column.

    Returns
    -------
    tuple of str
    """
    head = ("path", "face", "x1", "y1", "x2", "y2", "detection_score", "label", "confidence")
    return (*head, *(PROBABILITY_PREFIX + label for label in labels), "model", "weights_sha256", "error")


#: The columns for the seven FER-2013 classes (every bundled model).
COLUMNS: tuple[str, ...] = columns()


@dataclass(frozen=True)
class ModelIdentity:
    """What every row says about the model that produced it.

    Parameters
    ----------
    name : str
        The bundled name, or the directory as given.
    weights_sha256 : str
        sha256 of the weights file it loaded.
    labels : tuple of str, default EMOTIONS
        Class names in output order.
    """

    name: str
    weights_sha256: str
    labels: tuple[str, ...] = EMOTIONS


def model_identity(name_or_dir: str | os.PathLike | None, labels: Sequence[str] = EMOTIONS) -> ModelIdentity:
    """Identify a bundled model name or a saved model directory by its weights' sha256.

    Parameters
    ----------
    name_or_dir : str, os.PathLike or None
        What :meth:`EmotionRecognizer.from_pretrained` was given (``None``: the default model).
    labels : sequence of str, default EMOTIONS
        The loaded model's class names.

    Returns
    -------
    ModelIdentity
        The model's name (or the directory as given) and the sha256 of the weights file it loads.
    """
    from ..recognizer import DEFAULT_MODEL
    from ..registry import load_plugin
    from ..weights import WEIGHTS_NAME, sha256sum

    name = DEFAULT_MODEL if name_or_dir is None else os.fspath(name_or_dir)
    folder = Path(name)
    if not folder.is_dir():
        folder = Path(load_plugin("backbones", name).weights[0].path)
    return ModelIdentity(name, sha256sum(folder / WEIGHTS_NAME), tuple(labels))


def _empty(path: str, model: ModelIdentity) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(columns(model.labels))
    row["path"], row["model"], row["weights_sha256"] = path, model.name, model.weights_sha256
    return row


def rows_for_faces(path: str, faces: Sequence[FaceEmotion], model: ModelIdentity) -> list[dict[str, Any]]:
    """Rows for one photo: one per face, or a single row with empty face columns when there is none.

    Parameters
    ----------
    path : str
        The photo's path, as the job's input named it.
    faces : sequence of FaceEmotion
        What :meth:`EmotionRecognizer.predict` returned for it.
    model : ModelIdentity
        From :func:`model_identity`.

    Returns
    -------
    list of dict
        Each with every key of :func:`columns` for the model's labels.
    """
    if not faces:
        return [_empty(path, model)]
    rows = []
    for index, face in enumerate(faces):
        row = _empty(path, model)
        row["face"] = index
        row["x1"], row["y1"], row["x2"], row["y2"] = (float(v) for v in face.box)
        row["detection_score"] = float(face.detection.score)
        row["label"], row["confidence"] = face.label, float(face.confidence)
        for label, value in face.scores.items():
            row[PROBABILITY_PREFIX + label] = float(value)
        rows.append(row)
    return rows


def rows_for_error(path: str, error: BaseException, model: ModelIdentity) -> list[dict[str, Any]]:
    """The single row of a file that could not be read or classified: its error type and message.

    Parameters
    ----------
    path : str
        The file's path.
    error : BaseException
        What reading or classifying it raised.
    model : ModelIdentity
        From :func:`model_identity`.

    Returns
    -------
    list of dict
        One row whose ``error`` is ``"TypeName: message"``.
    """
    row = _empty(path, model)
    row["error"] = f"{type(error).__name__}: {error}"
    return [row]
