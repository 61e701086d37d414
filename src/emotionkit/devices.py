"""Torch devices: check that the one asked for exists before any model is moved to it."""

from __future__ import annotations

import torch

from .exceptions import DeviceUnavailableError

__all__ = ["available_devices", "resolve_device"]


def available_devices() -> list[str]:
    """Return the devices this torch build can run on here: ``"cpu"``, ``"cuda:N"`` per GPU, ``"mps"``.

    Returns
    -------
    list of str
        Always starts with ``"cpu"``.

    Examples
    --------
    >>> available_devices()[0]
    'cpu'
    """
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a device name into a ``torch.device`` that exists on this machine.

    Parameters
    ----------
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...; ``None`` means the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceUnavailableError
        An unknown device name, or a device this machine or torch build does not have;
        the message lists the available ones (also a ``RuntimeError``, as torch raises).

    Examples
    --------
    >>> resolve_device(None)
    device(type='cpu')
    """
    available = available_devices()
    try:
        dev = torch.device(device or "cpu")
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceUnavailableError(
            f"Unknown device {device!r}. Allowed: cpu, cuda, cuda:N, mps; available here: {', '.join(available)}."
        ) from exc
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (dev.index is None or dev.index < count):
            return dev
        why = (
            f"this torch {torch.__version__} was built without CUDA"
            if torch.version.cuda is None
            else ("no CUDA GPU is visible" if not count else f"there are {count} CUDA GPU(s), numbered from 0")
        )
    elif dev.type == "mps":
        if "mps" in available:
            return dev
        why = "MPS needs Apple silicon and a torch built with it"
    else:
        why = f"emotionkit runs on cpu, cuda and mps, not {dev.type}"
    raise DeviceUnavailableError(
        f"Device {str(device)!r} is not available: {why}. Available here: {', '.join(available)}. "
        "Pass one of them, or leave device unset for the CPU."
    )
