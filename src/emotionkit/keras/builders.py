"""Keras 3 builders for the CNN family: the torch backbones' layers, names and numerics, in NHWC.

Each Keras layer that holds weights is named after the torch module it mirrors, with
``"."`` written as ``"__"`` (torch forbids dots in parameter names, and Keras on the
torch backend registers layers as torch modules): the torch ``features.0.0`` conv is
the Keras layer ``features__0__0``. That naming is the whole contract
:mod:`emotionkit.keras.convert` relies on to move weights both ways.

Numerics follow torch exactly: batch norm epsilon 1e-5 (Keras defaults to 1e-3),
momentum 0.9 (torch's 0.1 counted the other way), and every 3x3 convolution pads one
pixel on each side. For stride 1 that is Keras' ``"same"``; for stride 2 it is not
(``"same"`` pads 0 before and 1 after an even input), so strided 3x3 convolutions are a
``ZeroPadding2D(1)`` followed by a ``"valid"`` convolution.

Keras is imported on first use, so this module imports whatever ``KERAS_BACKEND`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..exceptions import IncompatibleComponentsError, UnknownModelError, suggest
from ..types import EMOTIONS
from ._core import (
    _INIT_ONLY,
    _SEP,
    BN_EPSILON,
    BN_MOMENTUM,
    _set_info,
    import_keras,
    keras_name,
    model_info,
    torch_config,
)
from ._transfer import load_torch_weights

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from ..pretrained import PretrainedModel

__all__ = [
    "ARCHITECTURES",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "MOBILENETV2_VARIANTS",
    "Output",
    "build",
    "build_cnn",
    "build_resnet",
    "build_mobilenetv2",
    "import_keras",
    "keras_name",
    "model_info",
]

#: Architectures with a Keras builder (the torch registry's CNN family; ViTs have none).
ARCHITECTURES = ("cnn", "mobilenetv2", "resnet")
#: timm MobileNetV2 names the builder reproduces, with their channel multipliers.
MOBILENETV2_VARIANTS = {
    "mobilenetv2_035": 0.35,
    "mobilenetv2_050": 0.5,
    "mobilenetv2_075": 0.75,
    "mobilenetv2_100": 1.0,
    "mobilenetv2_140": 1.4,
}
#: What the model outputs: softmax probabilities (as ``EmotionRecognizer.predict_proba``) or raw logits.
Output = Literal["probabilities", "logits"]

# ---------------------------------------------------------------------------------------------- layers


class _Layers:
    """Small factories for torch-equivalent layers, named after their torch modules."""

    def __init__(self, keras: Any) -> None:
        self.k = keras
        self.L = keras.layers

    def conv(self, x: Any, filters: int, kernel: int, stride: int, name: str, *, bias: bool = False) -> Any:
        """Conv with torch's symmetric ``kernel // 2`` padding."""
        if kernel == 1 or stride == 1:
            padding = "valid" if kernel == 1 else "same"
        else:
            x = self.L.ZeroPadding2D(kernel // 2, name=keras_name(name) + _SEP + "pad")(x)
            padding = "valid"
        return self.L.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=bias,
            kernel_initializer="he_normal",
            name=keras_name(name),
        )(x)

    def depthwise(self, x: Any, kernel: int, stride: int, name: str) -> Any:
        """Depthwise conv (torch ``groups=channels``) with symmetric padding."""
        if stride == 1:
            padding = "same"
        else:
            x = self.L.ZeroPadding2D(kernel // 2, name=keras_name(name) + _SEP + "pad")(x)
            padding = "valid"
        return self.L.DepthwiseConv2D(
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            depthwise_initializer="he_normal",
            name=keras_name(name),
        )(x)

    def bn(self, x: Any, name: str) -> Any:
        return self.L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=keras_name(name))(x)

    def relu(self, x: Any, name: str, max_value: float | None = None) -> Any:
        return self.L.ReLU(max_value=max_value, name=keras_name(name))(x)

    def head(
        self, x: Any, num_classes: int, name: str, output: str, temperature: float, init: str | None = None
    ) -> Any:
        """The logits layer, then optionally temperature and softmax (the recognizer's ``predict_proba``)."""
        kernel_init = self.k.initializers.RandomNormal(stddev=0.01) if init == "small" else "glorot_uniform"
        x = self.L.Dense(num_classes, kernel_initializer=kernel_init, name=keras_name(name))(x)
        if output == "logits":
            return x
        if temperature != 1.0:
            x = self.L.Rescaling(1.0 / temperature, name="temperature")(x)
        return self.L.Activation("softmax", name="probabilities", dtype="float32")(x)


