"""YuNet: a single-shot face detector with five landmarks, 0.3 MB of bundled weights."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..interfaces import DetectorSpec
from ..io import to_uint8_rgb
from ..types import Detection
from ._yunet_net import STRIDES, YuNetNet

__all__ = ["YuNetDetector", "SPEC", "WEIGHTS_SHA256", "default_runtime"]

#: sha256 of ``assets/detectors/yunet/model.safetensors`` (written by ``tools/convert_yunet.py``).
WEIGHTS_SHA256 = "84b65010fe6cf78a90a79bc34b860c0086982fe117a6d1c92a65fb1170181b94"
#: Network input sides are padded up to a multiple of this (the coarsest stride).
_ALIGN = STRIDES[-1]
#: Photos are shrunk by ``_NATIVE_MIN_FACE / min_face_size`` when that is below 1: faces of ``min_face_size``
#: pixels then reach the network at this size, which it still finds (the smallest stride is 8).
_NATIVE_MIN_FACE = 16


def _weights_path() -> Path:
    return Path(str(resources.files("emotionkit").joinpath("assets/detectors/yunet/model.safetensors")))


def _load_net(path: Path, sha256: str) -> YuNetNet:
    from safetensors import safe_open

    from ..weights import load_weights

    state = load_weights(path, sha256)  # raises ChecksumMismatchError before anything is used
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    net = YuNetNet(
        tuple(json.loads(meta.get("widths", "[64, 64, 64, 64, 64]"))), json.loads(meta.get("shared", "true"))
    )
    net.load_state_dict(state, strict=True)
    return net.eval()


def default_runtime(device: str | torch.device | None = None) -> Literal["torch", "onnx"]:
    """What ``runtime="auto"`` runs the network with: ``"onnx"`` on the CPU when onnxruntime imports, else ``"torch"``.

    Parameters
    ----------
    device : str or torch.device, optional
        Where the detector runs (default CPU); onnxruntime is only used on the CPU.

    Returns
    -------
    {"torch", "onnx"}

    Examples
    --------
    >>> default_runtime("meta")
    'torch'
    """
    if torch.device(device or "cpu").type != "cpu":
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"


class _TorchYuNet:
    """The network on torch, channels-last: a uint8 ``(N, H, W, 3)`` batch in, flat ``(N, 16, A)`` maps out."""

    def __init__(self, net: YuNetNet, device: torch.device) -> None:
        self.device = device
        # Channels-last: 3x less CPU time than NCHW here, most of it in max pooling (measured in benchmarks/).
        self.net = net.to(device).to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        # A view of the NHWC batch: already channels-last, as the network runs.
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            return torch.cat([m.flatten(2) for m in self.net(x)], 2).float().cpu()


class YuNetDetector:
    """YuNet (Wu, Peng and Yu, 2023), a tiny single-shot face detector trained on WIDER FACE.

    One pass of a 74k-parameter network over the whole photo finds faces of all sizes,
    with five landmarks each (eyes, nose tip, mouth corners; image-left first, like
    ``mtcnn``). The network, its priors and the decoding are emotionkit's own; the weights
    are converted from the authors' checkpoint (Apache-2.0) by ``tools/convert_yunet.py``
    and verified by sha256 at load (``assets/detectors/yunet/card.md``).

    Parameters
    ----------
    device : str or torch.device, optional
        Where to run (default CPU).
    min_face_size : int, default 10
        Drop faces whose box is shorter than this on its longer side, in pixels of the photo
        after the ``max_side`` downscale (as for ``mtcnn``). Above 16 the photo is also shrunk
        by ``16 / min_face_size`` before the network sees it, so asking for big faces only
        is cheaper.
    min_score : float, default 0.5
        Drop detections whose score (geometric mean of the face and objectness
        probabilities) is below this. Chosen on FER-2013 *Training* faces pasted on photos
        (``benchmarks/detection_recall.py --fer 1200 --fer-usage Training --score-sweep``):
        at 0.5 this detector makes as many false detections there as ``mtcnn``'s defaults
        (78 vs 79) and finds 978 of the 1,200 faces against its 874; scikit-image's cat
        photo scores 0.39.
    max_side : int or None, default 1280
        Downscale photos whose longer side exceeds this before detection (boxes and landmarks
        are mapped back to input pixels); ``None`` detects at full resolution.
    nms_iou : float, default 0.3
        Boxes overlapping a higher-scoring box by more than this IoU are suppressed.
    runtime : {"auto", "torch", "onnx"}, default "auto"
        What runs the network. ``"onnx"`` runs the same weights with onnxruntime
        (a dependency of emotionkit): about 0.6x the CPU time of torch's kernels
        (``benchmarks/detection_recall.py``), the same detections to float rounding.
        ``"auto"`` picks ``"onnx"`` on the CPU when onnxruntime is installed and
        ``"torch"`` otherwise (:func:`default_runtime`); :attr:`runtime` says which it chose.

    Raises
    ------
    ValueError
        An option out of range, or an unknown ``runtime``.
    ChecksumMismatchError
        The bundled weights file does not match its sha256.
    MissingDependencyError
        ``runtime="onnx"`` without onnxruntime installed (``"auto"`` then uses torch).

    Examples
    --------
    >>> from emotionkit.io import load_image, sample_image_path
    >>> faces = YuNetDetector().detect(load_image(sample_image_path()))
    >>> len(faces), len(faces[0].landmarks)
    (1, 5)
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        min_face_size: int = 10,
        min_score: float = 0.5,
        max_side: int | None = 1280,
        nms_iou: float = 0.3,
        runtime: Literal["auto", "torch", "onnx"] = "auto",
    ) -> None:
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"Received runtime={runtime!r}. Allowed: 'auto', 'torch' or 'onnx'.")
        if min_face_size < 1 or not 0.0 <= min_score <= 1.0 or not 0.0 < nms_iou <= 1.0:
            raise ValueError(
                f"Received min_face_size={min_face_size}, min_score={min_score}, nms_iou={nms_iou}. "
                "Allowed: min_face_size >= 1, 0 <= min_score <= 1, 0 < nms_iou <= 1."
            )
        self.device = torch.device(device or "cpu")
        self.min_face_size = int(min_face_size)
        self.min_score = float(min_score)
        self.max_side = None if max_side is None else int(max_side)
        self.nms_iou = float(nms_iou)
        #: What runs the network, ``"torch"`` or ``"onnx"`` (what ``"auto"`` resolved to).
        self.runtime: Literal["torch", "onnx"] = default_runtime(self.device) if runtime == "auto" else runtime
        net = _load_net(_weights_path(), WEIGHTS_SHA256).take_rgb()  # photos are RGB: no channel flip per call
        #: Maps a uint8 ``(N, H, W, 3)`` RGB batch (sides multiples of 32) to flat ``(N, 16, A)`` maps.
        self._net: Callable[[np.ndarray], torch.Tensor]
        if self.runtime == "onnx":
            from ._yunet_onnx import OnnxYuNet

            self._net = OnnxYuNet(net)
        else:
            self._net = _TorchYuNet(net, self.device)

    def _scales(self, h: int, w: int) -> tuple[float, float]:
        """(fit, scale): ``fit`` brings the longer side within ``max_side``; ``scale`` is what the network sees."""
        fit = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            fit = self.max_side / max(h, w)
        return fit, fit * min(1.0, _NATIVE_MIN_FACE / self.min_face_size)

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Resize to the network's scale; return the RGB array, ``fit`` and ``scale`` (see :meth:`_scales`)."""
        h, w = image.shape[:2]
        fit, scale = self._scales(h, w)
        if scale == 1.0:
            return image, fit, scale
        from PIL import Image

        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # reducing_gap=1: an integer box reduction first, then bilinear; on a 12 MP photo 31 ms instead of 56 ms
        # for reducing_gap=2 (which at a 3.15x shrink reduces nothing) and 71 ms for plain bilinear.
        small = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)
        return np.asarray(small), fit, scale

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect faces in one image.

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 3)`` uint8 RGB (not OpenCV's BGR); grey ``(H, W)``, ``(H, W, 1)`` and
            RGBA are converted, as :func:`emotionkit.io.to_uint8_rgb` does.

        Returns
        -------
        list of Detection
            Sorted by score, highest first; empty when there is no face.

        Raises
        ------
        InvalidImageError
            Not an image array (see :func:`emotionkit.io.to_uint8_rgb`).
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in several images; images with the same detection size run as one batch.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            Images as :meth:`detect` takes them; sizes may differ.

        Returns
        -------
        list of list of Detection
            One list per image, in input order.
        """
        arrays = [to_uint8_rgb(im) for im in images]
        prepared = [self._prepare(im) for im in arrays]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (small, fit, scale) in enumerate(prepared):
            if min(small.shape[:2]) * fit / scale >= self.min_face_size:
                groups.setdefault(_padded(small.shape[:2]), []).append(i)
        results: list[list[Detection]] = [[] for _ in arrays]
        for (ph, pw), indices in groups.items():
            first = prepared[indices[0]][0]
            if (
                len(indices) == 1
                and first.shape[:2] == (ph, pw)
                and first.flags.c_contiguous
                and self.runtime == "onnx"
            ):
                batch = first[None]  # onnxruntime reads the photo's own pixels: no copy
            else:
                batch = np.zeros((len(indices), ph, pw, 3), np.uint8)  # zero padding up to multiples of 32
                for row, i in enumerate(indices):
                    small = prepared[i][0]
                    batch[row, : small.shape[0], : small.shape[1]] = small
            maps = self._net(batch)
            priors = _priors(ph, pw)
            for row, i in enumerate(indices):
                h, w = arrays[i].shape[:2]
                results[i] = self._to_detections(_decode(maps[row], priors, self.min_score), prepared[i][1:], w, h)
        return results

    def _to_detections(
        self, decoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor], scales: tuple[float, float], w: int, h: int
    ) -> list[Detection]:
        from torchvision.ops import nms

        fit, scale = scales
        boxes, scores, marks = decoded
        if scores.numel() == 0:
            return []
        keep = nms(boxes, scores, self.nms_iou)
        kept = zip((boxes[keep] / scale).tolist(), scores[keep].tolist(), (marks[keep] / scale).tolist())
        out = []
        for (x1, y1, x2, y2), score, points in kept:
            if max(x2 - x1, y2 - y1) * fit < self.min_face_size:
                continue
            x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
            y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            landmarks = tuple((points[2 * k], points[2 * k + 1]) for k in range(5))
            out.append(Detection((x1, y1, x2, y2), float(score), landmarks))
        return out  # nms returns indices by decreasing score


def _padded(shape: tuple[int, ...]) -> tuple[int, int]:
    return tuple(-(-s // _ALIGN) * _ALIGN for s in shape[:2])  # type: ignore[return-value]


@lru_cache(maxsize=32)
def _priors(height: int, width: int) -> torch.Tensor:
    """``(3, A)`` float32 rows ``col, row, stride`` of every cell of the three levels, in the flat maps' order.

    Computed once per network input size (video frames and photo batches repeat sizes).
    """
    cols, rows, strides = [], [], []
    for stride in STRIDES:
        h, w = height // stride, width // stride
        r, c = np.divmod(np.arange(h * w), w)
        cols.append(c)
        rows.append(r)
        strides.append(np.full(h * w, stride))
    return torch.from_numpy(np.stack([np.concatenate(v) for v in (cols, rows, strides)]).astype(np.float32))


def _decode(
    maps: torch.Tensor, priors: torch.Tensor, min_score: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn one image's flat maps ``(16, A)`` into boxes, scores and landmarks above ``min_score``.

    Each cell of a level with stride ``s`` has a prior point at ``(col * s, row * s)``; the box
    centre and landmarks are offsets from it in units of ``s``, the box sides ``exp(.) * s``.
    """
    score = torch.sqrt(torch.sigmoid(maps[0]) * torch.sigmoid(maps[1]))
    idx = torch.nonzero(score >= min_score).flatten()
    if idx.numel() == 0:
        return torch.zeros((0, 4)), torch.zeros(0), torch.zeros((0, 10))
    sel = maps[:, idx].float()
    cols, rows, stride = priors[:, idx]
    cx, cy = (sel[2] + cols) * stride, (sel[3] + rows) * stride
    half_w, half_h = torch.exp(sel[4]) * (stride / 2), torch.exp(sel[5]) * (stride / 2)
    boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1)
    points = (sel[6:16].reshape(5, 2, -1) + torch.stack([cols, rows])[None]) * stride  # (5, 2, n)
    return boxes, score[idx].float(), points.permute(2, 0, 1).reshape(-1, 10)


#: The ``yunet`` entry of the ``emotionkit.detectors`` group (its options: YuNetDetector's arguments).
SPEC = DetectorSpec(
    name="yunet",
    build=YuNetDetector,
    description="YuNet single-shot detector with five landmarks (bundled 0.3 MB weights, offline).",
)
