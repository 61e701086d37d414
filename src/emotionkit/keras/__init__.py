"""Keras 3 twins of the CNN family (cnn, resnet, mobilenetv2), on the torch, JAX or TensorFlow backend.

Importing this package imports nothing heavy, whatever ``KERAS_BACKEND`` says: Keras (and
its backend) load on first use, and a missing one raises
:class:`~emotionkit.exceptions.MissingDependencyError` saying what to install. Install with
``pip install 'emotionkit[keras]'``; the torch backend needs nothing more, JAX and
TensorFlow need ``jax`` or ``tensorflow``. Set ``KERAS_BACKEND`` before the first use.

- :func:`build_cnn`, :func:`build_resnet`, :func:`build_mobilenetv2`, :func:`build`: the same
  architectures as the torch backbones, NHWC input ``(48, 48, 1)`` by default; ``pretrained=True``
  loads the bundled torch weights.
- :func:`from_pretrained`, :func:`from_recognizer`, :func:`load_torch_weights`: torch weights into Keras.
- :func:`to_recognizer`, :func:`save_pretrained`, :func:`torch_state_dict`: a Keras-trained model
  back to the torch backbone, for :class:`~emotionkit.recognizer.EmotionRecognizer`.
- :func:`fit`, :func:`augmentation`, :func:`class_weights`, :func:`training_callbacks`: the seed's training recipe.
- :func:`nhwc_faces`, :func:`predict_proba`: faces preprocessed as the torch recognizer does them.

>>> import emotionkit.keras as ek
>>> "build_cnn" in ek.__all__
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ARCHITECTURES",
    "build",
    "build_cnn",
    "build_resnet",
    "build_mobilenetv2",
    "model_info",
    "load_torch_weights",
    "torch_state_dict",
    "from_recognizer",
    "from_pretrained",
    "to_recognizer",
    "save_pretrained",
    "nhwc_faces",
    "predict_proba",
    "augmentation",
    "class_weights",
    "training_callbacks",
    "fit",
]

_LAZY = {
    "ARCHITECTURES": ".builders",
    "build": ".builders",
    "build_cnn": ".builders",
    "build_resnet": ".builders",
    "build_mobilenetv2": ".builders",
    "model_info": ".builders",
    "load_torch_weights": ".convert",
    "torch_state_dict": ".convert",
    "from_recognizer": ".convert",
    "from_pretrained": ".convert",
    "to_recognizer": ".convert",
    "save_pretrained": ".convert",
    "nhwc_faces": ".convert",
    "predict_proba": ".convert",
    "augmentation": ".training",
    "class_weights": ".training",
    "training_callbacks": ".training",
    "fit": ".training",
}

if TYPE_CHECKING:  # pragma: no cover
    from .builders import ARCHITECTURES, build, build_cnn, build_mobilenetv2, build_resnet, model_info
    from .convert import (
        from_pretrained,
        from_recognizer,
        load_torch_weights,
        nhwc_faces,
        predict_proba,
        save_pretrained,
        to_recognizer,
        torch_state_dict,
    )
    from .training import augmentation, class_weights, fit, training_callbacks


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emotionkit.keras' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
