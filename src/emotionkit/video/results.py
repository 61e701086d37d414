"""Per-frame results of :meth:`emotionkit.EmotionRecognizer.stream` (frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import Detection, FaceEmotion

__all__ = ["VideoFrame", "TrackedFace", "FrameResult"]


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Parameters
    ----------
    index : int
        0-based position in the stream.
    time : float
        Presentation time in seconds (for cameras: seconds since the first frame).
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    """

    index: int
    time: float
    image: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame, with its track and its raw and smoothed probabilities.

    Parameters
    ----------
    track_id : int
        Stable id of the face across frames, starting at 1.
    detection : Detection
        The box classified in this frame: the detector's box, or the track's last box when
        detection did not run on this frame (``detected=False``).
    raw : mapping of str to float
        Probabilities of this frame alone, in the model's label order.
    smoothed : mapping of str to float
        Probabilities after per-track temporal smoothing (equal to ``raw`` with ``smoothing="none"``).
    label : str
        Top class of ``smoothed``.
    raw_label : str
        Top class of ``raw``.
    detected : bool
        Whether the detector found this box in this frame.
    """

    track_id: int
    detection: Detection
    raw: Mapping[str, float]
    smoothed: Mapping[str, float]
    label: str
    raw_label: str
    detected: bool = True

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Shortcut for ``detection.box``."""
        return self.detection.box

    @property
    def confidence(self) -> float:
        """Smoothed probability of :attr:`label`."""
        return float(self.smoothed[self.label])

    def to_face_emotion(self) -> FaceEmotion:
        """Return the smoothed result as a :class:`~emotionkit.types.FaceEmotion` (for drawing helpers).

        Returns
        -------
        FaceEmotion
            This face's detection, smoothed scores and smoothed label.
        """
        return FaceEmotion(self.detection, self.smoothed, self.label)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary.

        Returns
        -------
        dict
            ``track``, the detection's ``box``/``score``/``landmarks``, ``detected``, ``label``,
            ``raw_label``, and the ``smoothed`` and ``raw`` scores.
        """
        out: dict[str, Any] = {"track": self.track_id, **self.detection.to_dict()}
        out.update(
            detected=self.detected,
            label=self.label,
            raw_label=self.raw_label,
            smoothed={k: round(float(v), 6) for k, v in self.smoothed.items()},
            raw={k: round(float(v), 6) for k, v in self.raw.items()},
        )
        return out


@dataclass(frozen=True)
class FrameResult:
    """Everything :meth:`~emotionkit.EmotionRecognizer.stream` found in one frame.

    Parameters
    ----------
    index : int
        0-based frame index.
    time : float
        Presentation time in seconds.
    faces : tuple of TrackedFace
        Confirmed tracks visible in this frame, by track id; empty when there is none.
    detected : bool
        Whether the face detector ran on this frame (see ``every``).
    image : numpy.ndarray
        The decoded ``(H, W, 3)`` uint8 RGB frame, for drawing; not kept by the stream.
    """

    index: int
    time: float
    faces: tuple[TrackedFace, ...]
    detected: bool
    image: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary (the image is left out).

        Returns
        -------
        dict
            ``frame``, ``time``, ``detected`` and ``faces`` (each :meth:`TrackedFace.to_dict`).
        """
        return {
            "frame": self.index,
            "time": round(self.time, 6),
            "detected": self.detected,
            "faces": [f.to_dict() for f in self.faces],
        }
