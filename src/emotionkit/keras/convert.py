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

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import IncompatibleComponentsError, NoBundledWeightsError, UnknownModelError
from ..types import EMOTIONS
from .builders import ARCHITECTURES, BN_EPSILON, build, import_keras, model_info, torch_config, triton_would_crash

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

# ---------------------------------------------------------------------------------------------- layouts


def conv_kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """torch conv weight ``(out, in, kh, kw)`` to a Keras kernel ``(kh, kw, in, out)``.

    Parameters
    ----------
    weight : numpy.ndarray
        ``(out, in, kh, kw)``.

    Returns
    -------
    numpy.ndarray
        ``(kh, kw, in, out)``, contiguous.
    """
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


def conv_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras conv kernel ``(kh, kw, in, out)`` to a torch weight ``(out, in, kh, kw)``.

    Parameters
    ----------
    kernel : numpy.ndarray
        ``(kh, kw, in, out)``.

    Returns
    -------
    numpy.ndarray
        ``(out, in, kh, kw)``, contiguous.
    """
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def depthwise_kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """torch depthwise weight ``(channels * m, 1, kh, kw)`` to Keras ``(kh, kw, channels, m)``.

    torch orders the ``channels * m`` outputs channel-major (output ``c * m + j`` reads input ``c``).

    Parameters
    ----------
    weight : numpy.ndarray
        ``(channels * m, 1, kh, kw)``.

    Returns
    -------
    numpy.ndarray
        ``(kh, kw, channels, m)`` with ``m = 1``, contiguous.
    """
    out, _, kh, kw = weight.shape
    return np.ascontiguousarray(np.transpose(weight.reshape(out, kh, kw), (1, 2, 0)).reshape(kh, kw, -1, 1))


def depthwise_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel ``(kh, kw, channels, m)`` to torch ``(channels * m, 1, kh, kw)``.

    Parameters
    ----------
    kernel : numpy.ndarray
        ``(kh, kw, channels, m)``.

    Returns
    -------
    numpy.ndarray
        ``(channels * m, 1, kh, kw)``, contiguous.
    """
    kh, kw, channels, m = kernel.shape
    return np.ascontiguousarray(np.transpose(kernel.reshape(kh, kw, channels * m), (2, 0, 1))[:, None])


def dense_kernel_to_keras(weight: np.ndarray, flattened: Sequence[int] | None = None) -> np.ndarray:
    """torch linear weight ``(out, in)`` to a Keras dense kernel ``(in, out)``.

    Parameters
    ----------
    weight : numpy.ndarray
        ``(out, in)``.
    flattened : (H, W, C), optional
        When the layer follows ``Flatten`` of an ``(H, W, C)`` Keras map (torch flattened
        ``(C, H, W)``): the input features are reordered to Keras' order.

    Returns
    -------
    numpy.ndarray
        ``(in, out)``.

    Examples
    --------
    >>> w = np.arange(2 * 12, dtype=np.float32).reshape(2, 12)  # C=3, H=2, W=2
    >>> x_nchw = np.random.default_rng(0).normal(size=(3, 2, 2))
    >>> k = dense_kernel_to_keras(w, flattened=(2, 2, 3))
    >>> bool(np.allclose(x_nchw.reshape(-1) @ w.T, x_nchw.transpose(1, 2, 0).reshape(-1) @ k))
    True
    """
    if flattened is None:
        return np.ascontiguousarray(weight.T)
    h, w, c = flattened
    out = weight.shape[0]
    return np.ascontiguousarray(weight.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out))


def dense_kernel_to_torch(kernel: np.ndarray, flattened: Sequence[int] | None = None) -> np.ndarray:
    """Keras dense kernel ``(in, out)`` to a torch linear weight ``(out, in)``; inverse of :func:`dense_kernel_to_keras`.

    Parameters
    ----------
    kernel : numpy.ndarray
        ``(in, out)``.
    flattened : (H, W, C), optional
        As for :func:`dense_kernel_to_keras`: the input features go back to torch's (C, H, W) order.

    Returns
    -------
    numpy.ndarray
        ``(out, in)``.
    """
    if flattened is None:
        return np.ascontiguousarray(kernel.T)
    h, w, c = flattened
    out = kernel.shape[1]
    return np.ascontiguousarray(kernel.reshape(h, w, c, out).transpose(3, 2, 0, 1).reshape(out, c * h * w))


