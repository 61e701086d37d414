"""Creating timm models, with a fast, clear failure when ImageNet weights cannot be downloaded.

Also the builder that ``mobilenetv2`` and ``efficientnet`` share: timm builds both with one class
(``timm.models.efficientnet.EfficientNet``: stem conv, ``blocks`` of inverted residuals, head conv,
``classifier``), so the stem stride, the head's init and Grad-CAM's layer are set the same way.
"""

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


def build_inverted_residual_net(
    variant: str,
    *,
    num_classes: int,
    in_channels: int,
    stem_stride: int,
    drop_rate: float,
    pretrained: bool,
) -> nn.Module:
    """Build a timm MobileNetV2 or EfficientNet (``variant``) for small face crops.

    Parameters
    ----------
    variant : str
        timm model name of the ``EfficientNet`` class (``mobilenetv2_100``, ``efficientnet_lite0``, ...).
    num_classes, in_channels : int
        Outputs of the new linear head; input channels (with ``pretrained=True`` timm adapts the RGB stem).
    stem_stride : int
        Stride of the first conv: ImageNet's 2, or 1 for a finer final map on small crops.
    drop_rate : float
        Dropout before the head.
    pretrained : bool
        Ask timm for ImageNet weights (needs network access; see :func:`create_timm_model`).

    Returns
    -------
    torch.nn.Module
        Maps ``(N, in_channels, H, W)`` to ``(N, num_classes)`` logits.
    """
    model: Any = create_timm_model(
        variant, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels, drop_rate=drop_rate
    )
    model.conv_stem.stride = (stem_stride, stem_stride)
    if not pretrained:
        # timm's ImageNet init draws the head from U(+-1/sqrt(num_classes)): with 7 classes that gives
        # initial logits large enough for a starting loss near 4 (ln 7 = 1.95), and from-scratch training
        # on FER-2013 stalled near chance. A small normal init starts at chance level.
        nn.init.normal_(model.classifier.weight, std=0.01)
        nn.init.zeros_(model.classifier.bias)
    return model


def gradcam_layer(model: Any) -> nn.Module:
    """Grad-CAM's layer in a net of :func:`build_inverted_residual_net`.

    With ImageNet's stride-2 stem the head's map is 2x2 at 64 px (3x3 at 96), too coarse for Grad-CAM
    (many faces get a flat map): explain the last stride-16 stage instead (``blocks[4]``, 4x4 at 64 px).
    Stride 1: the head's own map (3x3 at 48 px).
    """
    if tuple(model.conv_stem.stride) == (2, 2):
        return model.blocks[4]
    return model.conv_head
