"""Write RGB frames to a video file with PyAV, and draw tracked faces on frames."""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .annotate import annotate_frame
from .errors import VideoWriteError
from .reader import require_av
from .results import FrameResult

__all__ = ["VideoWriter", "AnnotatedVideoWriter"]

# Encoders tried in order for each container; the first one this FFmpeg build has wins.
_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "libopenh264", "mpeg4"),
    ".m4v": ("libx264", "libopenh264", "mpeg4"),
    ".mov": ("libx264", "libopenh264", "mpeg4"),
    ".mkv": ("libx264", "libopenh264", "mpeg4"),
    ".avi": ("mpeg4", "mjpeg"),
    ".webm": ("libvpx-vp9", "libvpx"),
}


class VideoWriter:
    """Encode ``(H, W, 3)`` uint8 RGB frames into a video file.

    The container follows the file's suffix (``.mp4``, ``.mkv``, ``.mov``, ``.avi``, ``.webm``);
    the frame size is fixed by the first frame (odd sizes lose their last row or column,
    which 4:2:0 video cannot store).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its folder must exist.
    fps : float, default 30.0
        Frame rate.
    codec : str, optional
        An FFmpeg encoder name (``"libx264"``, ``"mpeg4"``...); by default the best one for the suffix.
    options : mapping of str to str, optional
        Encoder options; libx264 defaults to ``{"crf": "23", "preset": "veryfast"}``.

    Raises
    ------
    VideoWriteError
        Unknown suffix, missing encoder, or a path that cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> with VideoWriter(tempfile.mkdtemp() + "/out.mp4", fps=25) as out:
    ...     out.write(np.zeros((32, 32, 3), np.uint8))
    >>> out.frames_written
    1
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 30.0,
        *,
        codec: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self._av = require_av()
        self.path = Path(path)
        if not fps or fps <= 0 or not np.isfinite(fps):
            raise VideoWriteError(f"fps must be a positive number, got {fps!r}.")
        self.fps = float(fps)
        suffix = self.path.suffix.lower()
        if codec is None and suffix not in _CODECS:
            raise VideoWriteError(
                f"Cannot choose a video format for {str(self.path)!r}. Allowed suffixes: {', '.join(_CODECS)} (or pass codec=)."
            )
        self._codecs = (codec,) if codec else _CODECS[suffix]
        self._options = dict(options) if options is not None else None
        try:
            self._container = self._av.open(str(self.path), mode="w")
        except (OSError, ValueError) as exc:
            raise VideoWriteError(
                f"Cannot write {str(self.path)!r} ({type(exc).__name__}: {exc}). Check that its folder exists and is writable."
            ) from exc
        self._stream: Any = None
        self.frames_written = 0

    def _open_stream(self, width: int, height: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        errors = []
        for name in self._codecs:
            try:
                stream = self._container.add_stream(name, rate=rate)
            except (self._av.error.FFmpegError, ValueError, KeyError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p" if name != "mjpeg" else "yuvj420p"
            options = (
                self._options
                if self._options is not None
                else ({"crf": "23", "preset": "veryfast"} if name == "libx264" else {})
            )
            stream.options = options
            if name == "mpeg4":
                stream.bit_rate = max(1_000_000, width * height * 4)
            self._stream = stream
            return
        raise VideoWriteError(
            f"No encoder for {str(self.path)!r} in this FFmpeg build ({'; '.join(errors)}). Try codec='mpeg4' or another suffix."
        )

    def write(self, image: np.ndarray) -> None:
        """Append one frame.

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 3)`` uint8 RGB, the same size as the first frame.

        Raises
        ------
        VideoWriteError
            Another shape or dtype, a size change, or no encoder for the container.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            got = (
                f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            )
            raise VideoWriteError(f"Received a {got}. Allowed: (H, W, 3) uint8 RGB frames.")
        h, w = image.shape[0] & ~1, image.shape[1] & ~1
        if self._stream is None:
            if h < 2 or w < 2:
                raise VideoWriteError(f"Frames must be at least 2x2 pixels, got {image.shape[1]}x{image.shape[0]}.")
            self._open_stream(w, h)
        elif (w, h) != (self._stream.width, self._stream.height):
            raise VideoWriteError(
                f"Frame {self.frames_written} is {image.shape[1]}x{image.shape[0]}; this video is {self._stream.width}x{self._stream.height}."
            )
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / Fraction(self._stream.average_rate)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AnnotatedVideoWriter(VideoWriter):
    """A :class:`VideoWriter` that draws each :class:`FrameResult`'s tracked faces before writing it.

    Takes the same parameters as :class:`VideoWriter`.
    """

    def write_result(self, result: FrameResult) -> None:
        """Draw the boxes, track ids, labels and confidences of ``result`` on its frame and append it.

        Parameters
        ----------
        result : FrameResult
            One frame from :meth:`~emotionkit.EmotionRecognizer.stream`.
        """
        self.write(annotate_frame(result.image, result.faces))
