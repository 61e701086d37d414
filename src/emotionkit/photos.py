"""Photos in, one result per face out: the pipeline behind :meth:`EmotionRecognizer.predict_batch` and ``explain``.

Checking that a batch is a sequence of images, reading it with the chosen error policy, finding faces, warning
when face crops went through a face detector, cropping, classifying all faces in one pass of the inference
core (or explaining them), and turning probabilities back into per-photo results. The recognizer only
chooses the detector; everything here works on an :class:`~emotionkit.inference.InferenceModel`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from .exceptions import EmotionKitError, EmotionKitWarning, InvalidImageError, InvalidOptionError
from .explainers import checked_explainer, explain_tensor
from .inference import InferenceModel
from .interfaces import FaceDetector
from .io import ImageInput, decode_image, to_uint8_rgb
from .types import BatchResults, Detection, FaceEmotion

__all__ = ["predict_photos", "explain_photo", "read_batch", "warn_if_crops", "face_results"]


def predict_photos(
    core: InferenceModel,
    detector: FaceDetector,
    images: Sequence[ImageInput],
    errors: Literal["raise", "skip"] = "raise",
    *,
    warn_crops: bool = True,
) -> BatchResults:
    """Read, detect, crop and classify every face of many photos, all faces in one pass of ``core``.

    Parameters
    ----------
    core : InferenceModel
        Preprocesses the crops and classifies them.
    detector : FaceDetector
        Finds the faces (a whole-image detector makes each photo one face).
    images : sequence
        Paths, PIL images or arrays (a list or tuple).
    errors : {"raise", "skip"}, default "raise"
        As :func:`read_batch`.
    warn_crops : bool, default True
        Warn (:func:`warn_if_crops`) when small images hold no face; off for a whole-image detector.

    Returns
    -------
    BatchResults
        As :meth:`EmotionRecognizer.predict_batch`.
    """
    arrays, failed = read_batch(images, errors)
    detections = detector.detect_batch([to_uint8_rgb(a) for a in arrays])  # the same array for uint8 RGB
    if warn_crops:
        warn_if_crops(arrays, detections, core.preprocessor.size)  # type: ignore[arg-type]  # a pair by now
    crops = [core.preprocessor.crops(arr, dets) for arr, dets in zip(arrays, detections)]
    counts = [len(d) for d in detections]
    results: list[list[FaceEmotion]] = [[] for _ in arrays]
    if sum(counts):
        probs = core.probabilities(torch.cat(crops))
        ends = np.cumsum(counts).tolist()
        results = [
            face_results(d, probs[end - n : end], core.active_labels) for d, n, end in zip(detections, counts, ends)
        ]
    good = iter(results)
    return BatchResults([[] if i in failed else next(good) for i in range(len(images))], failed)


def explain_photo(
    core: InferenceModel, detector: FaceDetector, image: ImageInput, target: str | None, method: str, **options: Any
) -> list[FaceEmotion]:
    """Find, classify and explain every face of one photo (the options are checked before detection).

    Parameters
    ----------
    core : InferenceModel
        Classifies the crops; its torch model is explained.
    detector : FaceDetector
        Finds the faces.
    image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        The photo.
    target : str or None
        The class to explain, or ``None`` for each face's top label.
    method : str
        A registered explainer.
    **options
        Explainer options.

    Returns
    -------
    list of FaceEmotion
        As :meth:`EmotionRecognizer.explain`.
    """
    explainer = checked_explainer(core, method, target, **options)
    array = decode_image(image)
    detections = detector.detect(to_uint8_rgb(array))
    if not detections:
        return []
    probs, maps = explain_tensor(core, explainer, core.preprocessor.crops(array, detections), target)
    return [
        replace(face, heatmap=heatmap)
        for face, heatmap in zip(face_results(detections, probs, core.active_labels), maps)
    ]


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
        The readable images as :func:`~emotionkit.io.decode_image` returns them (grey stays grey,
        uint16 and float keep their precision), and the index and error of each skipped one.

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
            arrays.append(decode_image(image))
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
            stacklevel=6,
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
