"""MobileNetV2 (timm's implementation: depthwise-separable inverted residuals) with a 7-class head."""

from __future__ import annotations

from torch import nn

from ..interfaces import BackboneSpec
from ..weights import WeightsSpec
from ._timm import build_inverted_residual_net, gradcam_layer

__all__ = ["build_mobilenetv2", "SPEC"]


def build_mobilenetv2(
    num_classes: int = 7,
    in_channels: int = 1,
    image_size: int = 48,
    *,
    variant: str = "mobilenetv2_100",
    stem_stride: int = 1,
    drop_rate: float = 0.2,
    pretrained: bool = False,
) -> nn.Module:
    """Build timm's MobileNetV2 for small face crops.

    Parameters
    ----------
    num_classes : int, default 7
        Outputs of the new linear head.
    in_channels : int, default 1
        Input channels; with ``pretrained=True`` timm adapts the RGB stem.
    image_size : int, default 48
        Input side (kept for the config; the network pools globally).
    variant : str, default "mobilenetv2_100"
        Any timm MobileNetV2 name (``mobilenetv2_050``, ``mobilenetv2_140``, ...).
    stem_stride : int, default 1
        Stride of the first conv. ImageNet uses 2; 1 keeps a 3x3 final map at 48 px
        instead of 2x2.
    drop_rate : float, default 0.2
        Dropout before the head.
    pretrained : bool, default False
        Ask timm for ImageNet weights (needs network access); see
        :func:`emotionkit.backbones.timm_utils.create_timm_model`.

    Returns
    -------
    torch.nn.Module
        The model; maps ``(N, in_channels, H, W)`` to ``(N, num_classes)`` logits.
    """
    return build_inverted_residual_net(
        variant,
        num_classes=num_classes,
        in_channels=in_channels,
        stem_stride=stem_stride,
        drop_rate=drop_rate,
        pretrained=pretrained,
    )


#: The ``mobilenetv2`` entry of the ``emotionkit.backbones`` group.
SPEC = BackboneSpec(
    name="mobilenetv2",
    build=build_mobilenetv2,
    default_config={"in_channels": 1, "image_size": 48},
    preprocessing={"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]},
    target_layer=gradcam_layer,
    explainers=("gradcam",),
    # Trained on FER-2013 by tools/bundle_weights.py; metrics and the training command are in its card.
    weights=(
        WeightsSpec(
            name="mobilenetv2_fer2013",
            package="emotionkit",
            directory="assets/models/mobilenetv2",
        ),
    ),
    description="MobileNetV2 (timm), inverted residuals, stem stride 1 for 48x48 grayscale.",
)
