"""Draw detection boxes and "label (0.87)" captions on a photo.

Only Pillow is needed. For heatmap overlays see :mod:`emotionkit.visualize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .io import ImageInput, load_image
from .types import FaceEmotion

__all__ = ["COLORS", "annotate", "face_caption"]

#: Box colour of each canonical label (RGB); other labels are drawn in white.
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (230, 50, 50),
    "disgust": (120, 170, 40),
    "fear": (150, 80, 200),
    "happy": (250, 200, 20),
    "sad": (50, 120, 230),
    "surprise": (250, 130, 20),
    "neutral": (200, 200, 200),
}


def face_caption(face: FaceEmotion) -> str:
    """Return the caption of one face: its top label and that label's probability.

    Parameters
    ----------
    face : FaceEmotion
        A result of :meth:`emotionkit.EmotionRecognizer.predict`.

    Returns
    -------
    str
        ``"label (0.87)"``, the probability with two decimals.

    Examples
    --------
    >>> from emotionkit.types import Detection
    >>> face_caption(FaceEmotion(Detection((0, 0, 9, 9)), {"happy": 0.871, "sad": 0.129}, "happy"))
    'happy (0.87)'
    """
    return f"{face.label} ({face.confidence:.2f})"


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotate(
    image: ImageInput,
    faces: Sequence[FaceEmotion],
    *,
    color: tuple[int, int, int] | None = None,
    line_width: int | None = None,
    font_size: int | None = None,
    landmarks: bool = True,
) -> Image.Image:
    """Return a copy of ``image`` with each face's box, caption and landmarks drawn on it.

    The output has the input's size, so boxes stay in input pixels.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        The photo the faces were found in (anything :func:`emotionkit.io.load_image` accepts).
    faces : sequence of FaceEmotion
        What :meth:`emotionkit.EmotionRecognizer.predict` returned for ``image``.
    color : (int, int, int), optional
        One RGB colour for every box; by default each label has its own (:data:`COLORS`).
    line_width : int, optional
        Box line width in pixels; by default about 1/200 of the shorter image side, at least 1.
    font_size : int, optional
        Caption size in pixels; by default about 1/25 of the shorter side, at least 10.
    landmarks : bool, default True
        Draw the five landmarks as small dots when the detector gave them.

    Returns
    -------
    PIL.Image.Image
        An RGB image of the same size as the input.

    Raises
    ------
    ImageNotFoundError, InvalidImageError
        ``image`` is not a readable image.

    Examples
    --------
    >>> import numpy as np
    >>> from emotionkit.types import Detection
    >>> face = FaceEmotion(Detection((10, 20, 60, 80)), {"happy": 0.9, "sad": 0.1}, "happy")
    >>> annotate(np.zeros((100, 120, 3), np.uint8), [face]).size
    (120, 100)
    """
    pil = Image.fromarray(load_image(image))
    draw = ImageDraw.Draw(pil)
    short = min(pil.size)
    width = line_width if line_width is not None else max(1, round(short / 200))
    font = _font(font_size if font_size is not None else max(10, round(short / 25)))
    for face in faces:
        rgb = color or COLORS.get(face.label, (255, 255, 255))
        x1, y1, x2, y2 = (float(v) for v in face.box)
        draw.rectangle((x1, y1, x2, y2), outline=rgb, width=width)
        if landmarks and face.detection.landmarks:
            r = max(1.0, float(width))
            for px, py in face.detection.landmarks:
                draw.ellipse((px - r, py - r, px + r, py + r), fill=rgb)
        text = face_caption(face)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        pad = max(2, width)
        # Above the box when there is room, else just inside its top edge.
        ty = y1 - th - 2 * pad if y1 - th - 2 * pad >= 0 else y1
        tx = min(max(0.0, x1), max(0.0, pil.size[0] - tw - 2 * pad))
        draw.rectangle((tx, ty, tx + tw + 2 * pad, ty + th + 2 * pad), fill=rgb)
        ink = (0, 0, 0) if sum(rgb) > 380 else (255, 255, 255)
        draw.text((tx + pad - left, ty + pad - top), text, fill=ink, font=font)
    return pil
