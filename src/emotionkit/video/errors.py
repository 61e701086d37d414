"""Errors raised while reading or writing video; each also subclasses the builtin a caller would catch."""

from __future__ import annotations

from ..exceptions import EmotionKitError

__all__ = [
    "VideoError",
    "VideoNotFoundError",
    "InvalidVideoError",
    "CameraError",
    "VideoWriteError",
    "VideoOptionError",
]


class VideoError(EmotionKitError):
    """Base class of the video errors."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """A video path that does not exist."""


class InvalidVideoError(VideoError, ValueError):
    """A file that is not a decodable video: corrupt, truncated, or without a video stream."""


class CameraError(VideoError, OSError):
    """A camera that cannot be opened or stops delivering frames."""


class VideoWriteError(VideoError, OSError):
    """An output video that cannot be written (unknown container, missing encoder, unwritable path)."""


class VideoOptionError(VideoError, ValueError):
    """A streaming option out of range (``every``, smoothing, tracker settings)."""
