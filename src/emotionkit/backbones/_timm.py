"""Creating timm models, with a fast, clear failure when ImageNet weights cannot be downloaded."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..exceptions import MissingDependencyError


def create_timm_model(name: str, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Create a timm model; with ``pretrained=True`` fail fast and clearly when offline.

    Parameters
    ----------
    name : str
        timm model name.
    pretrained : bool, default False
        Download ImageNet weights through timm (Hugging Face Hub).
    **kwargs
        Passed to :func:`timm.create_model`.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    MissingDependencyError
        timm is not installed, or ImageNet weights could not be fetched (offline);
        the message says to use ``init="scratch"`` or a local checkpoint instead.
    """
    try:
        import timm
    except ImportError as exc:  # pragma: no cover - timm is a core dependency
        raise MissingDependencyError("timm is required for this backbone: pip install timm") from exc
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    if not _hub_reachable():
        raise MissingDependencyError(
            f"ImageNet weights for {name!r} need a download from the Hugging Face Hub, which is not reachable "
            "(offline, or HF_HUB_OFFLINE is set). Train from scratch with init='scratch', or place the weights "
            "in the Hugging Face cache on a machine that is online and copy the cache here."
        )
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:
        raise MissingDependencyError(
            f"Could not fetch ImageNet weights for {name!r} through timm: {exc}. Use init='scratch' instead."
        ) from exc


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Return whether the Hugging Face Hub answers within ``timeout`` seconds (cached weights count)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False
