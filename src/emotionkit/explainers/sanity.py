"""Sanity checks for explanations: mass in face regions, and the model-randomisation test.

The model-randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018):
an explanation that depends on what the model learned must change when the learned weights
are replaced by a fresh random initialisation of the same architecture. Agreement is measured
by the Spearman rank correlation between the two heatmaps of each face.

The face regions are horizontal bands of an aligned face crop, as fractions of its height.
On the mean FER-2013 PublicTest face the darkest rows (the eyes) are rows 15-19 of 48 and the
mouth is around rows 36-40, hence :data:`EYE_REGION` (eyebrows and eyes) and :data:`LOWER_THIRD`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..recognizer import EmotionRecognizer

__all__ = ["LOWER_THIRD", "EYE_REGION", "region_mass", "rank_correlation", "randomized_copy", "randomization_check"]

#: Rows of the mouth and chin: the lower third of the crop.
LOWER_THIRD: tuple[float, float] = (2 / 3, 1.0)
#: Rows of the eyebrows and eyes: from a quarter to half of the crop's height.
EYE_REGION: tuple[float, float] = (0.25, 0.5)


def region_mass(heatmaps: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    """Return the fraction of each heatmap's total mass that lies in a horizontal band.

    Parameters
    ----------
    heatmaps : numpy.ndarray
        ``(N, H, W)`` non-negative maps.
    rows : (float, float)
        The band ``[start, stop)`` as fractions of the height; a uniform map has mass ``stop - start``
        (up to rounding to whole rows).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` in [0, 1]; NaN for an all-zero map.

    Raises
    ------
    ValueError
        ``heatmaps`` is not 3-D.

    Examples
    --------
    >>> region_mass(np.ones((1, 48, 48)), LOWER_THIRD).round(3).tolist()
    [0.333]
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"Expected heatmaps of shape (N, H, W), got {maps.shape}.")
    height = maps.shape[1]
    start, stop = round(rows[0] * height), round(rows[1] * height)
    total = maps.sum(axis=(1, 2))
    band = maps[:, start:stop].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, band / np.where(total > 0, total, 1.0), np.nan)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the Spearman rank correlation of each pair of maps (ties get average ranks).

    A constant map has no ranking; its correlation with anything is reported as 0
    (it shares no spatial structure with the other map).

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(N, H, W)`` maps.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` in [-1, 1].

    Raises
    ------
    ValueError
        ``a`` and ``b`` differ in shape.

    Examples
    --------
    >>> m = np.arange(16.0).reshape(1, 4, 4)
    >>> rank_correlation(m, m ** 2).tolist(), rank_correlation(m, -m).tolist()
    ([1.0], [-1.0])
    """
    from scipy.stats import rankdata

    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if x.shape != y.shape:
        raise ValueError(f"Maps must have the same shape, got {np.shape(a)} and {np.shape(b)}.")
    rx = rankdata(x, axis=1)
    ry = rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0)


def randomized_copy(recognizer: EmotionRecognizer, seed: int = 0) -> EmotionRecognizer:
    """Return the same architecture and preprocessing with freshly initialised (untrained) weights.

    Parameters
    ----------
    recognizer : EmotionRecognizer
        A trained recognizer built from a registered backbone.
    seed : int, default 0
        Seed of the new initialisation.

    Returns
    -------
    EmotionRecognizer
    """
    from ..recognizer import EmotionRecognizer, build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = recognizer.inference.outputs  # every output head's columns
        model = build_backbone(recognizer.backbone_name, recognizer.backbone_config, num_classes=width)
    copy = EmotionRecognizer(
        model,
        recognizer.preprocessor,
        None,
        backbone_name=recognizer.backbone_name,
        backbone_config=recognizer.backbone_config,
        labels=recognizer.labels,
        device=recognizer.device,
        heads=recognizer.heads,
    )
    copy.head = recognizer.head
    return copy


def randomization_check(
    recognizer: EmotionRecognizer, faces: np.ndarray, method: str = "gradcam", *, seed: int = 0, **options: Any
) -> dict[str, np.ndarray]:
    """Compare the heatmaps of a trained model with those of the same architecture re-initialised.

    Both explain the class the trained model predicts for each face.

    Parameters
    ----------
    recognizer : EmotionRecognizer
        The trained model.
    faces : numpy.ndarray
        ``(N, H, W)`` or ``(N, H, W, C)`` face crops.
    method : str, default "gradcam"
        The explainer.
    seed : int, default 0
        Seed of the re-initialisation.
    **options
        Explainer options.

    Returns
    -------
    dict
        ``"trained"`` and ``"random"`` ``(N, H, W)`` heatmaps, ``"correlation"`` ``(N,)`` Spearman
        correlations between them, and ``"baseline"`` ``(N,)`` correlations between the trained
        heatmaps of face *i* and face *i + 1* (how alike the maps of two different faces are).
    """
    predicted = recognizer.predict_proba(faces).argmax(axis=1)
    random_model = randomized_copy(recognizer, seed)
    trained = _explain_classes(recognizer, faces, predicted, method, **options)
    random = _explain_classes(random_model, faces, predicted, method, **options)
    return {
        "trained": trained,
        "random": random,
        "correlation": rank_correlation(trained, random),
        "baseline": rank_correlation(trained, np.roll(trained, -1, axis=0)),
    }


def _explain_classes(
    recognizer: EmotionRecognizer, faces: np.ndarray, classes: np.ndarray, method: str, **options: Any
) -> np.ndarray:
    from . import get_explainer

    explainer = get_explainer(method, recognizer.backbone_name, **options)
    x = recognizer.preprocessor.faces(faces).to(recognizer.device)
    return explainer(recognizer.model, x, [int(c) for c in classes])
