"""Draw tracked faces on a frame: box, label and confidence (:mod:`emotionkit.drawing`) plus the track id."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import ImageDraw, ImageFont

from .results import TrackedFace

__all__ = ["annotate_frame", "track_color"]

# Tableau-10: distinct colours, readable on photos.
_PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def track_color(track_id: int) -> tuple[int, int, int]:
    """Return a fixed RGB colour for a track id (10 colours, repeating).

    Parameters
    ----------
    track_id : int
        A track id, from 1.

    Returns
    -------
    (int, int, int)
        The RGB colour.

    Examples
    --------
    >>> track_color(1) == track_color(11)
    True
    """
    return _PALETTE[(track_id - 1) % len(_PALETTE)]


@lru_cache(maxsize=8)
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotate_frame(image: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
    """Return a copy of ``image`` with every face's box, ``label (0.87)`` caption and ``#id`` tag drawn on it.

    Boxes and captions come from :func:`emotionkit.drawing.annotate` (coloured by the smoothed
    label); the track id is drawn under each box in the track's own colour (:func:`track_color`).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB frame.
    faces : sequence of TrackedFace
        Faces to draw.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB; the input is not modified.

    Examples
    --------
    >>> annotate_frame(np.zeros((40, 60, 3), np.uint8), []).shape
    (40, 60, 3)
    """
    if not faces:
        return image.copy()
    from ..drawing import annotate

    canvas = annotate(image, [f.to_face_emotion() for f in faces])
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, round(min(canvas.size) / 25)))
    for face in faces:
        x1, _, _, y2 = face.box
        text = f"#{face.track_id}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        ty = y2 + 1 if y2 + th + 5 <= canvas.size[1] else y2 - th - 5
        tx = min(max(0.0, x1), max(0.0, canvas.size[0] - tw - 4))
        draw.rectangle((tx, ty, tx + tw + 4, ty + th + 4), fill=track_color(face.track_id))
        draw.text((tx + 2 - left, ty + 2 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)
