"""Moving weights between the torch backbones and their Keras twins, both ways.

torch to Keras (:func:`load_torch_weights`, :func:`from_recognizer`, :func:`from_pretrained`)
lets Keras users run emotionkit's bundled weights. Keras to torch (:func:`torch_state_dict`,
:func:`to_recognizer`, :func:`save_pretrained`) is how a Keras-trained model reaches
:class:`~emotionkit.recognizer.EmotionRecognizer`: it becomes the torch backbone it mirrors,
saved in the usual ``config.json`` + ``model.safetensors`` layout. We export rather than
wrap a Keras model as a backbone plugin because everything downstream of the backbone
(Grad-CAM hooks on ``target_layer``, channels-last inference, ``save_pretrained``, the CLI,
ONNX export) works on torch modules; an exported model needs neither Keras nor its backend
at inference, and its outputs equal the Keras ones (tested to 1e-4 on each backend).

Layouts: torch is NCHW with conv kernels ``(out, in, kh, kw)``; Keras is NHWC with
``(kh, kw, in, out)``, depthwise kernels ``(kh, kw, channels, multiplier)`` and dense
kernels ``(in, out)``. A dense layer right after ``Flatten`` also needs its input
features reordered, from torch's (C, H, W) flattening order to Keras' (H, W, C).
The layout helpers are plain numpy and need no Keras.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import IncompatibleComponentsError
from ..heads import own_head_state
from ..types import EMOTIONS
from ._core import import_keras, model_info, torch_config, triton_would_crash
from ._transfer import (
    _find_info,
    conv_kernel_to_keras,
    conv_kernel_to_torch,
    dense_kernel_to_keras,
    dense_kernel_to_torch,
    depthwise_kernel_to_keras,
    depthwise_kernel_to_torch,
    load_torch_weights,
    torch_state_dict,
)
from .builders import ARCHITECTURES, _keras_twin, _keras_twin_from_directory, build

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import torch

    from ..preprocessing import FacePreprocessor
    from ..recognizer import EmotionRecognizer

__all__ = [
    "conv_kernel_to_keras",
    "conv_kernel_to_torch",
    "depthwise_kernel_to_keras",
    "depthwise_kernel_to_torch",
    "dense_kernel_to_keras",
    "dense_kernel_to_torch",
    "load_torch_weights",
    "torch_state_dict",
    "from_recognizer",
    "from_pretrained",
    "to_recognizer",
    "save_pretrained",
    "nhwc_faces",
    "predict_proba",
]


def from_recognizer(
    recognizer: EmotionRecognizer,
    *,
    output: str = "probabilities",
    temperature: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build the Keras twin of a recognizer's torch backbone, with its weights.

    Parameters
    ----------
    recognizer : EmotionRecognizer
        Its ``backbone_name`` must have a Keras builder; its ``backbone_config`` is reused.
    output : {"probabilities", "logits"}, default "probabilities"
        See :func:`~emotionkit.keras.build_cnn`.
    temperature : float, optional
        Default: the recognizer's (so probabilities equal ``recognizer.predict_proba``).
    name : str, optional
        Keras model name.

    Returns
    -------
    keras.Model

    Raises
    ------
    UnknownModelError
        The backbone has no Keras builder.
    """
    return _keras_twin(
        recognizer.backbone_name,
        recognizer.backbone_config,
        recognizer.labels,
        recognizer.temperature if temperature is None else temperature,
        recognizer.preprocessor.to_dict(),
        own_head_state(recognizer.model.state_dict(), recognizer.labels, recognizer.heads),  # a twin: own labels
        output=output,
        name=name,
    )


