"""Per-track temporal smoothing of class probabilities.

Single frames flicker: a blink, motion blur or a compression artefact moves a face's
probabilities. Smoothing each track's probabilities over time steadies the label.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from .errors import VideoOptionError

__all__ = ["Smoother", "EMASmoother", "WindowSmoother", "NoSmoother", "SmoothingName", "make_smoother"]

#: Names of the built-in smoothers: exponential moving average, moving window, or none.
SmoothingName = Literal["ema", "window", "none"]


@runtime_checkable
class Smoother(Protocol):
    """Smooths a probability vector per key (track id)."""

    def update(self, key: int, probs: np.ndarray) -> np.ndarray:
        """Add this frame's probabilities for ``key`` and return the smoothed ones.

        Parameters
        ----------
        key : int
            The track id.
        probs : numpy.ndarray
            This frame's class probabilities, shape ``(n_classes,)``.

        Returns
        -------
        numpy.ndarray
            The smoothed probabilities, float64, same shape; they sum to 1 when the inputs do.
        """
        ...

    def retain(self, keys: Iterable[int]) -> None:
        """Forget every key not in ``keys`` (tracks that ended).

        Parameters
        ----------
        keys : iterable of int
            The track ids still alive.
        """
        ...


class EMASmoother:
    """Exponential moving average: ``s = alpha * p + (1 - alpha) * s_prev``, starting at the first ``p``.

    Parameters
    ----------
    alpha : float, default 0.3
        Weight of the newest frame, in (0, 1]; smaller is smoother and slower. The average
        remembers about ``1 / alpha`` frames (a time constant of ``1 / (alpha * fps)`` seconds).

    Raises
    ------
    VideoOptionError
        ``alpha`` outside (0, 1].

    Examples
    --------
    >>> s = EMASmoother(alpha=0.5)
    >>> s.update(1, np.array([1.0, 0.0])).tolist(), s.update(1, np.array([0.0, 1.0])).tolist()
    ([1.0, 0.0], [0.5, 0.5])
    """

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise VideoOptionError(f"alpha must be in (0, 1], got {alpha}. 1 means no smoothing; 0.1-0.5 is typical.")
        self.alpha = float(alpha)
        self._state: dict[int, np.ndarray] = {}

    def update(self, key: int, probs: np.ndarray) -> np.ndarray:
        """Return the updated average for ``key``.

        Parameters
        ----------
        key : int
            The track id.
        probs : numpy.ndarray
            This frame's class probabilities, shape ``(n_classes,)``.

        Returns
        -------
        numpy.ndarray
            The smoothed probabilities, float64, same shape; they sum to 1 when the inputs do.
        """
        p = np.asarray(probs, dtype=np.float64)
        prev = self._state.get(key)
        state = p.copy() if prev is None else self.alpha * p + (1.0 - self.alpha) * prev
        self._state[key] = state
        return state.copy()

    def retain(self, keys: Iterable[int]) -> None:
        """Drop the state of keys no longer tracked.

        Parameters
        ----------
        keys : iterable of int
            The track ids still alive.
        """
        live = set(keys)
        for key in [k for k in self._state if k not in live]:
            del self._state[key]


class WindowSmoother:
    """Mean of the last ``size`` frames' probabilities.

    Parameters
    ----------
    size : int, default 8
        Number of frames averaged (fewer at the start of a track).

    Raises
    ------
    VideoOptionError
        ``size`` is not a positive integer.

    Examples
    --------
    >>> s = WindowSmoother(size=2)
    >>> [s.update(1, np.array([v, 1 - v])).tolist() for v in (1.0, 0.0, 0.0)]
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """

    def __init__(self, size: int = 8) -> None:
        if int(size) != size or size < 1:
            raise VideoOptionError(f"window size must be a positive integer, got {size}.")
        self.size = int(size)
        self._state: dict[int, deque[np.ndarray]] = {}

    def update(self, key: int, probs: np.ndarray) -> np.ndarray:
        """Return the mean of ``key``'s last ``size`` probability vectors.

        Parameters
        ----------
        key : int
            The track id.
        probs : numpy.ndarray
            This frame's class probabilities, shape ``(n_classes,)``.

        Returns
        -------
        numpy.ndarray
            The smoothed probabilities, float64, same shape; they sum to 1 when the inputs do.
        """
        window = self._state.setdefault(key, deque(maxlen=self.size))
        window.append(np.asarray(probs, dtype=np.float64))
        return np.mean(window, axis=0)

    def retain(self, keys: Iterable[int]) -> None:
        """Drop the windows of keys no longer tracked.

        Parameters
        ----------
        keys : iterable of int
            The track ids still alive.
        """
        live = set(keys)
        for key in [k for k in self._state if k not in live]:
            del self._state[key]


class NoSmoother:
    """Pass probabilities through unchanged."""

    def update(self, key: int, probs: np.ndarray) -> np.ndarray:
        """Return ``probs`` unchanged, as float64.

        Parameters
        ----------
        key : int
            The track id.
        probs : numpy.ndarray
            This frame's class probabilities, shape ``(n_classes,)``.

        Returns
        -------
        numpy.ndarray
            The smoothed probabilities, float64, same shape; they sum to 1 when the inputs do.
        """
        return np.asarray(probs, dtype=np.float64).copy()

    def retain(self, keys: Iterable[int]) -> None:
        """Nothing to forget.

        Parameters
        ----------
        keys : iterable of int
            The track ids still alive.
        """


def make_smoother(smoothing: SmoothingName | Smoother = "ema", *, alpha: float = 0.3, window: int = 8) -> Smoother:
    """Build a smoother from its name, or return a :class:`Smoother` instance unchanged.

    Parameters
    ----------
    smoothing : {"ema", "window", "none"} or Smoother
        Which smoothing to apply per track.
    alpha : float, default 0.3
        EMA weight of the newest frame (``"ema"`` only).
    window : int, default 8
        Frames averaged (``"window"`` only).

    Returns
    -------
    Smoother
        A fresh smoother (no track state yet), or ``smoothing`` itself.

    Raises
    ------
    VideoOptionError
        An unknown name or an out-of-range parameter.

    Examples
    --------
    >>> type(make_smoother("window", window=4)).__name__
    'WindowSmoother'
    """
    if isinstance(smoothing, str):
        if smoothing == "ema":
            return EMASmoother(alpha)
        if smoothing == "window":
            return WindowSmoother(window)
        if smoothing == "none":
            return NoSmoother()
        from ..exceptions import suggest

        raise VideoOptionError(
            f"Unknown smoothing {smoothing!r}. Allowed: 'ema', 'window', 'none'.{suggest(smoothing, ['ema', 'window', 'none'])}"
        )
    if isinstance(smoothing, Smoother):
        return smoothing
    raise VideoOptionError(f"smoothing must be 'ema', 'window', 'none' or a Smoother, got {type(smoothing).__name__}.")
