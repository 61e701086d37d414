"""Reading a saved model directory (``config.json``, ``preprocessor.json``, ``model.safetensors``).

Every way such a directory can be damaged (a file missing, cut, not JSON, weights of
another configuration) becomes one :class:`~emotionkit.exceptions.EmotionKitError` that
names the file and says how to repair it; a directory whose ``config.json`` records no
``weights_sha256`` still loads, with an :class:`~emotionkit.exceptions.EmotionKitWarning`
that its weights are unverified.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import EmotionKitError, EmotionKitWarning, InvalidOptionError, InvalidWeightsError, UnknownModelError
from .heads import parse_heads
from .preprocessing import FacePreprocessor
from .types import EMOTIONS
from .weights import CONFIG_NAME, PREPROCESSOR_NAME, WEIGHTS_NAME, load_weights

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["FORMAT", "SavedModel", "read_config", "read_model_directory", "load_state_into"]

#: The ``format`` field of a saved model's ``config.json``.
FORMAT = "emotionkit/1"

_REPAIR = "Re-save the model (save_pretrained or emotionkit train), or copy the directory again."


@dataclass(frozen=True)
class SavedModel:
    """What a saved model directory holds, validated.

    Parameters
    ----------
    config : dict
        ``config.json`` (backbone name and config, labels, temperature, metadata), validated:
        ``labels`` is a non-empty list of names when present.
    preprocessor : FacePreprocessor
        Built from ``preprocessor.json``.
    model : torch.nn.Module
        The backbone with the directory's weights loaded.
    """

    config: dict[str, Any]
    preprocessor: FacePreprocessor
    model: nn.Module


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InvalidWeightsError(f"The model directory {str(path.parent)!r} has no {path.name}. {_REPAIR}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidWeightsError(f"{str(path)!r} is not valid JSON ({exc}). {_REPAIR}") from exc


def _check_config(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise UnknownModelError(
            f"{str(path)!r} is not an emotionkit model config (format {got!r}, expected {FORMAT!r})."
        )
    problems = []
    if not isinstance(config.get("backbone"), str):
        problems.append(f"'backbone' must be a backbone name, got {config.get('backbone')!r}")
    if not isinstance(config.get("backbone_config", {}), dict):
        problems.append(f"'backbone_config' must be an object, got {config.get('backbone_config')!r}")
    labels = config.get("labels", list(EMOTIONS))
    if not (isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)):
        problems.append(f"'labels' must be a non-empty list of names, got {labels!r}")
    temperature = config.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        problems.append(f"'temperature' must be a positive number, got {temperature!r}")
    if not isinstance(config.get("flip_tta", False), bool):
        problems.append(f"'flip_tta' must be true or false, got {config.get('flip_tta')!r}")
    try:
        parse_heads(config.get("heads"))
    except InvalidOptionError as exc:
        problems.append(str(exc).rstrip("."))
    digest = config.get("weights_sha256")
    if digest is not None and not isinstance(digest, str):
        problems.append(f"'weights_sha256' must be 64 hex digits, got {digest!r}")
    if problems:
        raise InvalidWeightsError(f"{str(path)!r} is damaged: {'; '.join(problems)}. {_REPAIR}")
    return config


def read_config(path: Path) -> dict[str, Any]:
    """Read and validate a model directory's ``config.json``.

    Parameters
    ----------
    path : pathlib.Path
        The ``config.json`` file.

    Returns
    -------
    dict
        Backbone name and config, labels, temperature, weights sha256, metadata.

    Raises
    ------
    UnknownModelError
        Not an emotionkit model config.
    InvalidWeightsError
        Missing, not JSON, or with fields of the wrong type (the message names them).
    """
    return _check_config(_read_json(path), path)


def load_state_into(model: nn.Module, state: dict[str, Any], where: str) -> None:
    """Load a state dict, turning torch's missing-key and size-mismatch errors into one clear error.

    Parameters
    ----------
    model : torch.nn.Module
        The freshly built backbone.
    state : dict
        Its weights.
    where : str
        What the weights and the architecture came from, for the message.

    Raises
    ------
    InvalidWeightsError
        Keys or shapes that do not fit ``model``.
    """
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        if len(detail) > 400:
            detail = detail[:400] + " ..."
        raise InvalidWeightsError(
            f"The weights do not fit the architecture of {where}: {detail} The backbone config (e.g. widths) "
            "differs from the one they were trained with; restore the config the model was saved with, or re-save it."
        ) from exc


def read_model_directory(
    path: Path, sha256: str | None = None, *, build: Callable[[dict[str, Any]], nn.Module]
) -> SavedModel:
    """Validate and load a directory written by :meth:`EmotionRecognizer.save_pretrained`.

    Parameters
    ----------
    path : pathlib.Path
        The directory.
    sha256 : str, optional
        Expected sha256 of the weights (bundled models pass theirs); default: ``config.json``'s.
    build : callable
        Builds the backbone from the validated ``config.json`` (the registry lives a layer up).

    Returns
    -------
    SavedModel

    Raises
    ------
    UnknownModelError
        ``config.json`` is not an emotionkit config.
    InvalidWeightsError
        A file missing, not JSON, or inconsistent; weights empty, truncated, foreign or shaped
        for another config (:class:`ChecksumMismatchError` when they fail their sha256).
    WeightsNotFoundError
        No ``model.safetensors``.

    Warns
    -----
    EmotionKitWarning
        Neither ``sha256`` nor ``config.json`` gives a checksum: the weights load unverified.
    """

    config_path = path / CONFIG_NAME
    config = read_config(config_path)
    preprocessor_path = path / PREPROCESSOR_NAME
    raw = _read_json(preprocessor_path)
    missing = sorted(set(FacePreprocessor().to_dict()) - set(raw)) if isinstance(raw, dict) else ["all"]
    if missing:  # a default would silently preprocess differently from training
        raise InvalidWeightsError(
            f"{str(preprocessor_path)!r} is damaged: it must be an object with the keys save_pretrained writes; "
            f"missing: {', '.join(missing)}. {_REPAIR}"
        )
    try:
        preprocessor = FacePreprocessor.from_dict(raw)
    except EmotionKitError:
        raise
    except Exception as exc:  # unknown keys (TypeError), bad values (ValueError), not an object
        raise InvalidWeightsError(
            f"{str(preprocessor_path)!r} is damaged ({type(exc).__name__}: {exc}). {_REPAIR}"
        ) from exc
    try:
        model = build(config)
    except EmotionKitError:
        raise
    except Exception as exc:  # a backbone_config key or value the backbone does not take
        raise InvalidWeightsError(
            f"Cannot build backbone {config['backbone']!r} with the backbone_config of {str(config_path)!r} "
            f"({type(exc).__name__}: {exc}). {_REPAIR}"
        ) from exc
    digest = sha256 or config.get("weights_sha256")
    if digest is None:
        warnings.warn(
            f"{str(config_path)!r} records no weights_sha256, so {WEIGHTS_NAME} loads unverified: a damaged or "
            "replaced file would go unnoticed. Re-save the model (save_pretrained records it).",
            EmotionKitWarning,
            stacklevel=4,
        )
    state = load_weights(path / WEIGHTS_NAME, digest)
    load_state_into(model, state, f"{str(config_path)!r} (backbone {config['backbone']!r})")
    return SavedModel(config, preprocessor, model)
