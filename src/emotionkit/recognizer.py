"""EmotionRecognizer: a face detector, a preprocessor and a backbone composed into one object."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from .exceptions import (
    IncompatibleComponentsError,
    InvalidOptionError,
    NoBundledWeightsError,
    UnknownModelError,
    suggest,
)
from .interfaces import BackboneSpec, FaceDetector
from .io import ImageInput, load_image
from .preprocessing import FacePreprocessor
from .registry import list_plugins, load_plugin
from .types import EMOTIONS, Detection, FaceEmotion
from .weights import CONFIG_NAME, PREPROCESSOR_NAME, WEIGHTS_NAME, WeightsSpec, load_weights, save_weights

if TYPE_CHECKING:  # pragma: no cover
    from .video.smoothing import Smoother
    from .video.stream import VideoStream

__all__ = ["EmotionRecognizer", "DEFAULT_MODEL", "build_backbone", "bundled_models"]

#: The model ``from_pretrained()`` loads when no name is given.
DEFAULT_MODEL = "cnn"
FORMAT = "emotionkit/1"


def build_backbone(
    name: str, config: Mapping[str, Any] | None = None, *, num_classes: int = len(EMOTIONS)
) -> nn.Module:
    """Build an untrained backbone from the registry.

    Parameters
    ----------
    name : str
        A registered backbone name (``emotionkit models`` lists them).
    config : mapping, optional
        Keyword arguments for the spec's ``build``; merged over its ``default_config``.
    num_classes : int, default 7
        Number of outputs.

    Returns
    -------
    torch.nn.Module
        Maps ``(N, C, H, W)`` float32 to ``(N, num_classes)`` logits.

    Examples
    --------
    >>> model = build_backbone("cnn")
    >>> model(torch.zeros(2, 1, 48, 48)).shape
    torch.Size([2, 7])
    """
    spec: BackboneSpec = load_plugin("backbones", name)
    kwargs = {**spec.default_config, **(config or {})}
    return spec.build(num_classes=num_classes, **kwargs)


def bundled_models() -> dict[str, WeightsSpec]:
    """Return the registered backbones that ship pretrained weights, with their default weights.

    Importing each backbone is needed to read its weights; broken plugins are skipped.

    Returns
    -------
    dict of str to WeightsSpec
        Backbone name to its first (default) weights whose file is present, in registry order.
    """
    out: dict[str, WeightsSpec] = {}
    for name in list_plugins("backbones"):
        try:
            spec = load_plugin("backbones", name)
        except Exception:  # a broken plugin is reported by `emotionkit models`, not here
            continue
        if spec.weights and spec.weights[0].exists():
            out[name] = spec.weights[0]
    return out


def _uses_convolutions(model: nn.Module) -> bool:
    return sum(isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) for m in model.modules()) > 2


def _first_conv_channels(model: nn.Module) -> int | None:
    """Input channels of the first ``nn.Conv2d`` (the stem or patch embedding), or ``None`` without one."""
    return next((int(m.in_channels) for m in model.modules() if isinstance(m, nn.Conv2d)), None)


class EmotionRecognizer:
    """Find faces, preprocess them as the weights were trained, classify and explain.

    Build one with :meth:`from_pretrained` (bundled weights or a saved directory),
    or compose the parts yourself.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps ``(N, C, H, W)`` to ``(N, len(labels))`` logits.
    preprocessor : FacePreprocessor
        How faces become the backbone's input.
    detector : FaceDetector, optional
        Finds faces in photos; ``None`` means the whole image is one face.
    backbone_name : str, default "custom"
        Registry name of the backbone (used by :meth:`save_pretrained`).
    backbone_config : mapping, optional
        Keyword arguments that rebuild the backbone through the registry.
    labels : sequence of str, default EMOTIONS
        Class names, in the backbone's output order.
    temperature : float, default 1.0
        Softmax temperature fitted for calibration.
    device : str or torch.device, optional
        Where the backbone runs (default CPU).
    meta : mapping, optional
        Metadata carried to :meth:`save_pretrained` (model card, training command, metrics).

    Raises
    ------
    IncompatibleComponentsError
        The preprocessor's channels differ from the backbone's ``in_channels``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        preprocessor: FacePreprocessor,
        detector: FaceDetector | None = None,
        *,
        backbone_name: str = "custom",
        backbone_config: Mapping[str, Any] | None = None,
        labels: Sequence[str] = EMOTIONS,
        temperature: float = 1.0,
        device: str | torch.device | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.backbone_config = dict(backbone_config or {})
        in_channels = self.backbone_config.get("in_channels", _first_conv_channels(backbone))
        if in_channels is not None and int(in_channels) != preprocessor.channels:
            raise IncompatibleComponentsError(
                f"The preprocessor gives {preprocessor.channels}-channel faces but backbone {backbone_name!r} expects "
                f"in_channels={in_channels}. Use FacePreprocessor(channels={in_channels}, ...) or rebuild the backbone "
                f"with in_channels={preprocessor.channels}."
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.device = torch.device(device or "cpu")
        self.backbone_name = backbone_name
        self.preprocessor = preprocessor
        self.detector = detector
        self.labels: tuple[str, ...] = tuple(labels)
        self.temperature = float(temperature)
        self.meta: dict[str, Any] = dict(meta or {})
        self._channels_last = self.device.type == "cpu" and _uses_convolutions(backbone)
        #: "torch", or "onnx" once :func:`emotionkit.export.attach_onnx` routes :meth:`logits` to onnxruntime.
        self.runtime = "torch"
        self._onnx: Any = None
        self._folded: tuple[tuple[tuple[int, int], ...], nn.Module] | None = None
        self.model = backbone.to(self.device).eval()
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike | None = None,
        *,
        detector: str | FaceDetector | None = "yunet",
        device: str | torch.device | None = None,
        detector_options: Mapping[str, Any] | None = None,
        runtime: Literal["torch", "onnx"] = "torch",
    ) -> EmotionRecognizer:
        """Load bundled weights by backbone name, or a directory written by :meth:`save_pretrained`.

        Parameters
        ----------
        name_or_dir : str or os.PathLike, optional
            ``"cnn"``, ``"resnet"``, ``"mobilenetv2"``, ``"vit"`` (or a third-party
            backbone with weights), or a directory; ``None`` loads :data:`DEFAULT_MODEL`.
        detector : str or FaceDetector or None, default "yunet"
            A registered detector name (``"yunet"``, ``"mtcnn"``, ``"none"``), an instance, or ``None``
            (same as ``"none"``).
        device : str or torch.device, optional
            Where to run (default CPU).
        detector_options : mapping, optional
            Keyword arguments for the detector's constructor.
        runtime : {"torch", "onnx"}, default "torch"
            What classifies faces. ``"onnx"`` runs the backbone with onnxruntime
            (``pip install "emotionkit[onnx]"``), using the directory's ``model.onnx`` when it
            matches the weights, else exporting in memory; explanations still use torch.

        Returns
        -------
        EmotionRecognizer

        Raises
        ------
        UnknownModelError
            Neither a registered backbone nor a saved directory (lists the choices).
        NoBundledWeightsError
            The backbone exists but ships no weights.
        ChecksumMismatchError
            The weights file does not match its recorded sha256.

        Examples
        --------
        >>> rec = EmotionRecognizer.from_pretrained("cnn", detector="none")
        >>> rec.labels[:3]
        ('angry', 'disgust', 'fear')
        """
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {runtime!r}.")
        if runtime == "onnx":
            from .export import attach_onnx

            rec = cls.from_pretrained(name_or_dir, detector=detector, device=device, detector_options=detector_options)
            folder = Path(DEFAULT_MODEL if name_or_dir is None else name_or_dir)
            if not folder.is_dir():  # bundled weights: their folder may hold a matching model.onnx
                folder = Path(load_plugin("backbones", str(folder)).weights[0].path)
            return attach_onnx(rec, folder)
        name = DEFAULT_MODEL if name_or_dir is None else name_or_dir
        path = Path(name)
        if path.is_dir() and (path / CONFIG_NAME).is_file():
            return cls._from_directory(path, None, detector=detector, device=device, detector_options=detector_options)
        name = str(name)
        backbones = list_plugins("backbones")
        if name not in backbones:
            looks_like_path = os.sep in name or name.startswith(".") or path.suffix
            where = (
                f" There is no model directory (with {CONFIG_NAME}) at {str(path)!r} either." if looks_like_path else ""
            )
            raise UnknownModelError(
                f"Unknown model {name!r}. Available: {', '.join(backbones)} (or a directory written by "
                f"save_pretrained / emotionkit train).{where}{suggest(name, backbones)}"
            )
        spec: BackboneSpec = load_plugin("backbones", name)
        if not spec.weights or not spec.weights[0].exists():
            with_weights = ", ".join(bundled_models()) or "none yet"
            raise NoBundledWeightsError(
                f"Backbone {name!r} ships no bundled weights yet (models with weights: {with_weights}). "
                f"Train it with `emotionkit train --backbone {name} --data PATH --out runs/{name}` and load the run "
                f"directory with EmotionRecognizer.from_pretrained('runs/{name}')."
            )
        weights = spec.weights[0]
        return cls._from_directory(
            weights.path, weights.sha256, detector=detector, device=device, detector_options=detector_options
        )

    @classmethod
    def _from_directory(
        cls,
        path: Path,
        sha256: str | None,
        *,
        detector: str | FaceDetector | None,
        device: str | torch.device | None,
        detector_options: Mapping[str, Any] | None,
    ) -> EmotionRecognizer:
        config = json.loads((path / CONFIG_NAME).read_text())
        if config.get("format") != FORMAT:
            raise UnknownModelError(
                f"{str(path / CONFIG_NAME)!r} is not an emotionkit model config (format {config.get('format')!r}, expected {FORMAT!r})."
            )
        preprocessor = FacePreprocessor.from_dict(json.loads((path / PREPROCESSOR_NAME).read_text()))
        labels = tuple(config.get("labels", EMOTIONS))
        model = build_backbone(config["backbone"], config.get("backbone_config"), num_classes=len(labels))
        state = load_weights(path / WEIGHTS_NAME, sha256 or config.get("weights_sha256"))
        model.load_state_dict(state)
        return cls(
            model,
            preprocessor,
            _make_detector(detector, device, detector_options),
            backbone_name=config["backbone"],
            backbone_config=config.get("backbone_config"),
            labels=labels,
            temperature=float(config.get("temperature", 1.0)),
            device=device,
            meta=config.get("meta"),
        )

    def save_pretrained(self, directory: str | os.PathLike, *, half: bool = False) -> Path:
        """Write ``config.json``, ``preprocessor.json`` and ``model.safetensors``.

        :meth:`from_pretrained` on the directory gives identical outputs.

        Parameters
        ----------
        directory : str or os.PathLike
            Created if missing.
        half : bool, default False
            Store weights as float16 (half the size; outputs then differ slightly).

        Returns
        -------
        pathlib.Path
            The directory.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.model.state_dict().items()}
        digest = save_weights(state, out / WEIGHTS_NAME, half=half)
        config = {
            "format": FORMAT,
            "backbone": self.backbone_name,
            "backbone_config": self.backbone_config,
            "labels": list(self.labels),
            "temperature": self.temperature,
            "weights_sha256": digest,
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "meta": self.meta,
        }
        (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        (out / PREPROCESSOR_NAME).write_text(json.dumps(self.preprocessor.to_dict(), indent=2) + "\n")
        return out

    # ------------------------------------------------------------------ inference
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Run the backbone on preprocessed faces ``(N, C, H, W)`` and return raw logits on the CPU.

        Parameters
        ----------
        x : torch.Tensor
            Faces as :attr:`preprocessor` makes them (``preprocessor.faces`` or ``preprocessor.crops``).

        Returns
        -------
        torch.Tensor
            ``(N, len(labels))`` float32 logits, before the temperature and the softmax.
        """
        if x.shape[0] == 0:
            return torch.empty((0, len(self.labels)))
        if self._onnx is not None:
            return self._onnx(x)
        x = x.to(self.device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._inference_model()(x).float().cpu()

    def _inference_model(self) -> nn.Module:
        """The backbone with BatchNorm folded into the layers before it (:func:`~emotionkit.fusion.fold_batch_norm`).

        Rebuilt whenever a parameter or buffer of :attr:`model` changed (in place or replaced)
        or the model is in training mode, so :attr:`model` stays the one source of truth.
        """
        if self.model.training:
            return self.model
        tensors = [*self.model.parameters(), *self.model.buffers()]
        key = tuple((id(t), t._version) for t in tensors)
        cached = self._folded
        if cached is not None and cached[0] == key:
            return cached[1]
        from .fusion import fold_batch_norm

        folded = fold_batch_norm(self.model)
        self._folded = (key, folded)
        return folded

    def _probabilities(self, x: torch.Tensor) -> np.ndarray:
        return torch.softmax(self.logits(x) / self.temperature, dim=1).numpy()

    def predict_proba(self, faces: np.ndarray | torch.Tensor) -> np.ndarray:
        """Classify pre-cropped faces.

        Parameters
        ----------
        faces : numpy.ndarray or torch.Tensor
            ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3, 4}; uint8, uint16 or
            float in [0, 1]. Resized to the model's input size when needed.

        Returns
        -------
        numpy.ndarray
            ``(N, len(labels))`` float32 probabilities; columns follow :attr:`labels`.

        Raises
        ------
        InvalidImageError
            Wrong shape, channels or values.
        """
        return self._probabilities(self.preprocessor.faces(faces))

    def _results(self, detections: Sequence[Detection], probs: np.ndarray) -> list[FaceEmotion]:
        out = []
        for det, p in zip(detections, probs):
            scores = {label: float(v) for label, v in zip(self.labels, p)}
            out.append(FaceEmotion(det, scores, self.labels[int(np.argmax(p))]))
        return out

    def _detector(self) -> FaceDetector:
        if self.detector is None:
            from .detectors.passthrough import WholeImageDetector

            self.detector = WholeImageDetector()
        return self.detector

    def predict(self, image: ImageInput) -> list[FaceEmotion]:
        """Find every face in a photo and classify its expression.

        Parameters
        ----------
        image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
            A path, a PIL image, or an array ``(H, W)``, ``(H, W, 1|3|4)`` of uint8,
            uint16 or float in [0, 1]. EXIF orientation is applied.

        Returns
        -------
        list of FaceEmotion
            One per face, highest detection score first; empty when there is no face.

        Raises
        ------
        ImageNotFoundError, InvalidImageError
            A missing path or an input that is not a valid image.

        Examples
        --------
        >>> from emotionkit.io import sample_image_path
        >>> rec = EmotionRecognizer.from_pretrained("cnn")
        >>> faces = rec.predict(sample_image_path())
        >>> len(faces), round(sum(faces[0].scores.values()), 4)
        (1, 1.0)
        """
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageInput]) -> list[list[FaceEmotion]]:
        """Run :meth:`predict` on many images: batched detection, one classifier pass for all faces.

        Parameters
        ----------
        images : sequence
            Anything :meth:`predict` accepts, one per image.

        Returns
        -------
        list of list of FaceEmotion
            One list per image, in input order.
        """
        arrays = [load_image(im) for im in images]
        detections = self._detector().detect_batch(arrays)
        crops = [self.preprocessor.crops(arr, dets) for arr, dets in zip(arrays, detections)]
        counts = [len(d) for d in detections]
        if sum(counts) == 0:
            return [[] for _ in arrays]
        probs = self._probabilities(torch.cat(crops))
        out, start = [], 0
        for dets, n in zip(detections, counts):
            out.append(self._results(dets, probs[start : start + n]))
            start += n
        return out

    def explain(
        self, image: ImageInput, target: str | None = None, method: str = "gradcam", **options: Any
    ) -> list[FaceEmotion]:
        """Find and classify every face, with a heatmap of the regions behind the decision.

        Parameters
        ----------
        image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
            Anything :meth:`predict` accepts.
        target : str, optional
            The class to explain for every face; ``None`` explains each face's top label.
        method : str, default "gradcam"
            A registered explainer the backbone supports (``"gradcam"``; ``"attention"`` for the ViT).
        **options
            Explainer options (e.g. ``discard_ratio`` for ``"attention"``).

        Returns
        -------
        list of FaceEmotion
            As :meth:`predict`, with ``heatmap`` set: ``(h, w)`` float32 in [0, 1] on the face
            crop's grid (:attr:`preprocessor` ``.size``) covering ``preprocessor.crop_box(face.detection)``;
            :func:`emotionkit.explainers.heatmap_to_image` maps it onto the photo.

        Raises
        ------
        UnknownPluginError
            Unknown ``method`` (lists the available ones).
        IncompatibleComponentsError
            A method the backbone cannot do, e.g. ``"attention"`` on a CNN.
        UnknownTargetError
            ``target`` is not one of :attr:`labels`.
        ImageNotFoundError, InvalidImageError
            A missing path or an input that is not a valid image.

        Examples
        --------
        >>> from emotionkit.io import sample_image_path
        >>> rec = EmotionRecognizer(build_backbone("cnn"), FacePreprocessor(), backbone_name="cnn")  # untrained
        >>> face = rec.explain(sample_image_path(), target="happy")[0]
        >>> face.heatmap.shape, bool(face.heatmap.min() >= 0 and face.heatmap.max() <= 1)
        ((48, 48), True)
        """
        from dataclasses import replace

        from .explainers import get_explainer, resolve_targets

        explainer = get_explainer(method, self.backbone_name, **options)
        resolve_targets(target, self.labels, [])  # a bad target fails before any detection work
        array = load_image(image)
        detections = self._detector().detect(array)
        if not detections:
            return []
        x = self.preprocessor.crops(array, detections)
        probs = self._probabilities(x)
        targets = resolve_targets(target, self.labels, [int(i) for i in probs.argmax(axis=1)])
        x = x.to(self.device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        maps = explainer(self.model, x, targets)
        return [replace(face, heatmap=heatmap) for face, heatmap in zip(self._results(detections, probs), maps)]

    def stream(
        self,
        source: str | os.PathLike | int,
        *,
        every: int = 1,
        smoothing: Literal["ema", "window", "none"] | Smoother = "ema",
        alpha: float = 0.3,
        window: int = 8,
        iou_threshold: float = 0.3,
        max_age: int | None = None,
        min_hits: int = 2,
        max_frames: int | None = None,
        camera_options: dict[str, str] | None = None,
    ) -> VideoStream:
        """Follow every face of a video file or camera over time, frame by frame.

        Returns a :class:`~emotionkit.video.VideoStream`: an iterator of
        :class:`~emotionkit.video.FrameResult` (frame index, time, tracked faces with a stable
        track id and raw and smoothed probabilities). Frames are processed one at a time, so
        memory stays flat on long videos. Needs PyAV (``pip install 'emotionkit[video]'``).

        Parameters
        ----------
        source : str, os.PathLike or int
            A video file, or a camera index (``0`` is the default camera).
        every : int, default 1
            Detect faces on every ``every``-th frame; in between, boxes are carried and still classified.
        smoothing : {"ema", "window", "none"} or Smoother, default "ema"
            Per-track temporal smoothing of the probabilities.
        alpha : float, default 0.3
            EMA weight of the newest frame (smaller is steadier).
        window : int, default 8
            Frames averaged by ``"window"``.
        iou_threshold, max_age, min_hits
            Tracker settings, see :class:`~emotionkit.video.IoUTracker` (``max_age`` defaults to ``max(30, 3 * every)``).
        max_frames : int, optional
            Stop after this many frames.
        camera_options : mapping of str to str, optional
            FFmpeg camera options, e.g. ``{"video_size": "640x480", "framerate": "30"}``.

        Returns
        -------
        emotionkit.video.VideoStream
            Iterate it, or use it in a ``with`` block; ``.fps``, ``.size``, ``.frame_count`` describe the source.

        Raises
        ------
        VideoNotFoundError, InvalidVideoError, CameraError
            Missing, corrupt or video-less files; cameras that cannot be opened.
        VideoOptionError
            ``every``, smoothing or tracker settings out of range.

        Examples
        --------
        >>> rec = EmotionRecognizer.from_pretrained("cnn")  # doctest: +SKIP
        >>> for frame in rec.stream("talk.mp4", every=2):  # doctest: +SKIP
        ...     for face in frame.faces:
        ...         print(frame.time, face.track_id, face.label, round(face.confidence, 2))
        """
        from .video.stream import VideoStream

        return VideoStream(
            self,
            source,
            every=every,
            smoothing=smoothing,
            alpha=alpha,
            window=window,
            iou_threshold=iou_threshold,
            max_age=max_age,
            min_hits=min_hits,
            max_frames=max_frames,
            camera_options=camera_options,
        )

    def __repr__(self) -> str:
        detector = type(self.detector).__name__ if self.detector is not None else "None"
        return (
            f"EmotionRecognizer(backbone={self.backbone_name!r}, detector={detector}, "
            f"input={self.preprocessor.channels}x{self.preprocessor.size[0]}x{self.preprocessor.size[1]}, "  # type: ignore[index]
            f"device={str(self.device)!r})"
        )


def _make_detector(
    detector: str | FaceDetector | None, device: Any, options: Mapping[str, Any] | None
) -> FaceDetector | None:
    if detector is None:
        return None
    if isinstance(detector, str):
        spec = load_plugin("detectors", detector)
        options = dict(options or {})
        params = inspect.signature(spec.build).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            allowed = [k for k, p in params.items() if k != "device" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
            unknown = [k for k in options if k not in allowed]
            if unknown:
                raise InvalidOptionError(
                    f"Detector {detector!r} does not take option(s) {', '.join(map(repr, unknown))}. "
                    f"Allowed: {', '.join(allowed) or 'none'}.{suggest(unknown[0], allowed)}"
                )
        return spec.build(device=device, **options)
    if not isinstance(detector, FaceDetector):
        raise TypeError(f"detector must be a registered name, a FaceDetector or None, got {type(detector).__name__}.")
    return detector
