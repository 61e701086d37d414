"""Parts from the registry and models on disk: build backbones and detectors, read and write model directories.

A model directory (what :meth:`~emotionkit.EmotionRecognizer.save_pretrained` and
``emotionkit train`` write, and what bundled weights are) holds ``config.json``,
``preprocessor.json`` and ``model.safetensors``. :func:`resolve_pretrained` turns a
name or a path into the directory to read (and the registry entries behind it),
:func:`load_inference` reads it into an :class:`~emotionkit.inference.InferenceModel`
and :func:`save_inference` writes one back.

This module sits below :mod:`emotionkit.recognizer` and above :mod:`emotionkit.inference`.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .exceptions import InvalidOptionError, NoBundledWeightsError, UnknownModelError, suggest
from .heads import heads_to_dict, output_width, parse_heads
from .inference import InferenceModel
from .interfaces import BackboneSpec, FaceDetector
from .registry import list_plugins, load_plugin
from .saved_model import FORMAT, read_model_directory
from .saved_model import read_config as read_config_file
from .types import EMOTIONS
from .weights import CONFIG_NAME, PREPROCESSOR_NAME, WEIGHTS_NAME, WeightsSpec, load_weights, save_weights

__all__ = [
    "DEFAULT_MODEL",
    "FORMAT",
    "PretrainedModel",
    "read_config",
    "build_backbone",
    "build_detector",
    "bundled_models",
    "resolve_pretrained",
    "load_inference",
    "save_inference",
]

#: The model ``from_pretrained()`` loads when no name is given.
DEFAULT_MODEL = "mobilenetv2"
#: The ``format`` of a model directory's ``config.json``.


def build_backbone(
    name: str | BackboneSpec, config: Mapping[str, Any] | None = None, *, num_classes: int = len(EMOTIONS)
) -> nn.Module:
    """Build an untrained backbone from the registry.

    Parameters
    ----------
    name : str or BackboneSpec
        A registered backbone name (``emotionkit models`` lists them), or its already resolved spec.
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
    spec: BackboneSpec = load_plugin("backbones", name) if isinstance(name, str) else name
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


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read a model directory's ``config.json`` and check its format.

    Parameters
    ----------
    directory : str or os.PathLike
        A model directory.

    Returns
    -------
    dict
        Backbone name and config, labels, temperature, weights sha256, metadata.

    Raises
    ------
    UnknownModelError
        The file is not an emotionkit model config.
    InvalidWeightsError
        Missing, not JSON, or with fields of the wrong type.
    """
    return read_config_file(Path(directory) / CONFIG_NAME)


@dataclass(frozen=True, eq=False)
class PretrainedModel:
    """A model name or directory, resolved once: where its files are, what they say, and the registry entries behind it.

    Parameters
    ----------
    path : pathlib.Path
        The model directory.
    config : mapping
        Its ``config.json`` (format checked).
    spec : BackboneSpec, optional
        The backbone spec, when the model was named by a registered backbone.
    weights : WeightsSpec, optional
        The bundled weights, when the model was named by a registered backbone.
    """

    path: Path
    config: Mapping[str, Any]
    spec: BackboneSpec | None = None
    weights: WeightsSpec | None = None

    @property
    def sha256(self) -> str | None:
        """The recorded sha256 of ``model.safetensors`` (``None`` when nothing records one)."""
        sha = self.weights.sha256 if self.weights is not None else None
        return sha or self.config.get("weights_sha256")

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names, in the backbone's output order."""
        return tuple(self.config.get("labels", EMOTIONS))

    @property
    def num_outputs(self) -> int:
        """Outputs of the network: :attr:`labels` and every extra head's (``config.json``'s ``"heads"``)."""
        return output_width(self.labels, parse_heads(self.config.get("heads")))

    def preprocessor_config(self) -> dict[str, Any]:
        """Return ``preprocessor.json``.

        Returns
        -------
        dict
            What :meth:`FacePreprocessor.from_dict <emotionkit.preprocessing.FacePreprocessor.from_dict>` reads.
        """
        return dict(json.loads((self.path / PREPROCESSOR_NAME).read_text()))

    def backbone_spec(self) -> BackboneSpec:
        """Return the spec of the backbone ``config.json`` names (the resolved one when it is that backbone).

        Returns
        -------
        BackboneSpec

        Raises
        ------
        UnknownPluginError
            The backbone is not registered.
        """
        name = self.config["backbone"]
        spec: BackboneSpec = (
            self.spec if self.spec is not None and self.spec.name == name else load_plugin("backbones", name)
        )
        return spec

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Load the weights after verifying their sha256.

        Returns
        -------
        dict of str to torch.Tensor
            On the CPU.

        Raises
        ------
        ChecksumMismatchError
            The file does not match its recorded sha256.
        """
        return load_weights(self.path / WEIGHTS_NAME, self.sha256)


def resolve_pretrained(name_or_dir: str | os.PathLike | None) -> PretrainedModel:
    """Turn a bundled model's name or a saved directory into the directory to load.

    Parameters
    ----------
    name_or_dir : str or os.PathLike, optional
        A registered backbone that ships weights, or a directory with ``config.json``;
        ``None`` means :data:`DEFAULT_MODEL`.

    Returns
    -------
    PretrainedModel

    Raises
    ------
    UnknownModelError
        Neither a registered backbone nor a saved directory (lists the choices), or a
        ``config.json`` that is not an emotionkit one.
    NoBundledWeightsError
        The backbone exists but ships no weights.

    Examples
    --------
    >>> resolve_pretrained("cnn").path.name
    'cnn'
    """
    name = DEFAULT_MODEL if name_or_dir is None else name_or_dir
    path = Path(name)
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        return PretrainedModel(path, read_config(path))
    name = str(name)
    backbones = list_plugins("backbones")
    if name not in backbones:
        looks_like_path = os.sep in name or name.startswith(".") or path.suffix
        where = f" There is no model directory (with {CONFIG_NAME}) at {str(path)!r} either." if looks_like_path else ""
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
    return PretrainedModel(weights.path, read_config(weights.path), spec, weights)


def load_inference(model: PretrainedModel, *, device: str | torch.device | None = None) -> InferenceModel:
    """Read a model directory into an inference core, verifying the weights' sha256.

    Parameters
    ----------
    model : PretrainedModel
        What :func:`resolve_pretrained` returned.
    device : str or torch.device, optional
        Where to run (default CPU).

    Returns
    -------
    InferenceModel
        Holding the backbone spec it was built from (``spec``).

    Raises
    ------
    UnknownModelError
        ``config.json`` is not an emotionkit model config.
    UnknownPluginError
        ``config.json`` names a backbone that is not registered.
    InvalidWeightsError
        A damaged directory: a file missing, cut or not JSON, weights empty, foreign or shaped for
        another config (:class:`~emotionkit.exceptions.ChecksumMismatchError`: not matching their sha256).
    WeightsNotFoundError
        No ``model.safetensors``.

    Warns
    -----
    EmotionKitWarning
        ``config.json`` records no ``weights_sha256`` (and the model is not bundled): the weights load unverified.
    """
    spec = model.backbone_spec()

    def build(config: dict[str, Any]) -> nn.Module:
        width = output_width(model.labels, parse_heads(config.get("heads")))  # the validated config's heads
        return build_backbone(spec, config.get("backbone_config"), num_classes=width)

    saved = read_model_directory(model.path, model.sha256, build=build)  # damaged files: an EmotionKitError
    core = InferenceModel(
        saved.model,
        saved.preprocessor,
        backbone_name=model.config["backbone"],
        backbone_config=model.config.get("backbone_config"),
        labels=model.labels,
        temperature=float(model.config.get("temperature", 1.0)),
        device=device,
        spec=spec,
        flip_tta=bool(model.config.get("flip_tta", False)),
        heads=saved.config.get("heads"),
    )
    return core


def save_inference(
    core: InferenceModel, directory: str | os.PathLike, *, meta: Mapping[str, Any], half: bool = False
) -> Path:
    """Write ``config.json``, ``preprocessor.json`` and ``model.safetensors`` for a core.

    Parameters
    ----------
    core : InferenceModel
        The model to save.
    directory : str or os.PathLike
        Created if missing.
    meta : mapping
        Stored as ``config.json``'s ``meta``.
    half : bool, default False
        Store weights as float16.

    Returns
    -------
    pathlib.Path
        The directory.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in core.model.state_dict().items()}
    digest = save_weights(state, out / WEIGHTS_NAME, half=half)
    config = {
        "format": FORMAT,
        "backbone": core.backbone_name,
        "backbone_config": core.backbone_config,
        "labels": list(core.labels),
        "temperature": core.temperature,
        "flip_tta": core.flip_tta,
        **({"heads": heads_to_dict(core.heads)} if core.heads else {}),
        "weights_sha256": digest,
        "num_params": sum(p.numel() for p in core.model.parameters()),
        "meta": dict(meta),
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    (out / PREPROCESSOR_NAME).write_text(json.dumps(core.preprocessor.to_dict(), indent=2) + "\n")
    return out


def build_detector(
    detector: str | FaceDetector | None, device: Any = None, options: Mapping[str, Any] | None = None
) -> FaceDetector | None:
    """Build a registered face detector by name, checking its options; pass an instance or ``None`` through.

    Parameters
    ----------
    detector : str or FaceDetector or None
        A registered detector name, an instance, or ``None``.
    device : str or torch.device, optional
        Passed to the detector's ``build``.
    options : mapping, optional
        Keyword arguments for the detector's ``build``.

    Returns
    -------
    FaceDetector or None

    Raises
    ------
    InvalidOptionError
        An option the detector does not take (the message lists the allowed ones).
    TypeError
        ``detector`` is none of the above.
    """
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
