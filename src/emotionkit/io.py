"""Loading and validating input images.

Every public entry point funnels its image through :func:`decode_image`, which decodes it once into
what the preprocessor reads: ``(H, W, 1)`` for a grey image, ``(H, W, 3)`` for a colour one, as
uint8, uint16 or float32 in [0, 1] (no precision is lost on the way), or raises an
:class:`~emotionkit.exceptions.InvalidImageError` that says what was received, what is allowed and
what to do. :func:`load_image` gives the same image as ``(H, W, 3)`` uint8 RGB, the form face
detectors and drawing take.
"""

from __future__ import annotations

import os
import re
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .exceptions import EmotionKitWarning, ImageNotFoundError, InvalidImageError

__all__ = [
    "ImageInput",
    "ImageTooLargeError",
    "decode_image",
    "load_image",
    "as_image_array",
    "to_uint8_rgb",
    "to_float01",
    "sample_image_path",
]

#: What ``predict`` accepts: a path, a PIL image or an array.
ImageInput = str | os.PathLike | Image.Image | np.ndarray


class ImageTooLargeError(InvalidImageError, Image.DecompressionBombError):
    """A file over Pillow's decompression-bomb limit; also a ``PIL.Image.DecompressionBombError``."""


#: ``scheme://`` at the start of a string: a URL, which is never fetched.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

_ALLOWED = "a path to an image file, a PIL.Image, or an ndarray of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"


def sample_image_path() -> Path:
    """Return the path of the bundled sample photo (NASA's astronaut photo, public domain).

    Returns
    -------
    pathlib.Path
        A 512x512 RGB JPEG with one face.

    Examples
    --------
    >>> sample_image_path().name
    'astronaut.jpg'
    """
    return Path(str(resources.files("emotionkit").joinpath("assets/astronaut.jpg")))


def _open_path(path: str | os.PathLike, stacklevel: int) -> np.ndarray:
    p = Path(path)
    if isinstance(path, str) and _URL.match(path) and not p.exists():
        raise InvalidImageError(
            f"Received the URL {path!r}: emotionkit reads local files only and never downloads. "
            "Download it first (e.g. urllib.request.urlretrieve(url, 'face.jpg')) and pass the file's path."
        )
    if not p.exists():
        raise ImageNotFoundError(
            f"Image not found: {str(p)!r}. Check the path (the working directory is {os.getcwd()!r})."
        )
    if p.is_dir():
        raise InvalidImageError(
            f"Expected an image file, got the directory {str(p)!r}. Pass the files inside it one by one."
        )
    try:
        with Image.open(p) as im:
            im.load()
            frames = _frames(im)
            array = _pil_to_array(im)
    except Image.DecompressionBombError as exc:  # the guard stays on; the error says what to do
        raise ImageTooLargeError(
            f"Refusing to decode {str(p)!r}: {exc} If you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS first."
        ) from exc
    except InvalidImageError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error, EOFError...
        raise InvalidImageError(
            f"Could not read {str(p)!r} as an image ({type(exc).__name__}: {exc}). "
            "Allowed: files Pillow can decode (JPEG, PNG, BMP, TIFF, WebP, ...); the file may be truncated or not an image."
        ) from exc
    _warn_if_multiframe(
        frames, repr(str(p)), stacklevel
    )  # outside the try: a warnings filter "error" must raise it as it is
    return array


def _frames(im: Image.Image) -> tuple[int, int]:
    """``(number of frames, index of the current one)``; ``(1, 0)`` for a still image."""
    return int(getattr(im, "n_frames", 1) or 1), int(im.tell())


