"""Read a video file or a camera lazily as RGB frames with timestamps.

PyAV (FFmpeg) decodes files and, on Linux (v4l2) and macOS (avfoundation), cameras.
OpenCV is used only for cameras PyAV cannot open (Windows), and only when it is installed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import MissingDependencyError
from .errors import CameraError, InvalidVideoError, VideoNotFoundError
from .results import VideoFrame

__all__ = ["VideoSource", "VideoReader", "open_video", "require_av"]

#: A video file path, or the index of a camera (``0`` is the default camera).
VideoSource = str | os.PathLike | int

_DEFAULT_CAMERA_FPS = 30.0


def require_av() -> Any:
    """Import and return PyAV.

    Returns
    -------
    module
        The ``av`` module.

    Raises
    ------
    MissingDependencyError
        PyAV is not installed (the message gives the install command).
    """
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(
            "Video needs PyAV (FFmpeg bindings): pip install 'emotionkit[video]' (or pip install av)."
        ) from exc
    return av


class VideoReader:
    """Decode a video file or a camera one frame at a time.

    Nothing is buffered: iterating yields each frame as it is decoded, so memory stays flat
    however long the video is. Use it as a context manager, or call :meth:`close`.

    Parameters
    ----------
    source : str, os.PathLike or int
        A video file (anything FFmpeg reads: mp4, mkv, avi, webm, mov...) or a camera index.
    camera_options : mapping of str to str, optional
        FFmpeg input options for cameras, e.g. ``{"video_size": "640x480", "framerate": "30"}``.

    Attributes
    ----------
    fps : float
        Average frame rate (30 when a camera does not say).
    size : (int, int)
        Frame width and height in pixels.
    frame_count : int or None
        Number of frames the container declares; ``None`` for cameras and when unknown.
    is_camera : bool
        Whether the source is a camera.

    Raises
    ------
    VideoNotFoundError
        The path does not exist (also a ``FileNotFoundError``).
    InvalidVideoError
        The file is corrupt, truncated, or has no video stream (also a ``ValueError``).
    CameraError
        The camera cannot be opened (also an ``OSError``).
    MissingDependencyError
        PyAV is not installed.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from emotionkit.video import VideoWriter
    >>> path = tempfile.mkdtemp() + "/grey.mp4"
    >>> with VideoWriter(path, fps=10) as out:
    ...     for _ in range(3):
    ...         out.write(np.full((48, 64, 3), 128, np.uint8))
    >>> with VideoReader(path) as video:
    ...     [(f.index, round(f.time, 2), f.image.shape) for f in video]
    [(0, 0.0, (48, 64, 3)), (1, 0.1, (48, 64, 3)), (2, 0.2, (48, 64, 3))]
    """

    def __init__(self, source: VideoSource, *, camera_options: dict[str, str] | None = None) -> None:
        self.source = source
        self.is_camera = isinstance(source, int) and not isinstance(source, bool)
        self._cv: Any = None
        self._container: Any = None
        if isinstance(source, bool) or not isinstance(source, (str, os.PathLike, int)):
            raise InvalidVideoError(
                f"Received {type(source).__name__} as a video source. Allowed: a path to a video file, or a camera index (int)."
            )
        if isinstance(source, int):
            self._open_camera(source, dict(camera_options or {}))
        else:
            self._open_file(Path(source))
        self._iterated = False

    # ------------------------------------------------------------------ opening
    def _open_file(self, path: Path) -> None:
        if not path.exists():
            raise VideoNotFoundError(
                f"Video not found: {str(path)!r}. Check the path (the working directory is {os.getcwd()!r})."
            )
        if path.is_dir():
            raise InvalidVideoError(f"Expected a video file, got the directory {str(path)!r}.")
        av = require_av()
        try:
            container = av.open(str(path), mode="r")
        except av.error.FFmpegError as exc:
            raise InvalidVideoError(
                f"Could not read {str(path)!r} as a video ({type(exc).__name__}: {exc}). The file may be truncated, "
                "corrupt, or not a video; allowed: any container and codec FFmpeg decodes (mp4, mkv, avi, webm, mov...)."
            ) from exc
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            container.close()
            raise InvalidVideoError(
                f"{str(path)!r} has no video stream (streams found: {', '.join(kinds)}). Pass a file with video in it."
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self._container, self._stream = container, stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else _DEFAULT_CAMERA_FPS
        self.size = (int(stream.codec_context.width), int(stream.codec_context.height))
        if self.size[0] <= 0 or self.size[1] <= 0:
            container.close()
            raise InvalidVideoError(
                f"{str(path)!r} has a video stream with no frame size; the file is probably corrupt."
            )
        self.frame_count: int | None = int(stream.frames) or None

    def _open_camera(self, index: int, options: dict[str, str]) -> None:
        if index < 0:
            raise CameraError(f"Camera index must be >= 0, got {index}. 0 is the default camera.")
        self.frame_count = None
        tried: list[str] = []
        device = _pyav_camera(index)
        if device is not None:
            try:
                av = require_av()
                self._container = av.open(device[0], format=device[1], mode="r", options=options or None)
                if not self._container.streams.video:
                    self._container.close()
                    raise CameraError(f"Camera {index} ({device[0]}) gives no video stream.")
                self._stream = self._container.streams.video[0]
                rate = self._stream.average_rate or self._stream.guessed_rate
                self.fps = float(rate) if rate else _DEFAULT_CAMERA_FPS
                self.size = (int(self._stream.codec_context.width), int(self._stream.codec_context.height))
                return
            except (MissingDependencyError, OSError, ValueError) as exc:  # av errors subclass OSError/ValueError
                if isinstance(exc, CameraError):
                    raise
                self._container = None
                tried.append(f"PyAV {device[1]} {device[0]}: {exc}")
        try:
            import cv2
        except ImportError:
            tried.append("OpenCV: not installed (pip install opencv-python-headless)")
        else:
            cap = cv2.VideoCapture(index)
            if cap.isOpened():
                self._cv = cap
                self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or _DEFAULT_CAMERA_FPS
                self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
                return
            cap.release()
            tried.append(f"OpenCV VideoCapture({index}): could not open")
        raise CameraError(
            f"Could not open camera {index} ({'; '.join(tried)}). Check the index (on Linux `ls /dev/video*` lists "
            "cameras), that no other program is using it, and that you may access it."
        )

    # ------------------------------------------------------------------ frames
    def __iter__(self) -> Iterator[VideoFrame]:
        if self._iterated:
            raise RuntimeError("A VideoReader can be iterated once; open the video again to read it again.")
        self._iterated = True
        frames = self._cv_frames() if self._cv is not None else self._av_frames()
        for index, (t, image) in enumerate(frames):
            yield VideoFrame(index, t, image)

    def _av_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        av = require_av()
        t0: float | None = None
        index = 0
        try:
            for frame in self._container.decode(self._stream):
                t = frame.time
                if t is None:
                    t = index / self.fps
                elif self.is_camera:
                    t0 = t if t0 is None else t0
                    t -= t0
                yield float(t), frame.to_ndarray(format="rgb24")
                index += 1
        except av.error.FFmpegError as exc:
            what = f"camera {self.source}" if self.is_camera else repr(str(self.source))
            error = CameraError if self.is_camera else InvalidVideoError
            raise error(
                f"Decoding {what} failed after {index} frames ({type(exc).__name__}: {exc}); the data is corrupt or was cut off."
            ) from exc

    def _cv_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        t0 = time.monotonic()
        while True:
            ok, bgr = self._cv.read()
            if not ok:
                return
            yield time.monotonic() - t0, np.ascontiguousarray(bgr[:, :, ::-1])

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the file or camera (idempotent)."""
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._cv is not None:
            self._cv.release()
            self._cv = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        what = f"camera={self.source}" if self.is_camera else f"path={str(self.source)!r}"
        return f"VideoReader({what}, size={self.size[0]}x{self.size[1]}, fps={self.fps:.3g}, frames={self.frame_count})"


def _pyav_camera(index: int) -> tuple[str, str] | None:
    """Return PyAV's (device, format) for a camera index on this platform, or ``None`` where it needs a name."""
    if sys.platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if sys.platform == "darwin":
        return f"{index}:none", "avfoundation"
    return None  # Windows dshow wants device names; OpenCV handles indices there.


def open_video(source: VideoSource, *, camera_options: dict[str, str] | None = None) -> VideoReader:
    """Open a video file or a camera; see :class:`VideoReader`.

    Parameters
    ----------
    source : str, os.PathLike or int
        A video file or a camera index.
    camera_options : mapping of str to str, optional
        FFmpeg input options for cameras.

    Returns
    -------
    VideoReader
        Iterate it for :class:`~emotionkit.video.VideoFrame` objects; close it when done.
    """
    return VideoReader(source, camera_options=camera_options)