def from_pretrained(
    name_or_dir: str | os.PathLike,
    *,
    output: str = "probabilities",
    temperature: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Load bundled weights by name, or a directory written by ``save_pretrained`` / ``emotionkit train``, into Keras.

    The files are read directly (checksum verified), without building the torch model.

    Parameters
    ----------
    name_or_dir : str or os.PathLike
        ``"cnn"``, ``"resnet"``, ``"mobilenetv2"``, or a model directory (its ``config.json``
        names the architecture and its ``backbone_config``).
    output, temperature, name
        As for :func:`from_recognizer`; the temperature defaults to the saved one.

    Returns
    -------
    keras.Model

    Raises
    ------
    UnknownModelError, NoBundledWeightsError, ChecksumMismatchError
        As :meth:`EmotionRecognizer.from_pretrained`; UnknownModelError also for a backbone without a Keras builder.
    """
    from ..pretrained import resolve_pretrained

    # resolve_pretrained raises the errors of EmotionRecognizer.from_pretrained
    return _keras_twin_from_directory(
        resolve_pretrained(name_or_dir), output=output, temperature=temperature, name=name
    )


# ---------------------------------------------------------------------------------------------- keras -> torch


def _architecture_and_config(
    model: Any, architecture: str | None, config: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    try:
        info = _find_info(model)
    except IncompatibleComponentsError:
        if architecture is None or config is None:
            raise
        info = {}
    arch = architecture or info["architecture"]
    return arch, torch_config(config if config is not None else info["config"]), info


def to_recognizer(
    model: keras.Model,
    *,
    architecture: str | None = None,
    config: Mapping[str, Any] | None = None,
    preprocessor: FacePreprocessor | None = None,
    labels: Sequence[str] | None = None,
    temperature: float | None = None,
    device: str | torch.device | None = None,
) -> EmotionRecognizer:
    """Export a Keras twin to the torch backbone it mirrors, as an :class:`EmotionRecognizer`.

    Parameters
    ----------
    model : keras.Model
        A Keras model from emotionkit.keras, trained or not.
    architecture, config : optional
        Needed only for a model read back with ``keras.models.load_model`` (which loses emotionkit's
        build information): the name and the config it was built with.
    preprocessor : FacePreprocessor, optional
        Default: what the model was built or loaded with.
    labels : sequence of str, optional
        Default: the model's.
    temperature : float, optional
        Default: the model's.
    device : str or torch.device, optional
        Where the recognizer runs.

    Returns
    -------
    EmotionRecognizer
        No detector (``predict`` treats each image as one face); set ``recognizer.detector`` or
        save it and load with ``EmotionRecognizer.from_pretrained(dir, detector="mtcnn")``.

    Raises
    ------
    IncompatibleComponentsError
        No build information and no ``architecture``/``config``, or weights that do not fit.
    UnknownModelError
        An architecture without a torch backbone.
    """
    import torch

    from ..preprocessing import FacePreprocessor
    from ..recognizer import EmotionRecognizer, build_backbone
    from ..registry import load_plugin

    arch, cfg, info = _architecture_and_config(model, architecture, config)
    if arch not in ARCHITECTURES:
        build(arch)  # raises UnknownModelError with the choices
    if arch == "mobilenetv2" and triton_would_crash():
        raise IncompatibleComponentsError(
            "Exporting mobilenetv2 builds it with timm, which imports torch's triton; TensorFlow was imported first, "
            "and TensorFlow >= 2.20 then makes `import triton` crash the interpreter (tensorflow/tensorflow#124205). "
            "Import emotionkit.keras (or `import triton`) before tensorflow/keras, or export in a separate process."
        )
    num_classes = int(cfg.pop("num_classes", model.output_shape[-1]))
    default_labels = EMOTIONS if num_classes == len(EMOTIONS) else tuple(str(i) for i in range(num_classes))
    names: tuple[str, ...] = tuple(labels or info.get("labels") or default_labels)
    torch_model = build_backbone(arch, cfg, num_classes=num_classes)
    state = torch_state_dict(model)
    reference = torch_model.state_dict()
    missing = [k for k in reference if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in reference]
    bad_shapes = [k for k in state if k in reference and tuple(reference[k].shape) != state[k].shape]
    if missing or unexpected or bad_shapes:
        raise IncompatibleComponentsError(
            f"The Keras model does not match torch {arch!r} with config {cfg}: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, shape mismatches {bad_shapes[:3]}. Pass the architecture and config it was built with."
        )
    merged = {k: torch.from_numpy(state[k]) if k in state else v for k, v in reference.items()}
    torch_model.load_state_dict(merged, strict=True)
    if preprocessor is None:
        spec = load_plugin("backbones", arch)
        pre = info.get("preprocessor") or {
            **spec.preprocessing,
            "channels": cfg.get("in_channels", 1),
            "size": cfg.get("image_size", 48),
        }
        preprocessor = FacePreprocessor.from_dict(pre)
    t = temperature if temperature is not None else float(info.get("temperature", 1.0))
    return EmotionRecognizer(
        torch_model,
        preprocessor,
        None,
        backbone_name=arch,
        backbone_config={**cfg},
        labels=names,
        temperature=t,
        device=device,
        meta={"exported_from": f"keras {_keras_version()} ({_backend()} backend)"},
    )


def save_pretrained(model: keras.Model, directory: str | os.PathLike, **kwargs: Any) -> Path:
    """Export a Keras twin and write it in emotionkit's model layout.

    ``EmotionRecognizer.from_pretrained(directory)`` then loads it, without Keras.

    Parameters
    ----------
    model : keras.Model
        A Keras model from emotionkit.keras.
    directory : str or os.PathLike
        Created if missing.
    **kwargs
        As for :func:`to_recognizer`.

    Returns
    -------
    pathlib.Path
        The directory.
    """
    return to_recognizer(model, **kwargs).save_pretrained(directory)


def _keras_version() -> str:
    return str(import_keras().__version__)


def _backend() -> str:
    return str(import_keras().backend.backend())


# ---------------------------------------------------------------------------------------------- inputs


def nhwc_faces(faces: Any, preprocessor: FacePreprocessor | Mapping[str, Any] | None = None) -> np.ndarray:
    """Preprocess face crops exactly as the torch recognizer does, in Keras' NHWC layout.

    Parameters
    ----------
    faces : numpy.ndarray
        ``(N, H, W)`` or ``(N, H, W, C)`` with C in {1, 3, 4}; uint8, uint16 or float in [0, 1].
    preprocessor : FacePreprocessor or dict, optional
        Default: 48x48 grayscale in [0, 1] (the CNN family's).

    Returns
    -------
    numpy.ndarray
        ``(N, size, size, channels)`` float32.

    Raises
    ------
    InvalidImageError
        A shape, channel count or value range that is not a batch of faces (e.g. NCHW ``(N, 1, 48, 48)``).

    Examples
    --------
    >>> nhwc_faces(np.zeros((2, 48, 48), np.uint8)).shape
    (2, 48, 48, 1)
    """
    from ..preprocessing import FacePreprocessor

    if preprocessor is None:
        preprocessor = FacePreprocessor(size=48, channels=1)
    elif isinstance(preprocessor, Mapping):
        preprocessor = FacePreprocessor.from_dict(dict(preprocessor))
    return np.ascontiguousarray(preprocessor.faces(faces).permute(0, 2, 3, 1).numpy())


def predict_proba(model: keras.Model, faces: Any, *, batch_size: int = 256) -> np.ndarray:
    """Classify face crops with a Keras twin, preprocessing them as its weights expect.

    Parameters
    ----------
    model : keras.Model
        From emotionkit.keras (its build information says how to preprocess and whether it ends with softmax).
    faces : numpy.ndarray
        As for :func:`nhwc_faces`.
    batch_size : int, default 256
        Faces per forward pass.

    Returns
    -------
    numpy.ndarray
        ``(N, num_classes)`` float32 probabilities (softmax with the model's temperature).

    Raises
    ------
    InvalidImageError
        Faces that cannot be read (see :func:`nhwc_faces`).
    """
    info = model_info(model)
    x = nhwc_faces(faces, info["preprocessor"])
    if x.shape[0] == 0:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    if info["output"] == "logits":
        z = out / float(info["temperature"])
        z = np.exp(z - z.max(axis=1, keepdims=True))
        out = z / z.sum(axis=1, keepdims=True)
    return out
