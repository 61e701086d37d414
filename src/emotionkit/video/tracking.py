"""Follow faces across frames: IoU matching with stable ids, confirmation after ``min_hits``, deletion after ``max_age``.

Like SORT (Bewley et al., 2016) without the Kalman filter: each track predicts its next box with
a damped constant velocity, detections are matched to predictions by IoU with the Hungarian
algorithm (``scipy.optimize.linear_sum_assignment``; greedy when SciPy is missing), and
unmatched detections start tentative tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..types import Detection
from .errors import VideoOptionError

__all__ = ["IoUTracker", "Track", "iou_matrix", "assign"]

Box = tuple[float, float, float, float]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Parameters
    ----------
    a, b : numpy.ndarray
        Boxes ``(N, 4)`` and ``(M, 4)`` as ``x1, y1, x2, y2``.

    Returns
    -------
    numpy.ndarray
        ``(N, M)`` float64 in [0, 1]; 0 where a box has no area.

    Examples
    --------
    >>> iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def assign(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Match rows to columns maximising total IoU; pairs below ``threshold`` are dropped.

    Uses the Hungarian algorithm when SciPy is installed, else a greedy highest-IoU-first match.

    Parameters
    ----------
    iou : numpy.ndarray
        ``(N, M)`` IoU of tracks (rows) against detections (columns).
    threshold : float
        Least IoU of a kept pair.

    Returns
    -------
    list of (int, int)
        ``(row, column)`` pairs, each row and column at most once.

    Examples
    --------
    >>> assign(np.array([[0.9, 0.8], [0.85, 0.1]]), 0.3)
    [(0, 1), (1, 0)]
    """
    if iou.size == 0:
        return []
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return _greedy(iou, threshold)
    # Pairs below the threshold count as zero, so they cannot buy a worse match elsewhere.
    rows, cols = linear_sum_assignment(np.where(iou >= threshold, iou, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= threshold]


def _greedy(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    pairs = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < threshold:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return sorted(pairs)


@dataclass
class Track:
    """Mutable state of one followed face (internal to :class:`IoUTracker`, exposed for inspection).

    Parameters
    ----------
    detection : Detection
        The last matched box.
    last_frame : int
        Frame index of the last match.
    track_id : int, optional
        Given when the track is confirmed; ``None`` while tentative.
    hits : int, default 1
        Detections matched so far.
    velocity : numpy.ndarray
        Damped per-frame motion of ``x1, y1, x2, y2``.
    gap : int, default 1
        Frames between the last two matches.
    """

    detection: Detection
    last_frame: int
    track_id: int | None = None
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))

    gap: int = 1

    def predict(self, frame: int) -> np.ndarray:
        """The box expected at ``frame``: the last box moved by the damped velocity.

        Extrapolation stops after twice the usual gap between detections, so a face
        that was lost for a while is looked for where it was last seen.

        Parameters
        ----------
        frame : int
            The frame index to predict for.

        Returns
        -------
        numpy.ndarray
            ``(4,)`` float64 box ``x1, y1, x2, y2``.
        """
        steps = min(frame - self.last_frame, 2 * self.gap)
        return np.asarray(self.detection.box, dtype=np.float64) + self.velocity * steps

    def update(self, detection: Detection, frame: int) -> None:
        """Move the track to a matched detection.

        Parameters
        ----------
        detection : Detection
            The box matched in ``frame``.
        frame : int
            Its frame index.
        """
        self.gap = max(1, frame - self.last_frame)
        step = (np.asarray(detection.box) - np.asarray(self.detection.box)) / self.gap
        self.velocity = 0.5 * self.velocity + 0.5 * step
        self.detection, self.last_frame = detection, frame
        self.hits += 1


class IoUTracker:
    """Give detections stable ids across frames.

    Parameters
    ----------
    iou_threshold : float, default 0.3
        Least IoU between a track's predicted box and a detection for them to match.
    max_age : int, default 30
        A track not matched for more than this many frames is dropped (its id is never reused).
    min_hits : int, default 2
        Detections a new track needs before it gets an id and is reported; filters one-frame
        false positives. Tracks born in the first ``min_hits`` updates are reported at once,
        so a video's first frame is not lost.

    Raises
    ------
    VideoOptionError
        A setting out of range.

    Examples
    --------
    >>> tracker = IoUTracker(min_hits=1)
    >>> [t.track_id for t in tracker.update([Detection((10, 10, 50, 50))], frame=0)]
    [1]
    >>> [t.track_id for t in tracker.update([Detection((200, 10, 240, 50)), Detection((12, 11, 52, 51))], frame=1)]
    [1, 2]
    """

    def __init__(self, *, iou_threshold: float = 0.3, max_age: int = 30, min_hits: int = 2) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise VideoOptionError(f"iou_threshold must be in (0, 1], got {iou_threshold}.")
        if max_age < 0 or min_hits < 1:
            raise VideoOptionError(
                f"max_age must be >= 0 and min_hits >= 1, got max_age={max_age}, min_hits={min_hits}."
            )
        self.iou_threshold = float(iou_threshold)
        self.max_age = int(max_age)
        self.min_hits = int(min_hits)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._updates = 0

    @property
    def track_ids(self) -> set[int]:
        """Ids of the confirmed tracks still alive."""
        return {t.track_id for t in self.tracks if t.track_id is not None}

    def update(self, detections: Sequence[Detection], frame: int) -> list[Track]:
        """Match one frame's detections to the tracks.

        Parameters
        ----------
        detections : sequence of Detection
            Faces the detector found in ``frame``.
        frame : int
            Frame index (increasing; gaps allowed when detection skips frames).

        Returns
        -------
        list of Track
            Confirmed tracks matched in this frame, sorted by id; their ``detection`` is this frame's box.
        """
        self._updates += 1
        predicted = np.array([t.predict(frame) for t in self.tracks]).reshape(-1, 4)
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        pairs = assign(iou_matrix(predicted, boxes), self.iou_threshold)
        matched_tracks = {r for r, _ in pairs}
        matched_dets = {c for _, c in pairs}
        for r, c in pairs:
            self.tracks[r].update(detections[c], frame)
        kept = []
        for i, track in enumerate(self.tracks):
            if i in matched_tracks:
                kept.append(track)
            elif track.track_id is None:
                continue  # a tentative track that missed once is a false positive
            elif frame - track.last_frame <= self.max_age:
                kept.append(track)
        for c, det in enumerate(detections):
            if c not in matched_dets:
                kept.append(Track(det, frame))
        self.tracks = kept
        seen = []
        for track in self.tracks:
            if track.last_frame != frame:
                continue
            if track.track_id is None and (track.hits >= self.min_hits or self._updates <= self.min_hits):
                track.track_id = self._next_id
                self._next_id += 1
            if track.track_id is not None:
                seen.append(track)
        return sorted(seen, key=lambda t: t.track_id or 0)
