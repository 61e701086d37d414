"""Video and live camera: per-face tracks, smoothed emotions, annotated video, timelines.

The usual entry point is :meth:`emotionkit.EmotionRecognizer.stream`; the parts below can
also be used on their own. Reading and writing video needs PyAV (``pip install 'emotionkit[video]'``).
"""

from __future__ import annotations

from .annotate import annotate_frame, track_color
from .errors import CameraError, InvalidVideoError, VideoError, VideoNotFoundError, VideoOptionError, VideoWriteError
from .reader import VideoReader, VideoSource, open_video
from .results import FrameResult, TrackedFace, VideoFrame
from .smoothing import EMASmoother, NoSmoother, Smoother, WindowSmoother, make_smoother
from .stream import VideoStream
from .timeline import TimelineWriter, plot_timeline, read_timeline
from .tracking import IoUTracker, Track
from .writer import AnnotatedVideoWriter, VideoWriter

__all__ = [
    "VideoStream",
    "VideoReader",
    "VideoSource",
    "open_video",
    "VideoWriter",
    "AnnotatedVideoWriter",
    "annotate_frame",
    "track_color",
    "VideoFrame",
    "TrackedFace",
    "FrameResult",
    "IoUTracker",
    "Track",
    "Smoother",
    "EMASmoother",
    "WindowSmoother",
    "NoSmoother",
    "make_smoother",
    "TimelineWriter",
    "read_timeline",
    "plot_timeline",
    "VideoError",
    "VideoNotFoundError",
    "InvalidVideoError",
    "CameraError",
    "VideoWriteError",
    "VideoOptionError",
]
