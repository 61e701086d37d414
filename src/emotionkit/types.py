"""Result types and the canonical label order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EMOTIONS", "Detection", "FaceEmotion", "BatchResults"]

#: The canonical class order of every emotionkit model (FER-2013's label order).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Detection:
    """One face found by a :class:`~emotionkit.interfaces.FaceDetector`.

    Parameters
    ----------
    box : tuple of float
        ``(x1, y1, x2, y2)`` in input-image pixels, clipped to the image.
    score : float
        Detector confidence in [0, 1].
    landmarks : tuple of (x, y) pairs, optional
        Five landmarks (left eye, right eye, nose, left mouth corner, right mouth corner)
        in input-image pixels, or ``None`` when the detector gives none.
    """

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> float:
        """Width of the box in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Height of the box in pixels."""
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary.

        Returns
        -------
        dict
            ``box`` (list of 4 floats), ``score`` and ``landmarks`` (list of ``[x, y]`` or ``None``).
        """
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": None
            if self.landmarks is None
            else [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class FaceEmotion:
    """The emotions of one face.

    Parameters
    ----------
    detection : Detection
        Where the face is.
    scores : mapping of str to float
        Probability of every class, in the model's label order; sums to 1.
    label : str
        The most probable class.
    heatmap : numpy.ndarray, optional
        An explanation in [0, 1] on the face crop's pixel grid, set only by
        :meth:`~emotionkit.EmotionRecognizer.explain`.
    """

    detection: Detection
    scores: Mapping[str, float]
    label: str
    heatmap: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Shortcut for ``detection.box``."""
        return self.detection.box

    @property
    def confidence(self) -> float:
        """Probability of the top label."""
        return float(self.scores[self.label])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary (the heatmap is left out).

        Returns
        -------
        dict
            The detection's fields (:meth:`Detection.to_dict`) plus ``label`` and ``scores``.
        """
        out = self.detection.to_dict()
        out["label"] = self.label
        out["scores"] = {k: round(float(v), 6) for k, v in self.scores.items()}
        return out


class BatchResults(list[list[FaceEmotion]]):
    """What :meth:`~emotionkit.EmotionRecognizer.predict_batch` returns: a list with one list of faces per image.

    Always in input order and as long as the input. With ``errors="skip"``, an image that
    could not be read has an empty list here and its error in :attr:`errors`.

    Parameters
    ----------
    results : iterable of list of FaceEmotion
        One list per image.
    errors : mapping of int to Exception, optional
        Input index of each skipped image, and why it was skipped.

    Examples
    --------
    >>> batch = BatchResults([[], []], {1: ValueError("truncated")})
    >>> len(batch), batch.ok
    (2, [True, False])
    """

    def __init__(self, results: Iterable[list[FaceEmotion]] = (), errors: Mapping[int, Exception] | None = None):
        super().__init__(results)
        #: Input index of each image skipped with ``errors="skip"``, and its error; empty otherwise.
        self.errors: dict[int, Exception] = dict(errors or {})

    @property
    def ok(self) -> list[bool]:
        """Per image: whether it was read (``False`` for the ones in :attr:`errors`)."""
        return [i not in self.errors for i in range(len(self))]
