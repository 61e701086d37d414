"""emotionkit-tinynet: a third-party backbone plugin, kept tiny for emotionkit's own tests.

It is registered exactly as any plugin would be, through its distribution's entry points
(``emotionkit_tinynet-0.1.0.dist-info/entry_points.txt``)::

    [emotionkit.backbones]
    tinynet = emotionkit_tinynet:SPEC
"""

from __future__ import annotations

from torch import nn

from emotionkit.interfaces import BackboneSpec

__all__ = ["TinyNet", "SPEC"]


class TinyNet(nn.Module):
    """Two 3x3 convs, global average pooling and a linear head: RGB 32x32 faces to logits."""

    def __init__(self, num_classes: int = 7, in_channels: int = 3, image_size: int = 32, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def build(num_classes: int = 7, in_channels: int = 3, image_size: int = 32, **config) -> TinyNet:
    return TinyNet(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **config)


SPEC = BackboneSpec(
    name="tinynet",
    build=build,
    default_config={"in_channels": 3, "image_size": 32},
    preprocessing={"size": 32, "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "margin": 0.2},
    target_layer=lambda model: model.features[-1],
    explainers=("gradcam",),
    description="Tiny two-conv test network (RGB, 32x32).",
)
