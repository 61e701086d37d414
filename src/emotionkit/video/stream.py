"""Run a recognizer over a video or camera frame by frame: detect, track, classify, smooth."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Protocol

import numpy as np

from ..inference import InferenceModel
from ..interfaces import FaceDetector
from ..types import Detection
from .errors import VideoOptionError
from .reader import VideoReader, VideoSource
from .results import FrameResult, TrackedFace
from .smoothing import Smoother, SmoothingName, make_smoother
from .tracking import IoUTracker

__all__ = ["VideoStream", "StreamRecognizer"]


class StreamRecognizer(Protocol):
    """What a :class:`VideoStream` runs: an inference core and the face detector in front of it.

    :class:`~emotionkit.EmotionRecognizer` is one.
    """

    inference: InferenceModel

    @property
    def face_detector(self) -> FaceDetector:
        """The detector that finds the faces of a frame."""
        ...


class VideoStream(Iterator[FrameResult]):
    """An iterator of :class:`FrameResult`, one per decoded frame; what :meth:`EmotionRecognizer.stream` returns.

    Frames are decoded, analysed and handed over one at a time; nothing is kept, so memory
    stays flat however long the video or camera runs. The source is opened at construction
    (so a bad path or camera fails at once) and closed when the iteration ends, on :meth:`close`,
    or when leaving a ``with`` block.

    Parameters
    ----------
    recognizer : StreamRecognizer
        An :class:`~emotionkit.EmotionRecognizer`: its detector finds faces, its inference core classifies them.
    source : str, os.PathLike or int
        A video file or a camera index.
    every : int, default 1
        Run the detector on every ``every``-th frame; in between, the tracks' last boxes are
        carried and still classified on each frame.
    smoothing : {"ema", "window", "none"} or Smoother, default "ema"
        Per-track temporal smoothing of the probabilities.
    alpha : float, default 0.3
        EMA weight of the newest frame.
    window : int, default 8
        Frames averaged by ``"window"``.
    iou_threshold : float, default 0.3
        Least IoU for a detection to continue a track.
    max_age : int, optional
        Frames a track survives unseen; default ``max(30, 3 * every)``.
    min_hits : int, optional
        Detections a new track needs before it is reported; default 2 with ``every=1`` (filters
        one-off false detections), 1 with ``every > 1`` (two detection passes would hide a new
        face for ``2 * every`` frames). A face that appears mid-video is shown from the frame of
        its ``min_hits``-th detection (earlier frames are not back-filled); faces detected fewer
        times are dropped. Tracks born in the first ``min_hits`` detection passes are shown at once.
    max_frames : int, optional
        Stop after this many frames (useful for cameras).
    camera_options : mapping of str to str, optional
        FFmpeg options for a camera, e.g. ``{"video_size": "640x480"}``.

    Attributes
    ----------
    fps : float
        The source's frame rate.
    size : (int, int)
        Frame width and height.
    frame_count : int or None
        Frames that will be produced, when known.

    Raises
    ------
    VideoNotFoundError, InvalidVideoError, CameraError
        The source cannot be opened (missing, corrupt, no video stream, camera unavailable).
    VideoOptionError
        ``every``, ``max_frames``, smoothing or tracker settings out of range.
    """

    def __init__(
        self,
        recognizer: StreamRecognizer,
        source: VideoSource,
        *,
        every: int = 1,
        smoothing: SmoothingName | Smoother = "ema",
        alpha: float = 0.3,
        window: int = 8,
        iou_threshold: float = 0.3,
        max_age: int | None = None,
        min_hits: int | None = None,
        max_frames: int | None = None,
        camera_options: dict[str, str] | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise VideoOptionError(f"every must be a positive integer (1 = detect on every frame), got {every!r}.")
        if max_frames is not None and max_frames < 0:
            raise VideoOptionError(f"max_frames must be >= 0 or None, got {max_frames}.")
        self.recognizer = recognizer
        self.every = int(every)
        self.smoother = make_smoother(smoothing, alpha=alpha, window=window)
        self.tracker = IoUTracker(
            iou_threshold=iou_threshold,
            max_age=max(30, 3 * self.every) if max_age is None else max_age,
            min_hits=(2 if self.every == 1 else 1) if min_hits is None else min_hits,
        )
        self.max_frames = max_frames
        self._reader = VideoReader(source, camera_options=camera_options)
        self.fps, self.size, self.is_camera = self._reader.fps, self._reader.size, self._reader.is_camera
        count = self._reader.frame_count
        self.frame_count = (
            min(count, max_frames) if count is not None and max_frames is not None else count or max_frames
        )
        self._frames = self._run()

    def __next__(self) -> FrameResult:
        return next(self._frames)

    def _run(self) -> Generator[FrameResult, None, None]:
        core = self.recognizer.inference
        detector = self.recognizer.face_detector
        labels = core.active_labels
        carried: list[tuple[int, Detection]] = []
        try:
            for frame in self._reader:
                if self.max_frames is not None and frame.index >= self.max_frames:
                    break
                detect = frame.index % self.every == 0
                if detect:
                    tracks = self.tracker.update(detector.detect(frame.image), frame.index)
                    carried = [(t.track_id, t.detection) for t in tracks if t.track_id is not None]
                    self.smoother.retain(self.tracker.track_ids)
                faces: tuple[TrackedFace, ...] = ()
                if carried:
                    x = core.preprocessor.crops(frame.image, [d for _, d in carried])
                    probs = core.probabilities(x).astype(np.float64)
                    out = []
                    for (track_id, det), p in zip(carried, probs):
                        s = self.smoother.update(track_id, p)
                        out.append(
                            TrackedFace(
                                track_id,
                                det,
                                dict(zip(labels, p.tolist())),
                                dict(zip(labels, s.tolist())),
                                labels[int(np.argmax(s))],
                                labels[int(np.argmax(p))],
                                detect,
                            )
                        )
                    faces = tuple(out)
                yield FrameResult(frame.index, frame.time, faces, detect, frame.image)
        finally:
            self._reader.close()

    def close(self) -> None:
        """Stop and release the source (idempotent)."""
        self._frames.close()
        self._reader.close()

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoStream({self._reader!r}, every={self.every}, smoother={type(self.smoother).__name__})"
