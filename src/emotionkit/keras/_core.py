"""What the Keras builders and the weight transfer share: importing Keras, layer names, build information.

Private: the public names are re-exported by :mod:`emotionkit.keras.builders`. This module is the
lowest floor of :mod:`emotionkit.keras` (it imports no other module of it), so the builders, the
weight transfer and the conversion functions all stand on it without an import circle.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import IncompatibleComponentsError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: Batch-norm epsilon: torch's default (Keras' is 1e-3).
BN_EPSILON = 1e-5
#: Batch-norm momentum, the Keras way: 1 - torch's 0.1.
BN_MOMENTUM = 0.9
_SEP = "__"
_INFO_ATTR = "emotionkit_info"
# Config keys that only say how torch initialised the weights; they do not change the architecture.
_INIT_ONLY = ("pretrained", "init")


def import_keras() -> Any:
    """Import Keras 3, turning a missing package or backend into one clear error.

    Returns
    -------
    module
        The ``keras`` module.

    Raises
    ------
    MissingDependencyError
        Keras is not installed, is Keras 2, or cannot import the backend ``KERAS_BACKEND`` names.
    """
    backend = os.environ.get("KERAS_BACKEND")
    if "keras" not in sys.modules:  # Keras may load TensorFlow later on any backend (seeding, saving)
        _import_triton_before_tensorflow()
    try:
        import keras
    except ImportError as exc:
        if exc.name == "keras":
            raise MissingDependencyError("emotionkit.keras needs Keras 3: pip install 'emotionkit[keras]'.") from exc
        raise MissingDependencyError(
            f"Keras could not import its backend {backend or 'tensorflow (the default)'!r}: {exc}. Install it "
            "(pip install jax, or pip install tensorflow-cpu), or set KERAS_BACKEND=torch before importing "
            "emotionkit.keras (torch comes with emotionkit)."
        ) from exc
    except ValueError as exc:  # an unknown KERAS_BACKEND
        raise MissingDependencyError(
            f"Keras rejected KERAS_BACKEND={backend!r}: {exc}. Use one of: torch, jax, tensorflow."
        ) from exc
    if int(keras.__version__.split(".")[0]) < 3:
        raise MissingDependencyError(
            f"emotionkit.keras needs Keras 3, found Keras {keras.__version__}: pip install -U 'keras>=3.5'."
        )
    return keras


def _import_triton_before_tensorflow() -> None:
    """Import triton (shipped with CUDA builds of torch) before TensorFlow loads, if both are installed.

    TensorFlow >= 2.20 loads its LLVM with ``RTLD_GLOBAL``; a later ``import triton`` (which
    torchvision and timm trigger through ``torch._dynamo``) then crashes the interpreter with
    SIGSEGV (tensorflow/tensorflow#124205). The other order is safe.
    """
    if "tensorflow" in sys.modules or "triton" in sys.modules:
        return
    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("tensorflow") is None:
        return
    try:
        import triton  # noqa: F401
    except Exception:  # pragma: no cover - a broken triton only matters to torch.compile
        pass


def triton_would_crash() -> bool:
    """Whether importing triton now would crash the process (TensorFlow loaded first; see above)."""
    return (
        "tensorflow" in sys.modules and "triton" not in sys.modules and importlib.util.find_spec("triton") is not None
    )


def keras_name(torch_path: str) -> str:
    """Return the Keras layer name for a torch module path.

    Parameters
    ----------
    torch_path : str
        A torch module path, e.g. ``"features.0.0"``.

    Returns
    -------
    str
        The path with ``"."`` written as ``"__"`` (torch forbids dots in parameter names).

    Examples
    --------
    >>> keras_name("blocks.1.0.conv_dw")
    'blocks__1__0__conv_dw'
    """
    return torch_path.replace(".", _SEP)


def model_info(model: keras.Model) -> dict[str, Any]:
    """Return what an emotionkit builder recorded about a Keras model.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build` (or ``build_cnn`` and the others).

    Returns
    -------
    dict
        ``architecture``, ``config`` (the torch backbone config), ``labels``, ``temperature``,
        ``output`` and ``preprocessor`` (a :class:`~emotionkit.preprocessing.FacePreprocessor` dict).

    Raises
    ------
    IncompatibleComponentsError
        The model was not built by emotionkit in this process (for example it was read back
        with ``keras.models.load_model``); pass ``architecture`` and ``config`` explicitly then.
    """
    text = getattr(model, _INFO_ATTR, None)
    if not isinstance(text, str):
        raise IncompatibleComponentsError(
            f"Keras model {getattr(model, 'name', model)!r} carries no emotionkit build information (it was not "
            "built by emotionkit.keras in this process, e.g. it was read with keras.models.load_model). Pass "
            "architecture='cnn'|'resnet'|'mobilenetv2' and the config it was built with."
        )
    return dict(json.loads(text))


def _set_info(model: keras.Model, info: Mapping[str, Any]) -> None:
    # A JSON string, so Keras' attribute tracking leaves it alone.
    setattr(model, _INFO_ATTR, json.dumps(dict(info)))


def torch_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the keys of a torch backbone config that only concern initialisation (``pretrained``, ``init``)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k not in _INIT_ONLY}
