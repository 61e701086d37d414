"""The ``none`` detector: the whole image is one face (for FER-style crops)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..interfaces import DetectorSpec
from ..types import Detection

__all__ = ["WholeImageDetector", "SPEC"]


class WholeImageDetector:
    """Return one detection covering the whole image, score 1, no landmarks.

    Examples
    --------
    >>> WholeImageDetector().detect(np.zeros((48, 40, 3), np.uint8))[0].box
    (0.0, 0.0, 40.0, 48.0)
    """

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Return ``[Detection((0, 0, W, H), 1.0)]``.

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 3)`` image.

        Returns
        -------
        list of Detection
            One detection covering the whole image, score 1, no landmarks.
        """
        h, w = image.shape[:2]
        return [Detection((0.0, 0.0, float(w), float(h)), 1.0, None)]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Return one whole-image detection per image.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            ``(H, W, 3)`` images.

        Returns
        -------
        list of list of Detection
            ``[[Detection((0, 0, W, H), 1.0)], ...]``, one list per image.
        """
        return [self.detect(im) for im in images]


def _build(device: Any = None, **options: Any) -> WholeImageDetector:
    if options:
        raise TypeError(f"The 'none' detector takes no options, got {sorted(options)}.")
    return WholeImageDetector()


#: The ``none`` entry of the ``emotionkit.detectors`` group.
SPEC = DetectorSpec(
    name="none", build=_build, description="No detection: the whole image is one face (FER-style crops)."
)
