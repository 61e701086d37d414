"""EfficientNet-Lite (timm's implementation) with a 7-class head, for starts from ImageNet.

EfficientNet-Lite0 is EfficientNet-B0 without squeeze-excitation and with ReLU6, made for CPUs and
integer runtimes: 3.4 M parameters with a one-channel stem and the 7-class head (MobileNetV2 1.0: 2.2 M),
75.1% ImageNet top-1 against MobileNetV2's 72.0%; at 96 px 138 MFLOP per face against 107. ``tools/convert_imagenet_efficientnet_lite0.py`` turns Google's
ImageNet checkpoint (Apache-2.0) into a one-channel grey start for ``emotionkit train --init PATH``.
"""

from __future__ import annotations

from torch import nn

from ..interfaces import BackboneSpec
from ._timm import build_inverted_residual_net, gradcam_layer

__all__ = ["build_efficientnet", "SPEC"]


def build_efficientnet(
    num_classes: int = 7,
    in_channels: int = 1,
    image_size: int = 96,
    *,
    variant: str = "efficientnet_lite0",
    stem_stride: int = 2,
    drop_rate: float = 0.2,
    pretrained: bool = False,
) -> nn.Module:
    """Build timm's EfficientNet(-Lite) for face crops.

    Parameters
    ----------
    num_classes : int, default 7
        Outputs of the new linear head.
    in_channels : int, default 1
        Input channels; with ``pretrained=True`` timm adapts the RGB stem.
    image_size : int, default 96
        Input side (kept for the config; the network pools globally). Its total stride is 32
        with the ImageNet stem, so 96 px ends on a 3x3 map.
    variant : str, default "efficientnet_lite0"
        Any timm EfficientNet name (``efficientnet_lite1``, ``efficientnet_b0``, ...). The ``lite``
        variants use PyTorch's symmetric padding; Google's checkpoints were trained with
        TensorFlow's "same" padding (timm's ``tf_`` names), which fine-tuning absorbs.
    stem_stride : int, default 2
        Stride of the first conv (ImageNet's); 1 gives a 4x finer map at 4x the cost.
    drop_rate : float, default 0.2
        Dropout before the head.
    pretrained : bool, default False
        Ask timm for ImageNet weights (needs network access); offline, convert a local
        checkpoint with ``tools/convert_imagenet_efficientnet_lite0.py`` and train with ``--init PATH``.

    Returns
    -------
    torch.nn.Module
        Maps ``(N, in_channels, H, W)`` to ``(N, num_classes)`` logits.

    Examples
    --------
    >>> import torch
    >>> build_efficientnet()(torch.zeros(2, 1, 96, 96)).shape
    torch.Size([2, 7])
    """
    return build_inverted_residual_net(
        variant,
        num_classes=num_classes,
        in_channels=in_channels,
        stem_stride=stem_stride,
        drop_rate=drop_rate,
        pretrained=pretrained,
    )


#: The ``efficientnet`` entry of the ``emotionkit.backbones`` group. No FER-2013 weights are bundled yet:
#: train them with ``emotionkit train --backbone efficientnet --init PATH`` (see the training guide).
SPEC = BackboneSpec(
    name="efficientnet",
    build=build_efficientnet,
    default_config={"in_channels": 1, "image_size": 96, "variant": "efficientnet_lite0", "stem_stride": 2},
    # Google's Lite checkpoints take RGB scaled to [-1, 1] (mean = std = 0.5 on every channel), so a grey
    # face with mean 0.5 and std 0.5 is exactly what the converted one-channel stem expects.
    preprocessing={"size": 96, "channels": 1, "mean": [0.5], "std": [0.5]},
    target_layer=gradcam_layer,
    explainers=("gradcam",),
    description="EfficientNet-Lite0 (timm), for ImageNet starts at 96 px grayscale; no bundled weights yet.",
)
