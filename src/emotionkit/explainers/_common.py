"""Shared plumbing of the explainers: per-model locks, hooks that see one thread only, map normalisation."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["model_lock", "forward_hook", "normalize_maps", "check_inputs"]

_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """Return the lock that serialises explanations of one model (created on first use, freed with the model)."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


@contextmanager
def forward_hook(module: nn.Module, callback: Callable[[Any], None]) -> Iterator[None]:
    """Call ``callback(output)`` after each forward of ``module`` made by *this* thread, while in the block.

    Other threads may run the same model (``predict``) meanwhile; their forwards are ignored,
    and the hook is removed on exit even when the block raises.
    """
    owner = threading.get_ident()

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if threading.get_ident() == owner:
            callback(output)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def check_inputs(x: torch.Tensor, targets: Any, num_classes: int | None = None) -> list[int]:
    """Validate a ``(N, C, H, W)`` batch and one integer target per row; return the targets as a list."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"Expected a preprocessed batch of shape (N, C, H, W), got {got}.")
    out = [int(t) for t in targets]
    if len(out) != x.shape[0]:
        raise ValueError(f"Expected one target class per input ({x.shape[0]}), got {len(out)}.")
    if num_classes is not None and any(not 0 <= t < num_classes for t in out):
        raise ValueError(f"Target class indices must be in [0, {num_classes}), got {out}.")
    return out


def normalize_maps(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Upsample ``(N, h, w)`` maps bilinearly to ``size`` and scale each to [0, 1].

    A map with no positive evidence (constant) becomes all zeros rather than NaN.

    Parameters
    ----------
    maps : torch.Tensor
        ``(N, h, w)`` non-negative maps.
    size : (int, int)
        Output height and width (the face crop's pixel grid).

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` float32 in [0, 1].

    Examples
    --------
    >>> out = normalize_maps(torch.tensor([[[0.0, 2.0], [1.0, 4.0]]]), (4, 4))
    >>> out.shape, float(out.min()), float(out.max())
    ((1, 4, 4), 0.0, 1.0)
    """
    maps = maps.detach().float()
    if maps.shape[0] == 0:
        return np.zeros((0, *size), np.float32)
    up = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    flat = up.reshape(up.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - lo
    scaled = torch.where(span > 1e-12, (flat - lo) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return scaled.clamp_(0.0, 1.0).reshape(up.shape).cpu().numpy().astype(np.float32)
