"""Moving weights between a torch state dict and a Keras twin: layouts, the layer walk, both directions.

Private: the public names are re-exported by :mod:`emotionkit.keras.convert`. It stands on
:mod:`emotionkit.keras._core` only, so :mod:`emotionkit.keras.builders` can load bundled weights
(``build_cnn(pretrained=True)``) without importing the conversion module that imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import IncompatibleComponentsError
from ._core import BN_EPSILON, import_keras, model_info

if TYPE_CHECKING:  # pragma: no cover
    import keras

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


class _WeightedLayer:
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


def _weighted_layers(model: Any) -> list[_WeightedLayer]:
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
            slots.append(_WeightedLayer(layer, by_name))
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
    slots = _weighted_layers(model)
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
    for slot in _weighted_layers(model):
        out.update(slot.to_torch())
    return out
