"""emotionkit: facial expression recognition that works offline, fast on CPUs, explainable and extensible.

>>> import emotionkit
>>> emotionkit.EMOTIONS
('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .exceptions import (
    ChecksumMismatchError,
    DeviceUnavailableError,
    EmotionKitError,
    EmotionKitWarning,
    ImageNotFoundError,
    IncompatibleComponentsError,
    InvalidDataError,
    InvalidImageError,
    InvalidOptionError,
    InvalidWeightsError,
    MissingDependencyError,
    NoBundledWeightsError,
    PluginLoadError,
    UnknownModelError,
    UnknownPluginError,
    WeightsNotFoundError,
)
from .types import EMOTIONS, BatchResults, Detection, FaceEmotion

__all__ = [
    "EMOTIONS",
    "Detection",
    "FaceEmotion",
    "BatchResults",
    "EmotionRecognizer",
    "FacePreprocessor",
    "build_backbone",
    "load_image",
    "list_plugins",
    "sample_image_path",
    "EmotionKitError",
    "InvalidImageError",
    "ImageNotFoundError",
    "UnknownModelError",
    "UnknownPluginError",
    "PluginLoadError",
    "ChecksumMismatchError",
    "IncompatibleComponentsError",
    "NoBundledWeightsError",
    "MissingDependencyError",
    "InvalidDataError",
    "InvalidOptionError",
    "InvalidWeightsError",
    "WeightsNotFoundError",
    "DeviceUnavailableError",
    "EmotionKitWarning",
    "__version__",
]

# Heavy modules (torch) load on first attribute access, so `import emotionkit` stays cheap.
_LAZY = {
    "EmotionRecognizer": ".recognizer",
    "build_backbone": ".recognizer",
    "FacePreprocessor": ".preprocessing",
    "load_image": ".io",
    "sample_image_path": ".io",
    "list_plugins": ".registry",
}

if TYPE_CHECKING:  # pragma: no cover
    from .io import load_image, sample_image_path
    from .preprocessing import FacePreprocessor
    from .recognizer import EmotionRecognizer, build_backbone
    from .registry import list_plugins


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emotionkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