# ---------------------------------------------------------------------------------------------- checks


def _check_common(in_channels: int, image_size: int, num_classes: int, output: str, temperature: float | None) -> float:
    for label, value in (("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise IncompatibleComponentsError(f"{label} must be a positive integer, got {value!r}.")
    if in_channels not in (1, 3):
        raise IncompatibleComponentsError(
            f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}. Keras models here are NHWC: the "
            f"input shape is (image_size, image_size, in_channels), e.g. (48, 48, 1)."
        )
    if output not in ("probabilities", "logits"):
        raise IncompatibleComponentsError(f"output must be 'probabilities' or 'logits', got {output!r}.")
    t = 1.0 if temperature is None else float(temperature)
    if not t > 0:
        raise IncompatibleComponentsError(f"temperature must be positive, got {temperature!r}.")
    return t


def _input(keras: Any, in_channels: int, image_size: int) -> Any:
    return keras.Input(shape=(image_size, image_size, in_channels), name="faces")


def _model_with_info(
    keras: Any,
    inputs: Any,
    outputs: Any,
    name: str,
    architecture: str,
    config: Mapping[str, Any],
    output: str,
    temperature: float,
) -> keras.Model:
    from ..registry import load_plugin

    model = keras.Model(inputs, outputs, name=name)
    spec = load_plugin("backbones", architecture)
    preprocessor = {**spec.preprocessing, "channels": config["in_channels"], "size": config["image_size"]}
    _set_info(
        model,
        {
            "architecture": architecture,
            "config": torch_config(config),
            "labels": list(EMOTIONS)
            if config["num_classes"] == len(EMOTIONS)
            else [str(i) for i in range(config["num_classes"])],
            "temperature": temperature,
            "output": output,
            "preprocessor": preprocessor,
        },
    )
    return model


def _pretrained(
    architecture: str,
    requested: Mapping[str, Any],
    defaults: Mapping[str, Any],
    output: str,
    temperature: float | None,
    name: str | None,
) -> keras.Model:
    """Load the bundled torch weights of ``architecture`` into its Keras twin."""
    from ..pretrained import resolve_pretrained

    resolved = resolve_pretrained(architecture)  # NoBundledWeightsError until the weights are trained
    saved = resolved.config
    bundled = {**defaults, **(saved.get("backbone_config") or {}), "num_classes": len(resolved.labels)}
    clashes = {
        k: (v, bundled.get(k))
        for k, v in requested.items()
        if _as_list(v) != _as_list(defaults.get(k)) and _as_list(v) != _as_list(bundled.get(k))
    }
    if clashes:
        details = ", ".join(f"{k}={v!r} (weights: {b!r})" for k, (v, b) in clashes.items())
        raise IncompatibleComponentsError(
            f"pretrained=True loads the bundled {architecture!r} weights, whose architecture is fixed; you asked for "
            f"{details}. Drop those arguments, or build with pretrained=False to train that configuration."
        )
    return _keras_twin_from_directory(resolved, output=output, temperature=temperature, name=name)


def _keras_twin_from_directory(
    resolved: PretrainedModel, *, output: str, temperature: float | None, name: str | None
) -> keras.Model:
    """The Keras twin of a resolved model directory, holding its (checksum-verified) weights."""
    from ..heads import own_head_state, parse_heads

    config = resolved.config
    return _keras_twin(
        config["backbone"],
        config.get("backbone_config") or {},
        resolved.labels,
        float(config.get("temperature", 1.0)) if temperature is None else temperature,
        resolved.preprocessor_config(),
        own_head_state(resolved.state_dict(), resolved.labels, parse_heads(config.get("heads"))),
        output=output,
        name=name,
    )


def _keras_twin(
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


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


# ---------------------------------------------------------------------------------------------- builders


def build_cnn(
    num_classes: int = 7,
    in_channels: int = 1,
    image_size: int = 48,
    *,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_block: int = 1,
    hidden: int = 512,
    conv_dropout: float = 0.25,
    dropout: float = 0.5,
    pretrained: bool = False,
    output: Output = "probabilities",
    temperature: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build the seed's VGG-style CNN (:class:`~emotionkit.backbones.cnn.EmotionCNN`) in Keras.

    Each block is ``convs_per_block`` times (conv 3x3, batch norm, ReLU), then 2x2 max
    pooling and dropout; then flatten, a dense layer with batch norm, ReLU and dropout,
    and the 7-way classifier.

    Parameters
    ----------
    num_classes, in_channels, image_size, widths, convs_per_block, hidden, conv_dropout, dropout
        As for the torch :class:`~emotionkit.backbones.cnn.EmotionCNN`.
    pretrained : bool, default False
        Load the bundled torch weights (their config wins; a clashing argument is an error).
    output : {"probabilities", "logits"}, default "probabilities"
        End with softmax (equal to ``EmotionRecognizer.predict_proba``) or return logits.
    temperature : float, optional
        Softmax temperature; default 1, or the bundled weights' calibrated value.
    name : str, optional
        The Keras model name (default ``"emotionkit_cnn"``).

    Returns
    -------
    keras.Model
        Maps ``(N, image_size, image_size, in_channels)`` float32 in [0, 1] to ``(N, num_classes)``.

    Raises
    ------
    IncompatibleComponentsError
        An invalid config (e.g. ``image_size`` not divisible by ``2 ** len(widths)``).
    NoBundledWeightsError
        ``pretrained=True`` before the bundled weights exist.
    MissingDependencyError
        Keras or its backend is not installed.

    Examples
    --------
    >>> model = build_cnn()  # doctest: +SKIP
    >>> model.input_shape, model.output_shape  # doctest: +SKIP
    ((None, 48, 48, 1), (None, 7))
    """
    defaults = {"widths": [32, 64, 128], "convs_per_block": 1, "hidden": 512, "conv_dropout": 0.25, "dropout": 0.5}
    defaults.update(num_classes=7, in_channels=1, image_size=48)
    requested = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "widths": list(widths),
        "convs_per_block": convs_per_block,
        "hidden": hidden,
        "conv_dropout": conv_dropout,
        "dropout": dropout,
    }
    if pretrained:
        return _pretrained("cnn", requested, defaults, output, temperature, name)
    t = _check_common(in_channels, image_size, num_classes, output, temperature)
    widths = [int(w) for w in widths]
    if not widths or convs_per_block < 1 or hidden < 1:
        raise IncompatibleComponentsError(
            f"widths must be non-empty and convs_per_block, hidden positive; got widths={widths}, "
            f"convs_per_block={convs_per_block}, hidden={hidden}."
        )
    if image_size % (2 ** len(widths)):
        raise IncompatibleComponentsError(
            f"image_size={image_size} must be divisible by 2**{len(widths)}={2 ** len(widths)} for widths={tuple(widths)} "
            f"(one 2x2 pooling per block); use e.g. image_size={image_size // 2 ** len(widths) * 2 ** len(widths) or 2 ** len(widths)}."
        )
    keras = import_keras()
    f = _Layers(keras)
    inputs = _input(keras, in_channels, image_size)
    x = inputs
    for b, width in enumerate(widths):
        for i in range(convs_per_block):
            x = f.conv(x, width, 3, 1, f"features.{b}.{3 * i}")
            x = f.bn(x, f"features.{b}.{3 * i + 1}")
            x = f.relu(x, f"features.{b}.{3 * i + 2}")
        x = f.L.MaxPooling2D(2, name=keras_name(f"features.{b}.{3 * convs_per_block}"))(x)
        x = f.L.Dropout(conv_dropout, name=keras_name(f"features.{b}.{3 * convs_per_block + 1}"))(x)
    x = f.L.Flatten(name=keras_name("classifier.0"))(x)
    x = f.L.Dense(hidden, use_bias=False, name=keras_name("classifier.1"))(x)
    x = f.bn(x, "classifier.2")
    x = f.relu(x, "classifier.3")
    x = f.L.Dropout(dropout, name=keras_name("classifier.4"))(x)
    outputs = f.head(x, num_classes, "classifier.5", output, t)
    return _model_with_info(keras, inputs, outputs, name or "emotionkit_cnn", "cnn", requested, output, t)


def build_resnet(
    num_classes: int = 7,
    in_channels: int = 1,
    image_size: int = 48,
    *,
    widths: Sequence[int] = (32, 64, 128, 256),
    blocks: Sequence[int] = (1, 1, 1, 1),
    strides: Sequence[int] = (2, 2, 2, 1),
    dropout: float = 0.2,
    pretrained: bool = False,
    output: Output = "probabilities",
    temperature: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build the compact ResNet (:class:`~emotionkit.backbones.resnet.EmotionResNet`) in Keras.

    A 3x3 stem, one stage of basic residual blocks per entry of ``widths``, global
    average pooling, dropout and the classifier.

    Parameters
    ----------
    num_classes, in_channels, image_size, widths, blocks, strides, dropout
        As for the torch :class:`~emotionkit.backbones.resnet.EmotionResNet`.
    pretrained, output, temperature, name
        As for :func:`build_cnn`.

    Returns
    -------
    keras.Model
        Maps ``(N, image_size, image_size, in_channels)`` to ``(N, num_classes)``.

    Raises
    ------
    IncompatibleComponentsError
        ``widths``, ``blocks`` and ``strides`` of different lengths, or another invalid config.
    NoBundledWeightsError
        ``pretrained=True`` before the bundled weights exist.
    """
    defaults = {"widths": [32, 64, 128, 256], "blocks": [1, 1, 1, 1], "strides": [2, 2, 2, 1], "dropout": 0.2}
    defaults.update(num_classes=7, in_channels=1, image_size=48)
    requested = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "widths": list(widths),
        "blocks": list(blocks),
        "strides": list(strides),
        "dropout": dropout,
    }
    if pretrained:
        return _pretrained("resnet", requested, defaults, output, temperature, name)
    t = _check_common(in_channels, image_size, num_classes, output, temperature)
    if not (len(widths) == len(blocks) == len(strides)) or not widths:
        raise IncompatibleComponentsError(
            f"widths, blocks and strides must be non-empty and of the same length, got {tuple(widths)}, {tuple(blocks)}, {tuple(strides)}."
        )
    keras = import_keras()
    f = _Layers(keras)
    inputs = _input(keras, in_channels, image_size)
    x = f.conv(inputs, widths[0], 3, 1, "stem.0")
    x = f.relu(f.bn(x, "stem.1"), "stem.2")
    channels = widths[0]
    for s, (width, count, stride) in enumerate(zip(widths, blocks, strides)):
        for j in range(count):
            x = _basic_block(f, x, channels, int(width), int(stride) if j == 0 else 1, f"stages.{s}.{j}")
            channels = int(width)
    x = f.L.GlobalAveragePooling2D(name="pool")(x)
    x = f.L.Dropout(dropout, name=keras_name("head.1"))(x)
    outputs = f.head(x, num_classes, "head.2", output, t)
    return _model_with_info(keras, inputs, outputs, name or "emotionkit_resnet", "resnet", requested, output, t)


def _basic_block(f: _Layers, x: Any, in_channels: int, out_channels: int, stride: int, name: str) -> Any:
    out = f.relu(f.bn(f.conv(x, out_channels, 3, stride, f"{name}.conv1"), f"{name}.bn1"), f"{name}.relu1")
    out = f.bn(f.conv(out, out_channels, 3, 1, f"{name}.conv2"), f"{name}.bn2")
    shortcut = x
    if stride != 1 or in_channels != out_channels:
        shortcut = f.bn(f.conv(x, out_channels, 1, stride, f"{name}.shortcut.0"), f"{name}.shortcut.1")
    out = f.L.Add(name=keras_name(f"{name}.add"))([out, shortcut])
    return f.relu(out, f"{name}.relu")


# timm's mobilenetv2 arch_def: (block type, repeats, first stride, expansion, output channels).
_MOBILENETV2_STAGES = (
    ("ds", 1, 1, 1, 16),
    ("ir", 2, 2, 6, 24),
    ("ir", 3, 2, 6, 32),
    ("ir", 4, 2, 6, 64),
    ("ir", 3, 1, 6, 96),
    ("ir", 3, 2, 6, 160),
    ("ir", 1, 1, 6, 320),
)


def _make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    # timm.layers.make_divisible: nearest multiple of 8, never more than 10% below v.
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v


def build_mobilenetv2(
    num_classes: int = 7,
    in_channels: int = 1,
    image_size: int = 48,
    *,
    variant: str = "mobilenetv2_100",
    stem_stride: int = 1,
    drop_rate: float = 0.2,
    pretrained: bool = False,
    output: Output = "probabilities",
    temperature: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build timm's MobileNetV2 (as :func:`emotionkit.backbones.mobilenetv2.build_mobilenetv2` makes it) in Keras.

    ``conv_stem`` and ``bn1`` (ReLU6), the blocks (a depthwise-separable block, then
    inverted residuals with ReLU6 and linear bottlenecks, residual where stride is 1 and
    channels match), ``conv_head`` (1280 channels) with ``bn2``, global average pooling,
    dropout and the classifier: the layer names are timm's state-dict keys.

    Parameters
    ----------
    num_classes, in_channels, image_size, stem_stride, drop_rate
        As for the torch builder.
    variant : str, default "mobilenetv2_100"
        One of :data:`MOBILENETV2_VARIANTS` (the ``...d`` depth-scaled variants are not reproduced).
    pretrained, output, temperature, name
        As for :func:`build_cnn`. ``pretrained`` means emotionkit's bundled weights, not ImageNet.

    Returns
    -------
    keras.Model
        Maps ``(N, image_size, image_size, in_channels)`` to ``(N, num_classes)``.

    Raises
    ------
    IncompatibleComponentsError
        An unknown ``variant`` or another invalid config.
    NoBundledWeightsError
        ``pretrained=True`` before the bundled weights exist.
    """
    defaults: dict[str, Any] = {"variant": "mobilenetv2_100", "stem_stride": 1, "drop_rate": 0.2}
    defaults.update(num_classes=7, in_channels=1, image_size=48)
    requested = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "variant": variant,
        "stem_stride": stem_stride,
        "drop_rate": drop_rate,
    }
    if pretrained:
        return _pretrained("mobilenetv2", requested, defaults, output, temperature, name)
    t = _check_common(in_channels, image_size, num_classes, output, temperature)
    if variant not in MOBILENETV2_VARIANTS:
        raise IncompatibleComponentsError(
            f"Unknown MobileNetV2 variant {variant!r} for Keras. Available: {', '.join(MOBILENETV2_VARIANTS)}."
            f"{suggest(variant, MOBILENETV2_VARIANTS)}"
        )
    if stem_stride not in (1, 2):
        raise IncompatibleComponentsError(f"stem_stride must be 1 or 2, got {stem_stride!r}.")
    multiplier = MOBILENETV2_VARIANTS[variant]
    keras = import_keras()
    f = _Layers(keras)
    inputs = _input(keras, in_channels, image_size)
    channels = _make_divisible(32 * multiplier)
    x = f.conv(inputs, channels, 3, stem_stride, "conv_stem")
    x = f.relu(f.bn(x, "bn1"), "bn1.act", 6.0)
    for s, (kind, repeats, first_stride, expansion, out) in enumerate(_MOBILENETV2_STAGES):
        out_channels = _make_divisible(out * multiplier)
        for j in range(repeats):
            stride = first_stride if j == 0 else 1
            block = _depthwise_separable if kind == "ds" else _inverted_residual
            x = block(f, x, channels, out_channels, stride, expansion, f"blocks.{s}.{j}")
            channels = out_channels
    features = max(1280, _make_divisible(1280 * multiplier))
    x = f.conv(x, features, 1, 1, "conv_head")
    x = f.relu(f.bn(x, "bn2"), "bn2.act", 6.0)
    x = f.L.GlobalAveragePooling2D(name="global_pool")(x)
    x = f.L.Dropout(drop_rate, name="head_drop")(x)
    # Small head init, as the torch builder does: a wide head starts far above chance loss and stalls.
    outputs = f.head(x, num_classes, "classifier", output, t, init="small")
    return _model_with_info(
        keras, inputs, outputs, name or "emotionkit_mobilenetv2", "mobilenetv2", requested, output, t
    )


def _depthwise_separable(
    f: _Layers, x: Any, in_channels: int, out_channels: int, stride: int, _: int, name: str
) -> Any:
    shortcut = x
    x = f.relu(f.bn(f.depthwise(x, 3, stride, f"{name}.conv_dw"), f"{name}.bn1"), f"{name}.bn1.act", 6.0)
    x = f.bn(f.conv(x, out_channels, 1, 1, f"{name}.conv_pw"), f"{name}.bn2")
    if stride == 1 and in_channels == out_channels:
        x = f.L.Add(name=keras_name(f"{name}.add"))([x, shortcut])
    return x


def _inverted_residual(
    f: _Layers, x: Any, in_channels: int, out_channels: int, stride: int, expansion: int, name: str
) -> Any:
    shortcut = x
    mid = _make_divisible(in_channels * expansion)
    x = f.relu(f.bn(f.conv(x, mid, 1, 1, f"{name}.conv_pw"), f"{name}.bn1"), f"{name}.bn1.act", 6.0)
    x = f.relu(f.bn(f.depthwise(x, 3, stride, f"{name}.conv_dw"), f"{name}.bn2"), f"{name}.bn2.act", 6.0)
    x = f.bn(f.conv(x, out_channels, 1, 1, f"{name}.conv_pwl"), f"{name}.bn3")
    if stride == 1 and in_channels == out_channels:
        x = f.L.Add(name=keras_name(f"{name}.add"))([x, shortcut])
    return x


_BUILDERS: dict[str, Callable[..., Any]] = {"cnn": build_cnn, "mobilenetv2": build_mobilenetv2, "resnet": build_resnet}


def build(architecture: str, **config: Any) -> keras.Model:
    """Build a Keras model by architecture name, from a torch backbone config.

    Parameters
    ----------
    architecture : {"cnn", "mobilenetv2", "resnet"}
        The torch registry name.
    **config
        The builder's keyword arguments; a torch ``backbone_config`` (from ``config.json``)
        works as is (``pretrained``/``init``, which only concern torch initialisation, are dropped).

    Returns
    -------
    keras.Model

    Raises
    ------
    UnknownModelError
        No Keras builder for ``architecture`` (the message lists the ones there are).

    Examples
    --------
    >>> build("vitt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotionkit.exceptions.UnknownModelError: No Keras builder for architecture 'vitt'. Available: cnn, mobilenetv2, resnet. Did you mean 'vit'? ...
    """
    if architecture not in _BUILDERS:
        hint = suggest(architecture, ARCHITECTURES) or suggest(architecture, [*ARCHITECTURES, "vit"])
        vit = " Vision transformers (vit) have torch backbones only." if architecture.startswith("vit") else ""
        raise UnknownModelError(
            f"No Keras builder for architecture {architecture!r}. Available: {', '.join(ARCHITECTURES)}.{hint}{vit}"
        )
    return _BUILDERS[architecture](**{k: v for k, v in config.items() if k not in _INIT_ONLY})