# ---------------------------------------------------------------------------------------------- layer walk


def _leaf_layers(model: Any) -> list[Any]:
    """Layers of ``model``, descending into nested models (e.g. a training wrapper with augmentation)."""
    keras = import_keras()
    out = []
    for layer in model.layers:
        out.extend(_leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _find_info(model: Any) -> dict[str, Any]:
    """emotionkit's build information of ``model`` or of the emotionkit model nested in it."""
    if isinstance(getattr(model, "emotionkit_info", None), str):
        return model_info(model)
    keras = import_keras()
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model) and isinstance(getattr(layer, "emotionkit_info", None), str):
            return model_info(layer)
    return model_info(model)  # raises the explanatory error


def _torch_path(layer_name: str) -> str:
    return layer_name.replace("__", ".")


def _flatten_shape(layer: Any, by_name: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(H, W, C) when ``layer`` is a Dense right after a Flatten of a 4-D map (named by torch index), else None."""
    head, _, index = layer.name.rpartition("__")
    if not index.isdigit():
        return None
    previous = by_name.get(f"{head}__{int(index) - 1}")
    if previous is None or previous.__class__.__name__ != "Flatten":
        return None
    shape = tuple(previous.input.shape)
    if len(shape) != 4:
        return None
    return int(shape[1]), int(shape[2]), int(shape[3])


class _Slot:
    """One Keras layer with weights and the torch tensors it corresponds to."""

    def __init__(self, layer: Any, by_name: Mapping[str, Any]) -> None:
        self.layer = layer
        self.kind = layer.__class__.__name__
        self.prefix = _torch_path(layer.name)
        self.flattened = _flatten_shape(layer, by_name) if self.kind == "Dense" else None

    def keys(self) -> list[str]:
        p = self.prefix
        if self.kind == "BatchNormalization":
            return [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var"]
        return [f"{p}.weight"] + ([f"{p}.bias"] if self.layer.use_bias else [])

    def torch_shapes(self) -> dict[str, tuple[int, ...]]:
        """The torch shape of each key, from the Keras variables' shapes."""
        shapes = {v.name: tuple(int(d) for d in v.shape) for v in self.layer.weights}
        p = self.prefix
        if self.kind == "BatchNormalization":
            return dict.fromkeys(self.keys(), shapes["gamma"])
        kernel = shapes["kernel"]
        if self.kind == "Conv2D":
            weight: tuple[int, ...] = (kernel[3], kernel[2], kernel[0], kernel[1])
        elif self.kind == "DepthwiseConv2D":
            weight = (kernel[2] * kernel[3], 1, kernel[0], kernel[1])
        else:
            weight = (kernel[1], kernel[0])
        out = {f"{p}.weight": weight}
        if self.layer.use_bias:
            out[f"{p}.bias"] = shapes["bias"]
        return out

    def to_keras(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Keras variable name -> value."""
        p = self.prefix
        if self.kind == "BatchNormalization":
            names = ("gamma", "beta", "moving_mean", "moving_variance")
            return dict(zip(names, (tensors[k] for k in self.keys())))
        weight = tensors[f"{p}.weight"]
        if self.kind == "Conv2D":
            kernel = conv_kernel_to_keras(weight)
        elif self.kind == "DepthwiseConv2D":
            kernel = depthwise_kernel_to_keras(weight)
        else:
            kernel = dense_kernel_to_keras(weight, self.flattened)
        out = {"kernel": kernel}
        if self.layer.use_bias:
            out["bias"] = tensors[f"{p}.bias"]
        return out

    def to_torch(self) -> dict[str, np.ndarray]:
        values = {v.name: np.asarray(_numpy(v)) for v in self.layer.weights}
        p = self.prefix
        if self.kind == "BatchNormalization":
            names = ("gamma", "beta", "moving_mean", "moving_variance")
            return {k: values[n] for k, n in zip(self.keys(), names)}
        kernel = values["kernel"]
        if self.kind == "Conv2D":
            weight = conv_kernel_to_torch(kernel)
        elif self.kind == "DepthwiseConv2D":
            weight = depthwise_kernel_to_torch(kernel)
        else:
            weight = dense_kernel_to_torch(kernel, self.flattened)
        out = {f"{p}.weight": weight}
        if self.layer.use_bias:
            out[f"{p}.bias"] = values["bias"]
        return out


_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization")


def _slots(model: Any) -> list[_Slot]:
    layers = _leaf_layers(model)
    by_name = {layer.name: layer for layer in layers}
    slots = []
    for layer in layers:
        kind = layer.__class__.__name__
        if kind in _WEIGHTED:
            if kind == "BatchNormalization" and abs(float(layer.epsilon) - BN_EPSILON) > 1e-12:
                raise IncompatibleComponentsError(
                    f"Keras layer {layer.name!r} has batch-norm epsilon {layer.epsilon}, torch uses {BN_EPSILON}; "
                    "build the model with emotionkit.keras so the numerics match."
                )
            slots.append(_Slot(layer, by_name))
        elif layer.weights:
            raise IncompatibleComponentsError(
                f"Keras layer {layer.name!r} ({kind}) has weights emotionkit cannot map to torch; only "
                f"{', '.join(_WEIGHTED)} are supported. Build the model with emotionkit.keras.build()."
            )
    if not slots:
        raise IncompatibleComponentsError(f"Keras model {model.name!r} has no layers with weights to convert.")
    return slots


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().float().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    try:
        from keras import ops

        return np.asarray(ops.convert_to_numpy(value))
    except ImportError:  # pragma: no cover - plain arrays without keras
        return np.asarray(value)


_SIGNATURES = {"features.": "cnn", "stem.": "resnet", "conv_stem.": "mobilenetv2", "patch_embed.": "vit"}


def _guess_architecture(keys: Sequence[str]) -> str | None:
    for start, name in _SIGNATURES.items():
        if any(k.startswith(start) for k in keys):
            return name
    return None


# ---------------------------------------------------------------------------------------------- torch -> keras


def load_torch_weights(model: keras.Model, state_dict: Mapping[str, Any]) -> keras.Model:
    """Copy a torch backbone's state dict into its Keras twin, in place.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`emotionkit.keras.build` with the torch model's config.
    state_dict : mapping of str to torch.Tensor or numpy.ndarray
        ``torch_model.state_dict()``, or :func:`emotionkit.weights.load_weights` of a ``model.safetensors``.

    Returns
    -------
    keras.Model
        ``model``, now holding the weights.

    Raises
    ------
    IncompatibleComponentsError
        Tensors missing or left over (weights of another architecture: the message names the
        architecture they look like), or a shape that differs (another config of the same
        architecture: the message names the tensor and both shapes). Nothing is changed then.
    """
    slots = _slots(model)
    provided = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    needed = [k for slot in slots for k in slot.keys()]
    missing = [k for k in needed if k not in provided]
    unexpected = sorted(set(provided) - set(needed))
    if missing or unexpected:
        info = getattr(model, "emotionkit_info", None)
        guess = _guess_architecture(list(provided))
        looks = f" They look like weights of {guess!r}." if guess else ""
        wanted = (
            f"architecture {model_info(model)['architecture']!r}" if isinstance(info, str) else f"model {model.name!r}"
        )
        raise IncompatibleComponentsError(
            f"These torch weights do not fit the Keras {wanted}: {len(missing)} tensors it needs are missing "
            f"(e.g. {', '.join(missing[:3]) or '-'}) and {len(unexpected)} are unexpected (e.g. {', '.join(unexpected[:3]) or '-'})."
            f"{looks} Build the Keras model with the same architecture and backbone_config as the torch model "
            "(emotionkit.keras.build(name, **config), or from_recognizer / from_pretrained, which read them)."
        )
    tensors = {k: _numpy(provided[k]).astype(np.float32) for k in needed}
    for slot in slots:
        for key, shape in slot.torch_shapes().items():
            if tensors[key].shape != shape:
                raise IncompatibleComponentsError(
                    f"Shape mismatch at torch tensor {key!r} (Keras layer {slot.layer.name!r}): the weights have "
                    f"{tensors[key].shape}, the Keras model needs {shape}. The torch model was built with another "
                    "config (widths, image_size, in_channels, num_classes...); build the Keras model from its "
                    "backbone_config."
                )
    for slot in slots:  # only once everything fits
        values = slot.to_keras(tensors)
        for variable in slot.layer.weights:
            variable.assign(values[variable.name])
    return model


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
    return _twin(
        recognizer.backbone_name,
        recognizer.backbone_config,
        recognizer.labels,
        recognizer.temperature if temperature is None else temperature,
        recognizer.preprocessor.to_dict(),
        recognizer.model.state_dict(),
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
    from ..pretrained import FORMAT
    from ..weights import CONFIG_NAME, PREPROCESSOR_NAME, WEIGHTS_NAME, load_weights

    path, sha256 = _model_directory(name_or_dir)
    config = json.loads((path / CONFIG_NAME).read_text())
    if config.get("format") != FORMAT:
        raise UnknownModelError(
            f"{str(path / CONFIG_NAME)!r} is not an emotionkit model config (format {config.get('format')!r}, "
            f"expected {FORMAT!r})."
        )
    return _twin(
        config["backbone"],
        config.get("backbone_config") or {},
        config.get("labels", EMOTIONS),
        float(config.get("temperature", 1.0)) if temperature is None else temperature,
        json.loads((path / PREPROCESSOR_NAME).read_text()),
        load_weights(path / WEIGHTS_NAME, sha256 or config.get("weights_sha256")),
        output=output,
        name=name,
    )


def _model_directory(name_or_dir: str | os.PathLike) -> tuple[Path, str | None]:
    """The folder of a saved model, or of a backbone's bundled weights with their sha256."""
    from ..recognizer import EmotionRecognizer
    from ..registry import list_plugins, load_plugin
    from ..weights import CONFIG_NAME

    path = Path(name_or_dir)
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        return path, None
    key = str(name_or_dir)
    spec = load_plugin("backbones", key) if key in list_plugins("backbones") else None
    if spec is None or not spec.weights or not spec.weights[0].exists():
        # Unknown name or no bundled weights: the recognizer raises its usual errors before building anything.
        EmotionRecognizer.from_pretrained(key, detector="none")
        raise NoBundledWeightsError(f"Backbone {key!r} ships no bundled weights.")  # pragma: no cover
    return spec.weights[0].path, spec.weights[0].sha256


def _twin(
    architecture: str,
    backbone_config: Mapping[str, Any],
    labels: Sequence[str],
    temperature: float,
    preprocessor: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    *,
    output: str,
    name: str | None,
) -> keras.Model:
    from .builders import _set_info

    config = torch_config(backbone_config)
    config["num_classes"] = len(labels)
    kwargs: dict[str, Any] = {"output": output, "temperature": temperature}
    if name:
        kwargs["name"] = name
    model = build(architecture, **config, **kwargs)
    load_torch_weights(model, state_dict)
    info = model_info(model)  # the saved labels and preprocessing win over the builder's defaults
    info.update(labels=list(labels), preprocessor=dict(preprocessor))
    _set_info(model, info)
    return model


# ---------------------------------------------------------------------------------------------- keras -> torch


def _resolve(
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


def torch_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """Return a Keras twin's weights as a torch state dict of numpy arrays (no ``num_batches_tracked``).

    Parameters
    ----------
    model : keras.Model
        Built by emotionkit.keras (or such a model inside a training wrapper).

    Returns
    -------
    dict of str to numpy.ndarray
        torch key -> array in torch layout.
    """
    out: dict[str, np.ndarray] = {}
    for slot in _slots(model):
        out.update(slot.to_torch())
    return out


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

    arch, cfg, info = _resolve(model, architecture, config)
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
