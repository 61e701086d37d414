"""MTCNN face detection (facenet-pytorch), wrapped so callers always get a list of clipped detections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..exceptions import MissingDependencyError
from ..interfaces import DetectorSpec
from ..types import Detection

__all__ = ["MTCNNDetector", "SPEC"]


class MTCNNDetector:
    """Multi-task cascaded CNN face detector (Zhang et al., 2016) from facenet-pytorch.

    Its pretrained weights ship inside facenet-pytorch, so it works offline. The cascade
    runs batched (:mod:`emotionkit.detectors._cascade`): 2.8x less CPU time than
    facenet-pytorch's per-box loop at the same settings, finding 971 of the 991 faces that
    loop finds among 1,200 FER-2013 faces (``benchmarks/detection_recall.py --fer 1200``).

    Parameters
    ----------
    device : str or torch.device, optional
        Where to run (default CPU).
    min_face_size : int, default 20
        Smallest face side searched for, in pixels of the (possibly downscaled) detection
        image. 40 halves detection time (``benchmarks/detection_recall.py``) but misses
        small faces in group photos (7 of 24 on the benchmark's 1080p group photo), so it
        is an option, not the default. Expressions are classified at 48x48: on FER-2013
        validation faces shrunk to a 20-pixel face the bundled ``cnn``'s accuracy falls
        well below its full-size accuracy (``benchmarks/face_size_accuracy.py``).
    thresholds : (float, float, float), default (0.7, 0.7, 0.7)
        P-Net, R-Net and O-Net score thresholds. P-Net's 0.7 (facenet-pytorch: 0.6) sends
        fewer candidates to R-Net: 12-46% less detection CPU time, the same 49 faces found on
        ``benchmarks/detection_recall.py``'s photos, but 921 instead of 944 of its 1,200
        harder FER-2013 faces (``--fer 1200``).
    factor : float, default 0.6
        Scale step of the image pyramid. The paper's 0.709 costs ~35% more time; it found
        the same 49 faces on the benchmark photos and 949 instead of 921 of the 1,200
        FER-2013 faces. With ``thresholds=(0.6, 0.7, 0.7), factor=0.709`` (facenet-pytorch's
        and the ``fer`` package's settings) this detector found 971 at 1.6x the defaults' CPU
        time; facenet-pytorch's own ``detect_face`` found 991 at 4.5x.
    max_side : int or None, default 1280
        Downscale images whose longer side exceeds this before detection (boxes are
        mapped back to input pixels), so a 12-megapixel photo costs about what a 720p
        frame does; faces then need about ``min_face_size * longer_side / max_side``
        input pixels. ``None`` detects at full resolution (for small faces in large group photos).
    min_score : float, default 0.9
        Drop detections scoring below this.

    Raises
    ------
    MissingDependencyError
        facenet-pytorch is not installed.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.7, 0.7, 0.7),
        factor: float = 0.6,
        max_side: int | None = 1280,
        min_score: float = 0.9,
    ) -> None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:  # pragma: no cover - core dependency
            raise MissingDependencyError(
                "The 'mtcnn' detector needs facenet-pytorch>=2.5.3: pip install 'facenet-pytorch>=2.5.3'"
            ) from exc
        self.device = torch.device(device or "cpu")
        self.min_face_size = int(min_face_size)
        self.thresholds = [float(t) for t in thresholds]
        self.factor = float(factor)
        self.max_side = max_side
        self.min_score = float(min_score)
        net = MTCNN(
            keep_all=True,
            device=self.device,
            min_face_size=self.min_face_size,
            thresholds=self.thresholds,
            factor=self.factor,
        )
        # Channels-last makes the nets' ceil-mode max pooling 3-8x faster on CPUs (measured in benchmarks/).
        self._net = net.eval().to(memory_format=torch.channels_last)
        from ._nets import FastONet, FastPNet, FastRNet

        self._nets = (FastPNet(self._net.pnet), FastRNet(self._net.rnet), FastONet(self._net.onet))

    def _scale(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = image.shape[:2]
        if self.max_side is None or max(h, w) <= self.max_side:
            return image, 1.0
        scale = self.max_side / max(h, w)
        from PIL import Image

        small = Image.fromarray(image).resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR, reducing_gap=2.0
        )
        return np.asarray(small), scale

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect faces in one ``(H, W, 3)`` uint8 RGB image.

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 3)`` uint8 RGB (not OpenCV's BGR).

        Returns
        -------
        list of Detection
            Sorted by score, highest first; empty when there is no face.
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in several RGB images; images of equal size run as one batch.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            ``(H, W, 3)`` uint8 RGB images; sizes may differ.

        Returns
        -------
        list of list of Detection
            One list per image, in input order.
        """
        from ._cascade import run_cascade

        results: list[list[Detection]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        scaled: list[tuple[np.ndarray, float]] = [self._scale(im) for im in images]
        for i, (small, _) in enumerate(scaled):
            if min(small.shape[:2]) >= max(self.min_face_size, 12):
                groups.setdefault(small.shape[:2], []).append(i)
        for indices in groups.values():
            batch = np.stack([scaled[i][0] for i in indices])
            found = run_cascade(
                batch,
                *self._nets,
                min_face_size=self.min_face_size,
                thresholds=self.thresholds,
                factor=self.factor,
                device=self.device,
            )
            for i, (boxes, marks) in zip(indices, found):
                h, w = images[i].shape[:2]
                results[i] = self._to_detections(boxes, marks, scaled[i][1], w, h)
        return results

    def _to_detections(self, boxes: np.ndarray, points: np.ndarray, scale: float, w: int, h: int) -> list[Detection]:
        out = []
        for row, marks in zip(boxes.reshape(-1, 5), points.reshape(-1, 5, 2)):
            score = float(row[4])
            if score < self.min_score:
                continue
            x1, y1, x2, y2 = (float(v) / scale for v in row[:4])
            x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
            y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            landmarks = tuple((float(px) / scale, float(py) / scale) for px, py in marks)
            out.append(Detection((x1, y1, x2, y2), score, landmarks))
        out.sort(key=lambda d: -d.score)
        return out


#: The ``mtcnn`` entry of the ``emotionkit.detectors`` group (its options: MTCNNDetector's arguments).
SPEC = DetectorSpec(
    name="mtcnn", build=MTCNNDetector, description="MTCNN from facenet-pytorch (bundled weights, offline)."
)
