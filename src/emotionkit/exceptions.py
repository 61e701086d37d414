"""Exceptions raised by emotionkit.

Every error emotionkit raises on purpose subclasses :class:`EmotionKitError`
and also the builtin exception a caller would naturally catch (``ValueError``,
``FileNotFoundError``, ``ImportError``...), as scikit-learn does with
``NotFittedError(ValueError, AttributeError)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
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
    "suggest",
    "one_line",
]


class EmotionKitError(Exception):
    """Base class of every error emotionkit raises on purpose."""


class InvalidImageError(EmotionKitError, ValueError):
    """An image or array that cannot be used as an input."""


class ImageNotFoundError(EmotionKitError, FileNotFoundError):
    """A path that does not exist."""


class UnknownPluginError(EmotionKitError, ValueError):
    """A plugin name (backbone, detector or explainer) that is not registered."""


class UnknownModelError(UnknownPluginError):
    """A model name that is neither a registered backbone nor a saved model directory."""


class PluginLoadError(EmotionKitError, ImportError):
    """A registered plugin whose module failed to import or whose object is invalid."""


class InvalidWeightsError(EmotionKitError, ValueError):
    """A weights or checkpoint file that cannot be used: empty, truncated, foreign, or shaped for another config."""


class WeightsNotFoundError(EmotionKitError, FileNotFoundError):
    """A weights file (``model.safetensors``) that does not exist."""


class DeviceUnavailableError(EmotionKitError, RuntimeError):
    """A torch device that does not exist here (``"cuda"`` without a GPU, ``"mps"`` off Apple silicon, a typo)."""


class ChecksumMismatchError(InvalidWeightsError):
    """A weights file whose sha256 does not match the one its spec records."""


class IncompatibleComponentsError(EmotionKitError, ValueError):
    """Parts that cannot work together, e.g. a 3-channel preprocessor before a 1-channel backbone."""


class NoBundledWeightsError(EmotionKitError, LookupError):
    """A backbone that exists but ships no pretrained weights."""


class MissingDependencyError(EmotionKitError, ImportError):
    """An optional dependency that is not installed."""


class InvalidDataError(EmotionKitError, ValueError):
    """A dataset (CSV row, image folder, split) that cannot be used."""


class InvalidOptionError(EmotionKitError, TypeError):
    """An option (keyword argument) that a component does not take."""


class EmotionKitWarning(UserWarning):
    """Something emotionkit did that may not be what was meant (only the first frame read, unverified weights, ...).

    Filter them all with ``warnings.simplefilter("ignore", EmotionKitWarning)``, or turn them into
    errors with ``"error"``.
    """


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string.

    Parameters
    ----------
    name : str
        What the user typed.
    choices : iterable of str
        The valid names.

    Returns
    -------
    str
        A sentence to append to an error message, or ``""`` when nothing is close.

    Examples
    --------
    >>> suggest("vitt", ["cnn", "vit"])
    " Did you mean 'vit'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def one_line(exc: BaseException) -> str:
    """Return an error's message on one line (runs of whitespace, newlines included, become one space).

    Parameters
    ----------
    exc : BaseException
        The error.

    Returns
    -------
    str
        Its message, for a one-line command-line report.

    Examples
    --------
    >>> one_line(ValueError("size mismatch for fc.weight:\\n  copying a param"))
    'size mismatch for fc.weight: copying a param'
    """
    return " ".join(str(exc).split())
