"""Face preprocessing: crop with margin, square, grayscale or RGB, resize, normalise.

One :class:`FacePreprocessor` serves inference on photos (:meth:`~FacePreprocessor.crops`),
inference on pre-cropped faces and training (:meth:`~FacePreprocessor.faces`),
so a model always sees its inputs exactly as it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .exceptions import InvalidImageError
from .io import as_image_array, to_float01
from .types import Detection

__all__ = ["FacePreprocessor", "SMALLEST_TRAINED_FACE", "rgb_to_gray"]

#: Side of FER-2013's crops (px), the faces every bundled model was trained from (a 64 px model enlarges them):
#: ``faces(..., upscale=False)`` refuses faces smaller than this and than the model's input.
SMALLEST_TRAINED_FACE = 48

#: The dtypes :meth:`FacePreprocessor.crops` reads without a conversion (what ``decode_image`` returns).
_READ_AS_IS = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: Their full-scale values: pixels divide by this to land in [0, 1] (floats are in [0, 1] already).
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

# ITU-R 601 luma, the weights of PIL's convert("L") that produced FER-2013's pixels.
_LUMA = (0.299, 0.587, 0.114)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Convert ``(N, 3, H, W)`` RGB to ``(N, 1, H, W)`` luma with PIL's weights.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, 3, H, W)`` RGB.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)``, ``0.299 R + 0.587 G + 0.114 B`` (ITU-R 601, as ``PIL.Image.convert("L")``).
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]


@dataclass(frozen=True)
class FacePreprocessor:
    """Turns faces into a backbone's input tensor.

    Parameters
    ----------
    size : int or (int, int), default 48
        Output height and width.
    channels : {1, 3}, default 1
        1 for grayscale (PIL luma weights), 3 for RGB.
    mean, std : sequence of float
        Per-channel normalisation applied after scaling to [0, 1].
    margin : float, default 0.1
        Fraction of the detected box's longer side added around the face before cropping.

    Raises
    ------
    ValueError
        ``channels`` not 1 or 3, ``mean``/``std`` of the wrong length, ``std`` not positive,
        ``margin`` outside [0, 2].

    Examples
    --------
    >>> pre = FacePreprocessor(size=48, channels=1)
    >>> pre.faces(np.zeros((2, 64, 64, 3), np.uint8)).shape
    torch.Size([2, 1, 48, 48])
    """

    size: int | tuple[int, int] = 48
    channels: int = 1
    mean: Sequence[float] = field(default=(0.0,))
    std: Sequence[float] = field(default=(1.0,))
    margin: float = 0.1

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(int(s) for s in self.size)
        object.__setattr__(self, "size", size)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}.")
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
        if len(mean) == 1:
            mean = mean * self.channels
        if len(std) == 1:
            std = std * self.channels
        if len(mean) != self.channels or len(std) != self.channels:
            raise ValueError(f"mean and std need 1 or {self.channels} values, got {mean} and {std}.")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std}.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError(f"margin must be in [0, 2], got {self.margin}.")

    # -- configuration -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable config; :meth:`from_dict` reads it back.

        Returns
        -------
        dict
            ``size`` (list of 2 ints), ``channels``, ``mean``, ``std``, ``margin``.
        """
        out = asdict(self)
        out["size"] = list(self.size)  # type: ignore[arg-type]
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> FacePreprocessor:
        """Build from :meth:`to_dict`'s output (unknown keys raise ``TypeError``).

        Parameters
        ----------
        config : dict
            As :meth:`to_dict` returns it (e.g. read from ``preprocessor.json``).

        Returns
        -------
        FacePreprocessor
        """
        config = dict(config)
        if isinstance(config.get("size"), list):
            config["size"] = tuple(config["size"])
        return cls(**config)

    # -- geometry ------------------------------------------------------------------------------
    def crop_box(self, detection: Detection) -> tuple[float, float, float, float]:
        """Return the square region, margin included, that :meth:`crops` samples for a detection.

        It can extend past the image; those pixels are filled with black.

        Parameters
        ----------
        detection : Detection
            A detected face.

        Returns
        -------
        tuple of float
            ``(x1, y1, x2, y2)`` in image pixels, centred on the detection's box.
        """
        x1, y1, x2, y2 = detection.box
        side = max(x2 - x1, y2 - y1) * (1.0 + self.margin)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)

    # -- tensors -------------------------------------------------------------------------------
    def _to_model_input(self, x: torch.Tensor) -> torch.Tensor:
        """Convert ``(N, 3 or 1, H, W)`` in [0, 1] to the model's channels, then normalise."""
        if self.channels == 1 and x.shape[1] == 3:
            x = rgb_to_gray(x)
        elif self.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if any(m != 0.0 for m in self.mean) or any(s != 1.0 for s in self.std):
            mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x.contiguous()

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> torch.Tensor:
        """Crop, resize and normalise every detected face of one image, in one batched operation.

        The image is read in the dtype and channels it has: a grey image is cropped as one channel
        (and copied to three only for an RGB model, after cropping), uint16 is scaled by 65535 and
        float kept as it is, so no precision is lost to a uint8 round trip.

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 1)`` or ``(H, W, 3)`` uint8, uint16 or float32 in [0, 1], as
            :func:`emotionkit.io.decode_image` returns (or ``(H, W, 3)`` uint8 RGB, as
            :func:`~emotionkit.io.load_image` does); other arrays go through
            :func:`~emotionkit.io.as_image_array` first.
        detections : sequence of Detection
            Faces in ``image``.

        Returns
        -------
        torch.Tensor
            ``(N, C, H, W)`` float32.

        Raises
        ------
        InvalidImageError
            ``image`` is not a valid image array.
        """
        from ._roi import roi_align_window

        if not detections:
            return torch.empty((0, self.channels, *self.size), dtype=torch.float32)  # type: ignore[misc]
        if not (image.ndim == 3 and image.shape[2] in (1, 3) and image.dtype in _READ_AS_IS):
            image = as_image_array(image)
        boxes = torch.tensor([[0.0, *self.crop_box(d)] for d in detections], dtype=torch.float32)
        gray = self.channels == 1
        scale = _FULL_SCALE.get(image.dtype)

        def to_float(window: torch.Tensor) -> torch.Tensor:
            x = window.float()
            if scale is not None:
                x = x.div_(scale)
            return rgb_to_gray(x) if gray and x.shape[1] == 3 else x  # crop 1 channel instead of 3

        # Only the part of the photo the faces cover is converted to float; sampling_ratio=-1 averages
        # ceil(box/size) samples per output pixel: area-style antialiasing.
        out = roi_align_window(image, boxes, self.size, sampling_ratio=-1, convert=to_float)  # type: ignore[arg-type]
        return self._to_model_input(out.clamp_(0.0, 1.0))

    def faces(self, faces: np.ndarray | torch.Tensor, *, upscale: bool = True) -> torch.Tensor:
        """Prepare pre-cropped faces (FER-2013 style crops).

        Parameters
        ----------
        faces : numpy.ndarray or torch.Tensor
            ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3, 4}, or one face ``(H, W, C)``
            (a 3-D array whose last axis is 1, 3 or 4: no face is that narrow); uint8, uint16,
            or float in [0, 1]. Faces are resized to :attr:`size` (antialiased) when needed.
        upscale : bool, default True
            Whether faces smaller than :attr:`size` may be enlarged; ``False`` refuses those that are
            also smaller than :data:`SMALLEST_TRAINED_FACE` (FER-2013's 48 px crops, which a 64 px
            model was trained from, enlarged).

        Returns
        -------
        torch.Tensor
            ``(N, C, H, W)`` float32.

        Raises
        ------
        InvalidImageError
            Wrong number of dimensions or channels, empty input, bad values; faces smaller
            than :attr:`size` and :data:`SMALLEST_TRAINED_FACE` with ``upscale=False``.
        """
        if isinstance(faces, torch.Tensor):
            faces = faces.detach().cpu().numpy()
        if not isinstance(faces, np.ndarray):
            raise InvalidImageError(
                f"Expected faces as an ndarray of shape (N, H, W) or (N, H, W, C), got {type(faces).__name__}."
            )
        received = faces.shape
        if faces.ndim == 3:  # (H, W, C): one face with a channel axis; else (N, H, W): gray faces
            faces = faces[None] if faces.shape[-1] in (1, 3, 4) else faces[..., None]
        if faces.ndim != 4 or faces.shape[-1] not in (1, 3, 4):
            raise InvalidImageError(
                f"Received faces of shape {received}. Allowed: (N, H, W) or (N, H, W, C) with C in 1, 3, 4 "
                "(channels last), or one face (H, W, C). For a single gray face add a leading axis: faces[None]."
            )
        if 0 in faces.shape:
            raise InvalidImageError(
                f"Received an empty batch of faces of shape {faces.shape}; N, H and W must be >= 1."
            )
        h, w = faces.shape[1:3]
        size_h, size_w = self.size  # type: ignore[misc]  # a pair after __post_init__
        least_h, least_w = min(size_h, SMALLEST_TRAINED_FACE), min(size_w, SMALLEST_TRAINED_FACE)
        if not upscale and (h < least_h or w < least_w):
            raise InvalidImageError(
                f"Received faces of {h}x{w} pixels (shape {received}), smaller than the model's "
                f"{size_h}x{size_w} input and than the {SMALLEST_TRAINED_FACE}x{SMALLEST_TRAINED_FACE} FER-2013 crops "
                "models are trained from: enlarging crops this small gives answers that mean little. "
                f"Pass crops of at least {least_h}x{least_w}, or upscale=True to resize them anyway."
            )
        x = torch.from_numpy(to_float01(faces)[..., :3]).permute(0, 3, 1, 2)
        if x.shape[1] == 3 and self.channels == 1:
            x = rgb_to_gray(x)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
        return self._to_model_input(x)
