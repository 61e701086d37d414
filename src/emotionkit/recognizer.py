"""EmotionRecognizer: a face detector in front of an :class:`~emotionkit.inference.InferenceModel`, as one object."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from . import photos, pretrained
from .detectors.passthrough import WholeImageDetector
from .inference import InferenceAttributes, InferenceModel
from .interfaces import FaceDetector
from .io import ImageInput
from .preprocessing import FacePreprocessor
from .pretrained import DEFAULT_MODEL, build_backbone, bundled_models
from .types import EMOTIONS, BatchResults, FaceEmotion

if TYPE_CHECKING:  # pragma: no cover
    from .video.smoothing import Smoother
    from .video.stream import VideoStream

__all__ = ["EmotionRecognizer", "DEFAULT_MODEL", "build_backbone", "bundled_models"]


class EmotionRecognizer(InferenceAttributes):
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
    flip_tta : bool, default False
        Average each face's logits with its mirror image's (flip test-time augmentation; see
        :attr:`flip_tta`).
    heads : mapping, optional
        Extra output heads after ``labels``' columns, such as ``"ferplus"`` (:mod:`emotionkit.heads`);
        read with ``logits(x, head=...)`` / ``inference.probabilities(x, head=...)``.

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
        flip_tta: bool = False,
        heads: Mapping[str, Any] | None = None,
    ) -> None:
        #: The inference core: backbone, preprocessing, labels, temperature and logits runtime.
        self.inference = InferenceModel(
            backbone,
            preprocessor,
            backbone_name=backbone_name,
            backbone_config=backbone_config,
            labels=labels,
            temperature=temperature,
            device=device,
            flip_tta=flip_tta,
            heads=heads,
        )
        self.detector, self.meta, self._whole_image = detector, dict(meta or {}), WholeImageDetector()
        #: What :meth:`from_pretrained` resolved (directory, config, backbone spec, weights); ``None`` when composed.
        self.pretrained_model: pretrained.PretrainedModel | None = None

    @classmethod
    def _from_inference(
        cls, core: InferenceModel, detector: FaceDetector | None, source: pretrained.PretrainedModel
    ) -> EmotionRecognizer:
        rec = cls.__new__(cls)
        rec.inference, rec.detector, rec._whole_image = core, detector, WholeImageDetector()
        rec.meta, rec.pretrained_model = dict(source.config.get("meta") or {}), source
        return rec

    @property
    def face_detector(self) -> FaceDetector:
        """The detector :meth:`predict` uses: :attr:`detector`, or a whole-image one when that is ``None``."""
        return self._whole_image if self.detector is None else self.detector

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike | None = None,
        *,
        detector: str | FaceDetector | None = "yunet",
        device: str | torch.device | None = None,
        detector_options: Mapping[str, Any] | None = None,
        runtime: Literal["auto", "torch", "onnx"] = "auto",
        flip_tta: bool | None = None,
        head: str | None = None,
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
        runtime : {"auto", "torch", "onnx"}, default "auto"
            What classifies faces; explanations always use torch. ``"auto"``: on the CPU, the
            folded backbone written as an onnxruntime graph
            (:class:`~emotionkit.onnx_graph.OnnxGraphRuntime`, 3-8x faster per face than torch's
            eager kernels for one face) when onnxruntime imports and the backbone is convolutional,
            else torch; ``rec.runtime`` says which. ``"torch"``: torch. ``"onnx"``: onnxruntime on the
            directory's ``model.onnx`` when it matches the weights (e.g. an int8 one from
            ``emotionkit export --int8``), else one exported in memory (``pip install "emotionkit[onnx]"``).
        flip_tta : bool, optional
            Average each face with its mirror image (flip test-time augmentation, twice the classifier's
            work); ``None`` (default) does what the model was calibrated and scored with (``"flip_tta"``
            in its ``config.json``; its card says which).
        head : str, optional
            Answer with one of the model's extra output heads (:attr:`heads`): ``"ferplus"`` gives what
            the FER+ crowd would say a face shows, where the model has that head; ``None`` (default): the
            model's own labels (FER-2013's for the bundled models).

        Returns
        -------
        EmotionRecognizer

        Raises
        ------
        UnknownModelError
            Neither a registered backbone nor a saved directory (lists the choices).
        InvalidOptionError
            ``head`` is not one of the model's heads.
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
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime must be 'auto', 'torch' or 'onnx', got {runtime!r}.")
        resolved = pretrained.resolve_pretrained(name_or_dir)
        core = pretrained.load_inference(resolved, device=device)
        if flip_tta is not None:
            core.flip_tta = bool(flip_tta)
        core.head = head
        rec = cls._from_inference(core, pretrained.build_detector(detector, device, detector_options), resolved)
        if runtime == "onnx":
            from .export import attach_onnx

            attach_onnx(rec, resolved.path)  # the folder may hold a matching model.onnx
        elif runtime == "auto":
            from .onnx_graph import use_onnx_graph

            use_onnx_graph(core)
        return rec

    def save_pretrained(self, directory: str | os.PathLike, *, half: bool = False) -> Path:
        """Write ``config.json``, ``preprocessor.json`` and ``model.safetensors``.

        :meth:`from_pretrained` on the directory gives identical outputs with ``runtime="torch"`` (with the
        default ``"auto"``, equal to float rounding: onnxruntime sums in another order).

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
        return pretrained.save_inference(self.inference, directory, meta=self.meta, half=half)

    def predict_proba(self, faces: np.ndarray | torch.Tensor, *, upscale: bool = False) -> np.ndarray:
        """Classify pre-cropped faces.

        Parameters
        ----------
        faces : numpy.ndarray or torch.Tensor
            ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3, 4}, or one face ``(H, W, C)``;
            uint8, uint16 or float in [0, 1]. Larger faces are resized to the model's input size.
        upscale : bool, default False
            Also enlarge faces smaller than both the model's input (:attr:`preprocessor` ``.size``)
            and FER-2013's 48x48 crops; by default they are refused, since answers on a few pixels mean little.

        Returns
        -------
        numpy.ndarray
            ``(N, len(labels))`` float32 probabilities; columns follow :attr:`labels`.

        Raises
        ------
        InvalidImageError
            Wrong shape, channels or values; faces smaller than the model's input without ``upscale``.

        Examples
        --------
        >>> rec = EmotionRecognizer.from_pretrained("cnn", detector="none")
        >>> rec.predict_proba(np.zeros((48, 48, 1), np.uint8)).shape  # one face, channels last
        (1, 7)
        """
        return self.inference.probabilities(self.preprocessor.faces(faces, upscale=upscale))

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

    def predict_batch(
        self, images: Sequence[ImageInput], *, errors: Literal["raise", "skip"] = "raise"
    ) -> BatchResults:
        """Run :meth:`predict` on many images: batched detection, one classifier pass for all faces.

        Parameters
        ----------
        images : sequence
            Anything :meth:`predict` accepts, one per image (a list or tuple, never one path or array).
        errors : {"raise", "skip"}, default "raise"
            What an image that cannot be read does: ``"raise"`` its error (nothing is returned);
            ``"skip"`` gives it an empty list and records the error in the result's ``errors``,
            so the other images' results are kept.

        Returns
        -------
        BatchResults
            A list with one list of faces per image, in input order; ``.errors`` maps the index
            of each skipped image to its error.

        Raises
        ------
        InvalidImageError
            ``images`` is one path, PIL image or array rather than a sequence of them; with
            ``errors="raise"``, an image that is not valid.
        ImageNotFoundError
            With ``errors="raise"``, a missing path.

        Warns
        -----
        EmotionKitWarning
            No face found in an image no larger than twice the model's input: it is probably a
            face crop already, which ``detector="none"`` (or :meth:`predict_proba`) classifies.

        Examples
        --------
        >>> from emotionkit.io import sample_image_path
        >>> rec = EmotionRecognizer.from_pretrained("cnn")
        >>> batch = rec.predict_batch([sample_image_path(), "missing.jpg"], errors="skip")
        >>> [len(faces) for faces in batch], sorted(batch.errors)
        ([1, 0], [1])
        """
        return photos.predict_photos(
            self.inference, self.face_detector, images, errors, warn_crops=self.detector is not None
        )

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
        return photos.explain_photo(self.inference, self.face_detector, image, target, method, **options)

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
        min_hits: int | None = None,
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
            ``min_hits`` (default 2, or 1 with ``every > 1``) detections confirm a new face: it is shown from
            that detection on (earlier frames are not back-filled), and faces detected fewer times are dropped.
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
