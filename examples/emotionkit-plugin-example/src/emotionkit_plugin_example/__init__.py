"""A tiny CNN backbone for emotionkit, shipped as a separate distribution.

emotionkit finds it through the entry point in this distribution's ``pyproject.toml``::

    [project.entry-points."emotionkit.backbones"]
    minicnn = "emotionkit_plugin_example:SPEC"

Nothing here is imported until someone uses ``minicnn``.
"""

from __future__ import annotations

import torch
from torch import nn

from emotionkit.interfaces import BackboneSpec

__all__ = ["MiniCNN", "build_minicnn", "SPEC"]


class MiniCNN(nn.Module):
    """Two conv blocks and global average pooling: about 20 k parameters.

    Parameters
    ----------
    num_classes : int, default 7
        Number of outputs (emotionkit passes 7, or the number of labels of a saved model).
    in_channels : int, default 1
        Input channels; must match the preprocessing (1 for grayscale).
    image_size : int, default 48
        Input side; any size works thanks to the global pooling.
    width : int, default 16
        Filters of the first block (the second has twice as many).
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 1, image_size: int = 48, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` faces to ``(N, num_classes)`` logits."""
        return self.head(self.features(x))


def build_minicnn(num_classes: int = 7, in_channels: int = 1, image_size: int = 48, **config: int) -> MiniCNN:
    """Build a :class:`MiniCNN`; emotionkit calls this with the spec's ``default_config`` merged with the user's.

    Parameters
    ----------
    num_classes, in_channels, image_size : int
        What every emotionkit backbone's build function takes.
    **config
        The family's own options (``width``).

    Returns
    -------
    MiniCNN
        An untrained model.
    """
    return MiniCNN(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **config)


def last_conv_block(model: MiniCNN) -> nn.Module:
    """The layer Grad-CAM explains: the ReLU after the last convolution (24x24 at 48 px)."""
    return model.features[-1]


#: What the entry point names: how to build the backbone, its input and what it supports.
SPEC = BackboneSpec(
    name="minicnn",
    build=build_minicnn,
    default_config={"in_channels": 1, "image_size": 48, "width": 16},
    preprocessing={"size": 48, "channels": 1, "mean": [0.5], "std": [0.5], "margin": 0.1},
    target_layer=last_conv_block,
    explainers=("gradcam",),
    weights=(),  # add WeightsSpec(...) entries here to ship trained weights (see the plugin guide)
    description="Tiny two-block CNN (example plugin), 48x48 grayscale.",
)
