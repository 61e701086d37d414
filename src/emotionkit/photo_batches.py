"""The steps of :meth:`EmotionRecognizer.predict_batch` around detection and classification.

Checking that a batch is a sequence of images, reading it with the chosen error policy, warning when face
crops went through a face detector, and turning probabilities back into per-photo results.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image

from .exceptions import EmotionKitError, EmotionKitWarning, InvalidImageError, InvalidOptionError
from .io import ImageInput, load_image
from .types import Detection, FaceEmotion

__all__ = ["read_batch", "warn_if_crops", "face_results"]


def read_batch(
    images: Sequence[ImageInput], errors: Literal["raise", "skip"]
) -> tuple[list[np.ndarray], dict[int, Exception]]:
    """Read every image of a batch.

    Parameters
    ----------
    images : sequence
        Paths, PIL images or arrays (a list or tuple, never one of them alone).
    errors : {"raise", "skip"}
        ``"raise"``: the first unreadable image's error; ``"skip"``: record it and go on.

    Returns
    -------
    (list of numpy.ndarray, dict of int to Exception)
        The readable images as ``(H, W, 3)`` uint8, and the index and error of each skipped one.

    Raises
    ------
    InvalidImageError
        ``images`` is one image rather than a sequence; with ``"raise"``, an invalid image.
    ImageNotFoundError
        With ``"raise"``, a missing path.
    InvalidOptionError
        ``errors`` is neither ``"raise"`` nor ``"skip"``.
    """
    if isinstance(images, (str, bytes, os.PathLike, np.ndarray, Image.Image)) or not isinstance(images, Sequence):
        what = f"the array of shape {images.shape}" if isinstance(images, np.ndarray) else repr(images)
        raise InvalidImageError(
            f"predict_batch takes a sequence (list, tuple) of images, got one {type(images).__name__}: "
            f"{what[:120]}. Use predict(image) for one image, or predict_batch([image]); for a batch of "
            "face crops in one array use predict_proba."
        )
    if errors not in ("raise", "skip"):
        raise InvalidOptionError(f"errors must be 'raise' or 'skip', got {errors!r}.")
    arrays: list[np.ndarray] = []
    failed: dict[int, Exception] = {}
    for i, image in enumerate(images):
        try:
            arrays.append(load_image(image))
        except EmotionKitError as exc:
            if errors == "raise":
                raise
            failed[i] = exc
    return arrays, failed


def warn_if_crops(
    arrays: Sequence[np.ndarray], detections: Sequence[Sequence[Detection]], size: tuple[int, int]
) -> None:
    """Warn once when the detector found nothing in images no larger than twice the model's input.

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        The images.
    detections : sequence of sequence of Detection
        What the detector found in each.
    size : tuple of int
        The model's input ``(height, width)``.

    Warns
    -----
    EmotionKitWarning
        Such images are probably face crops already, which ``detector="none"`` classifies.
    """
    size_h, size_w = size
    limit = 2 * max(size_h, size_w)
    small = [a.shape[:2] for a, d in zip(arrays, detections) if not d and max(a.shape[:2]) <= limit]
    if small:
        h, w = small[0]
        warnings.warn(
            f"No face found in {len(small)} image(s) no larger than twice the model's "
            f"{size_h}x{size_w} input (e.g. {h}x{w}). If they are face "
            "crops already, classify them without detection: detector='none' (--detector none), or predict_proba.",
            EmotionKitWarning,
            stacklevel=5,
        )


def face_results(detections: Sequence[Detection], probs: np.ndarray, labels: Sequence[str]) -> list[FaceEmotion]:
    """One :class:`FaceEmotion` per detection, from its row of probabilities.

    Parameters
    ----------
    detections : sequence of Detection
        The faces.
    probs : numpy.ndarray
        ``(len(detections), len(labels))`` probabilities.
    labels : sequence of str
        The class names, in the columns' order.

    Returns
    -------
    list of FaceEmotion
    """
    return [
        FaceEmotion(det, {label: float(v) for label, v in zip(labels, p)}, labels[int(np.argmax(p))])
        for det, p in zip(detections, probs)
    ]
