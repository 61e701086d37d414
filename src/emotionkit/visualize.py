"""Pictures of predictions and explanations: heatmap overlays on face crops and photos, sample grids.

Everything returns a :class:`PIL.Image.Image` (save it with ``.save("out.png")``). The default
colormap is a built-in jet-like lookup table, so matplotlib is needed only for other colormaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .exceptions import InvalidImageError, MissingDependencyError
from .explainers import heatmap_to_image
from .io import ImageInput, load_image, to_float01
from .preprocessing import FacePreprocessor
from .types import EMOTIONS, FaceEmotion

__all__ = ["colorize", "overlay_heatmap", "face_crops", "overlay_on_photo", "prediction_grid", "caption"]


def _jet(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] to a jet-like RGB ramp (blue, cyan, yellow, red) in [0, 1]."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    r = np.clip(1.5 - np.abs(4.0 * v - 3.0), 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * v - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - np.abs(4.0 * v - 1.0), 0.0, 1.0)
    return np.concatenate([r, g, b], axis=-1)


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Colour a heatmap in [0, 1].

    Parameters
    ----------
    heatmap : numpy.ndarray
        ``(H, W)`` values in [0, 1] (clipped).
    cmap : str, default "jet"
        ``"jet"`` (built in) or any matplotlib colormap name (needs matplotlib).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.

    Raises
    ------
    InvalidImageError
        ``heatmap`` is not 2-D.
    MissingDependencyError
        A matplotlib colormap was asked for and matplotlib is not installed.

    Examples
    --------
    >>> colorize(np.array([[0.0, 1.0]])).tolist()
    [[[0, 0, 128], [128, 0, 0]]]
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2:
        raise InvalidImageError(f"Expected a 2-D heatmap (H, W), got shape {hm.shape}.")
    hm = np.nan_to_num(np.clip(hm, 0.0, 1.0))
    if cmap == "jet":
        rgb = _jet(hm)
    else:
        try:
            from matplotlib import colormaps
        except ImportError as exc:
            raise MissingDependencyError(
                f"Colormap {cmap!r} needs matplotlib: pip install 'emotionkit[plots]', or use cmap='jet'."
            ) from exc
        try:
            rgb = colormaps[cmap](hm)[..., :3]
        except KeyError as exc:
            raise InvalidImageError(f"Unknown colormap {cmap!r}; use 'jet' or a matplotlib colormap name.") from exc
    return np.round(rgb * 255.0).astype(np.uint8)


def _as_rgb(image: ImageInput | torch.Tensor) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if (
        isinstance(image, np.ndarray)
        and image.ndim == 3
        and image.shape[0] in (1, 3)
        and image.shape[-1] not in (1, 3, 4)
    ):
        image = np.moveaxis(image, 0, -1)  # (C, H, W) -> (H, W, C)
    if isinstance(image, np.ndarray) and image.dtype.kind == "f":
        image = (to_float01(image) * 255.0 + 0.5).astype(np.uint8)
    return load_image(image)


def _resize(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize ``(h, w)`` to ``size`` = (H, W)."""
    if heatmap.shape == size:
        return heatmap
    t = torch.from_numpy(np.ascontiguousarray(heatmap, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay_heatmap(
    image: ImageInput | torch.Tensor, heatmap: np.ndarray, *, alpha: float = 0.5, cmap: str = "jet"
) -> Image.Image:
    """Blend a coloured heatmap over an image of the same region (usually a face crop).

    Parameters
    ----------
    image : path, PIL image, numpy.ndarray or torch.Tensor
        The face crop; ``(H, W[, C])`` or ``(C, H, W)``; grayscale is shown as gray.
    heatmap : numpy.ndarray
        ``(h, w)`` in [0, 1]; resized to the image.
    alpha : float, default 0.5
        Weight of the heatmap colour.
    cmap : str, default "jet"
        See :func:`colorize`.

    Returns
    -------
    PIL.Image.Image
        RGB, the image's size.

    Raises
    ------
    ValueError
        ``alpha`` is outside [0, 1].

    Examples
    --------
    >>> overlay_heatmap(np.zeros((48, 48), np.uint8), np.ones((12, 12))).size
    (48, 48)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    rgb = _as_rgb(image).astype(np.float32)
    color = colorize(_resize(np.asarray(heatmap, np.float32), rgb.shape[:2]), cmap).astype(np.float32)
    return Image.fromarray(np.round((1.0 - alpha) * rgb + alpha * color).astype(np.uint8))


def face_crops(
    image: ImageInput, faces: Sequence[FaceEmotion], preprocessor: FacePreprocessor, size: int = 192
) -> np.ndarray:
    """Return the region the model saw of each face, in colour and at display size.

    Parameters
    ----------
    image : path, PIL image or numpy.ndarray
        The photo the faces were found in.
    faces : sequence of FaceEmotion
        Results of ``predict`` or ``explain`` on that photo.
    preprocessor : FacePreprocessor
        The recognizer's preprocessor (its margin decides the region).
    size : int, default 192
        Side of the returned crops.

    Returns
    -------
    numpy.ndarray
        ``(N, size, size, 3)`` uint8.
    """
    display = FacePreprocessor(size=size, channels=3, margin=preprocessor.margin)
    crops = display.crops(load_image(image), [f.detection for f in faces])
    return (crops.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def caption(label: str, confidence: float, true_label: str | None = None) -> str:
    """Return the caption of a prediction.

    Parameters
    ----------
    label : str
        The predicted class.
    confidence : float
        Its probability.
    true_label : str, optional
        The ground truth, added on a second line.

    Returns
    -------
    str
        ``"Predicted: label (0.74)"``, plus a second line ``"True: label"`` when ``true_label`` is given.

    Examples
    --------
    >>> caption("angry", 0.7431)
    'Predicted: angry (0.74)'
    >>> caption("angry", 0.7431, "sad")
    'Predicted: angry (0.74)\\nTrue: sad'
    """
    text = f"Predicted: {label} ({confidence:.2f})"
    return text if true_label is None else f"{text}\nTrue: {true_label}"


def overlay_on_photo(
    image: ImageInput,
    faces: Sequence[FaceEmotion],
    preprocessor: FacePreprocessor,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    boxes: bool = True,
    captions: bool = True,
    min_side: int = 256,
) -> Image.Image:
    """Draw each face's heatmap (where set), box and caption on the original photo.

    Heatmaps are mapped from the face crop grid back into photo coordinates with
    :func:`emotionkit.explainers.heatmap_to_image`; outside the faces the photo is unchanged.

    Parameters
    ----------
    image : path, PIL image or numpy.ndarray
        The photo.
    faces : sequence of FaceEmotion
        Results of ``explain`` (or ``predict``: boxes and captions only).
    preprocessor : FacePreprocessor
        The recognizer's preprocessor (gives each face's crop box).
    alpha : float, default 0.5
        Weight of the heatmap colour inside the faces.
    cmap : str, default "jet"
        See :func:`colorize`.
    boxes, captions : bool, default True
        Draw the detection boxes and "Predicted: label (p)" captions.
    min_side : int, default 256
        Small photos (e.g. 48x48 crops) are enlarged to at least this shorter side, for legibility.

    Returns
    -------
    PIL.Image.Image
        RGB.
    """
    photo = load_image(image)
    h, w = photo.shape[:2]
    out = photo.astype(np.float32)
    for face in faces:
        if face.heatmap is None:
            continue
        box = preprocessor.crop_box(face.detection)
        hm = heatmap_to_image(face.heatmap, box, (h, w))
        cover = alpha * heatmap_to_image(np.ones_like(face.heatmap), box, (h, w))[..., None]
        out = ((1.0 - cover) * out + cover * colorize(hm, cmap)).astype(np.float32)
    pil = Image.fromarray(np.round(out).astype(np.uint8))
    scale = max(1.0, min_side / max(1, min(h, w)))
    if scale > 1.0:
        pil = pil.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    if boxes or captions:
        draw = ImageDraw.Draw(pil)
        font = _font(max(12, round(pil.size[1] / 40)))
        for face in faces:
            x1, y1, x2, y2 = (v * scale for v in face.box)
            if boxes:
                draw.rectangle((x1, y1, x2, y2), outline=(255, 255, 255), width=max(1, round(pil.size[1] / 250)))
            if captions:
                text = caption(face.label, face.confidence)
                left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
                y = y1 - (bottom - top) - 6 if y1 - (bottom - top) - 6 >= 0 else y2 + 2
                draw.rectangle((x1, y, x1 + right - left + 6, y + bottom - top + 6), fill=(0, 0, 0))
                draw.text((x1 + 3, y + 3 - (top - y1)), text, fill=(255, 255, 255), font=font)
    return pil


def prediction_grid(
    images: np.ndarray | Sequence[ImageInput],
    probabilities: np.ndarray,
    *,
    labels: Sequence[str] = EMOTIONS,
    true_labels: Sequence[int | str] | None = None,
    heatmaps: np.ndarray | None = None,
    columns: int = 5,
    cell: int = 144,
    alpha: float = 0.45,
) -> Image.Image:
    """Lay out faces with captions such as "Predicted: angry (0.74)" (and the true label), as a PNG-ready image.

    Parameters
    ----------
    images : numpy.ndarray or sequence
        ``(N, H, W[, C])`` faces (e.g. FER-2013 crops) or a list of anything :func:`~emotionkit.io.load_image` takes.
    probabilities : numpy.ndarray
        ``(N, len(labels))``, e.g. from ``predict_proba``.
    labels : sequence of str, default EMOTIONS
        Class names of the columns.
    true_labels : sequence of int or str, optional
        Ground truth; captions then add "True: ..." in green (right) or red (wrong).
    heatmaps : numpy.ndarray, optional
        ``(N, h, w)`` explanations blended over the faces.
    columns : int, default 5
        Faces per row.
    cell : int, default 144
        Side of each face in pixels.
    alpha : float, default 0.45
        Heatmap weight when ``heatmaps`` is given.

    Returns
    -------
    PIL.Image.Image
        RGB grid.

    Raises
    ------
    ValueError
        Counts of images, probabilities, heatmaps or true labels differ.

    Examples
    --------
    >>> probs = np.eye(7)[[0, 3]]
    >>> grid = prediction_grid(np.zeros((2, 48, 48), np.uint8), probs, true_labels=[0, "sad"], columns=2, cell=64)
    >>> grid.size[0]
    128
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    n = len(images)
    if probs.ndim != 2 or probs.shape != (n, len(labels)):
        raise ValueError(f"probabilities must have shape ({n}, {len(labels)}) for {n} images, got {probs.shape}.")
    if true_labels is not None and len(true_labels) != n:
        raise ValueError(f"Got {len(true_labels)} true labels for {n} images.")
    if heatmaps is not None and len(heatmaps) != n:
        raise ValueError(f"Got {len(heatmaps)} heatmaps for {n} images.")
    if columns < 1 or cell < 16:
        raise ValueError(f"columns must be >= 1 and cell >= 16, got {columns} and {cell}.")
    longest = max((caption(name, 0.0) for name in labels), key=len)
    size = max(10, cell // 10)
    font = _font(size)
    while size > 7 and ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(longest, font=font) > cell - 6:
        size -= 1
        font = _font(size)
    line = font.getbbox("Ag")[3] + 4
    text_h = line * (2 if true_labels is not None else 1) + 6
    rows = max(1, -(-n // columns))
    grid = Image.new("RGB", (columns * cell, rows * (cell + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        face = Image.fromarray(_as_rgb(images[i])).resize((cell, cell), Image.Resampling.BICUBIC)
        if heatmaps is not None:
            face = overlay_heatmap(np.asarray(face), heatmaps[i], alpha=alpha)
        x, y = (i % columns) * cell, (i // columns) * (cell + text_h)
        grid.paste(face, (x, y))
        k = int(np.argmax(probs[i]))
        draw.text((x + 3, y + cell + 3), caption(labels[k], float(probs[i, k])), fill=(0, 0, 0), font=font)
        if true_labels is not None:
            truth = true_labels[i]
            name = labels[int(truth)] if not isinstance(truth, str) else truth
            color = (0, 128, 0) if name == labels[k] else (200, 0, 0)
            draw.text((x + 3, y + cell + 3 + line), f"True: {name}", fill=color, font=font)
    return grid