def _warn_if_multiframe(frames: tuple[int, int], name: str, stacklevel: int) -> None:
    count, index = frames
    if count > 1:
        warnings.warn(
            f"{name} holds {count} frames (an animated GIF, multi-page TIFF, ...); only frame {index} is read. "
            "For every frame, iterate PIL.ImageSequence.Iterator(image) and pass each frame, or convert the "
            "animation to a video for `emotionkit video`.",
            EmotionKitWarning,
            stacklevel=stacklevel,
        )


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """A decoded PIL image as :func:`as_image_array` returns arrays: grey stays grey, 16-bit stays 16-bit."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(im)
        if im.mode == "I" and array.size and 255 < array.max() <= 65535 and array.min() >= 0:
            array = array.astype(np.uint16)  # 16-bit data in a 32-bit integer file (e.g. TIFF)
        return as_image_array(array)
    if im.mode in ("L", "LA", "1"):
        return np.asarray(im.convert("L"))[:, :, None]
    return np.asarray(im.convert("RGB"))


def as_image_array(array: np.ndarray) -> np.ndarray:
    """Validate an array image and return it as the preprocessor reads it, without losing precision.

    Parameters
    ----------
    array : numpy.ndarray
        ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; uint8, uint16,
        bool, other integers in [0, 255], or float in [0, 1]. An alpha channel is dropped.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 1)`` (grey) or ``(H, W, 3)`` (RGB), C-contiguous: uint8 stays uint8 (bool and other
        integers become uint8), uint16 stays uint16, floats become float32 in [0, 1].

    Raises
    ------
    InvalidImageError
        Empty arrays, other shapes or channel counts, NaN or infinite values,
        floats outside [0, 1], integers outside their range, unsupported dtypes.

    Examples
    --------
    >>> grey = as_image_array(np.full((4, 5), 0.25))
    >>> grey.shape, grey.dtype, float(grey.max())
    ((4, 5, 1), dtype('float32'), 0.25)
    """
    if not isinstance(array, np.ndarray):
        raise InvalidImageError(f"Expected a numpy array, got {type(array).__name__}. Allowed: {_ALLOWED}.")
    if array.size == 0:
        raise InvalidImageError(f"Received an empty array of shape {array.shape}. Allowed: {_ALLOWED} with H, W >= 1.")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        pass
    elif array.ndim == 2:
        array = array[:, :, None]
    else:
        raise InvalidImageError(
            f"Received an array of shape {array.shape}. Allowed: {_ALLOWED} (channels last). "
            "For a batch of pre-cropped faces use predict_proba; for several photos use predict_batch."
        )
    if array.dtype == np.uint8:
        pass
    elif array.dtype.kind == "u" and array.dtype.itemsize == 2:
        array = array.astype(np.uint16, copy=False)  # native byte order (PIL's I;16B is big-endian)
    elif np.issubdtype(array.dtype, np.floating):
        array = to_float01(array)  # values checked, as float32
    else:
        array = _to_uint8(array)  # bool and other integers: checked, exactly representable as uint8
    if array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def to_uint8_rgb(array: np.ndarray) -> np.ndarray:
    """Convert an array image to ``(H, W, 3)`` uint8 RGB.

    Parameters
    ----------
    array : numpy.ndarray
        ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; uint8, uint16,
        bool, other integers in [0, 255], or float in [0, 1]. An alpha channel is dropped.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8, C-contiguous.

    Raises
    ------
    InvalidImageError
        Empty arrays, other shapes or channel counts, NaN or infinite values,
        floats outside [0, 1], integers outside their range, unsupported dtypes.

    Examples
    --------
    >>> to_uint8_rgb(np.zeros((4, 5), np.float32)).shape
    (4, 5, 3)
    """
    return _rgb_uint8(as_image_array(array))


def _rgb_uint8(image: np.ndarray) -> np.ndarray:
    """:func:`as_image_array`'s output as ``(H, W, 3)`` uint8 (the same array when it already is)."""
    if image.dtype == np.uint16:
        image = _to_uint8(image)
    elif image.dtype == np.float32:
        image = (image * 255.0 + 0.5).astype(np.uint8)  # values checked already
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def to_float01(array: np.ndarray) -> np.ndarray:
    """Validate an array's values and return it as float32 in [0, 1] (same shape).

    Parameters
    ----------
    array : numpy.ndarray
        uint8, uint16, bool, other integers in [0, 255], or finite floats in [0, 1].

    Returns
    -------
    numpy.ndarray
        float32 in [0, 1].

    Raises
    ------
    InvalidImageError
        NaN or infinite values, out-of-range values, unsupported dtypes.

    Examples
    --------
    >>> to_float01(np.array([0, 255], np.uint8)).tolist()
    [0.0, 1.0]
    """
    dtype = array.dtype
    if dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if dtype == np.bool_:
        return array.astype(np.float32)
    if dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidImageError(
                f"Received a {dtype} image with NaN or infinite values. Allowed: finite floats in [0, 1]. "
                "Replace them first, e.g. np.nan_to_num(image)."
            )
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidImageError(
                f"Received a {dtype} image with values in [{lo:.4g}, {hi:.4g}]. Allowed: floats in [0, 1]. "
                "Divide 0-255 data by 255, or pass it as uint8."
            )
        return array.astype(np.float32)
    if np.issubdtype(dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise InvalidImageError(
                f"Received a {dtype} image with values in [{lo}, {hi}]. Allowed: uint8, uint16, "
                "other integers in [0, 255], or floats in [0, 1]. Rescale it first."
            )
        return array.astype(np.float32) / 255.0
    raise InvalidImageError(
        f"Received an array of dtype {dtype}. Allowed dtypes: uint8, uint16, integers in [0, 255], bool, float in [0, 1]."
    )


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return (to_float01(array) * 255.0 + 0.5).astype(np.uint8)


def decode_image(image: ImageInput) -> np.ndarray:
    """Load any supported input once, in the dtype and channels it has: what the preprocessor reads.

    A grey file or array stays one channel; uint16 stays uint16; floats stay float (as float32):
    nothing is rounded to uint8 on the way to the model. EXIF orientation is applied;
    Pillow's decompression-bomb guard stays on.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        See :func:`as_image_array` for the arrays accepted.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 1)`` grey or ``(H, W, 3)`` RGB; uint8, uint16 or float32 in [0, 1].

    Raises
    ------
    ImageNotFoundError
        A path that does not exist (also a ``FileNotFoundError``).
    InvalidImageError
        Anything that is not a readable image (also a ``ValueError``), and URLs: nothing is downloaded.

    Warns
    -----
    EmotionKitWarning
        An animated GIF or multi-page TIFF: only its current frame (the first, for a file) is read.

    Examples
    --------
    >>> decode_image(sample_image_path()).shape
    (512, 512, 3)
    >>> decode_image(np.zeros((4, 5), np.uint16)).shape
    (4, 5, 1)
    """
    return _read_image(image, outer_frames=0)


def _read_image(image: ImageInput, outer_frames: int) -> np.ndarray:
    """:func:`decode_image`; ``outer_frames`` public functions above it, so a warning names their caller."""
    if isinstance(image, (str, os.PathLike)):
        return _open_path(image, stacklevel=5 + outer_frames)
    if isinstance(image, Image.Image):
        try:
            frames = _frames(image)
            array = _pil_to_array(image)
        except Exception as exc:
            raise InvalidImageError(f"Could not decode the PIL image ({exc}); it may be truncated.") from exc
        _warn_if_multiframe(frames, "The PIL image", stacklevel=4 + outer_frames)
        return array
    if isinstance(image, np.ndarray):
        return as_image_array(image)
    raise InvalidImageError(f"Received {type(image).__name__}. Allowed: {_ALLOWED}.")


def load_image(image: ImageInput) -> np.ndarray:
    """Load any supported input as an ``(H, W, 3)`` uint8 RGB array (what face detectors take).

    The same image as :func:`decode_image`, grey copied to three channels and other dtypes
    rounded to uint8. EXIF orientation is applied; Pillow's decompression-bomb guard stays on.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        See :func:`to_uint8_rgb` for the arrays accepted.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.

    Raises
    ------
    ImageNotFoundError
        A path that does not exist (also a ``FileNotFoundError``).
    InvalidImageError
        Anything that is not a readable image (also a ``ValueError``), and URLs: nothing is downloaded.

    Warns
    -----
    EmotionKitWarning
        An animated GIF or multi-page TIFF: only its current frame (the first, for a file) is read.

    Examples
    --------
    >>> load_image(sample_image_path()).shape
    (512, 512, 3)
    """
    return _rgb_uint8(_read_image(image, outer_frames=1))
