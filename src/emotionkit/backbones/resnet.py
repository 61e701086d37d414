"""A compact ResNet for small face crops: residual basic blocks, batch norm, ReLU, global average pooling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..interfaces import BackboneSpec
from ..weights import WeightsSpec

__all__ = ["BasicBlock", "EmotionResNet", "build_resnet", "SPEC"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    stride : int, default 1
        Stride of the first conv (and of the projection shortcut).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            ``(N, out_channels, H / stride, W / stride)``.
        """
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class EmotionResNet(nn.Module):
    """A ResNet sized for 48x48 inputs.

    A 3x3 stem, then one stage per entry of ``widths`` (``blocks[i]`` basic blocks,
    the first with stride ``strides[i]``), global average pooling, dropout and a
    linear head.

    Parameters
    ----------
    num_classes : int, default 7
        Number of outputs.
    in_channels : int, default 1
        Input channels.
    image_size : int, default 48
        Input side (any size works thanks to global pooling; kept for the config).
    widths : sequence of int, default (32, 64, 128, 256)
        Channels of each stage.
    blocks : sequence of int, default (1, 1, 1, 1)
        Basic blocks per stage.
    strides : sequence of int, default (2, 2, 2, 1)
        Stride of each stage's first block.
    dropout : float, default 0.2
        Dropout before the head.

    Raises
    ------
    ValueError
        ``widths``, ``blocks`` and ``strides`` differ in length.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        image_size: int = 48,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: Sequence[int] = (1, 1, 1, 1),
        strides: Sequence[int] = (2, 2, 2, 1),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not (len(widths) == len(blocks) == len(strides)):
            raise ValueError(
                f"widths, blocks and strides must have the same length, got {widths}, {blocks}, {strides}."
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages: list[nn.Module] = []
        channels = widths[0]
        for width, count, stride in zip(widths, blocks, strides):
            layers = [BasicBlock(channels, width, stride)] + [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a batch of faces.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)`` preprocessed faces.

        Returns
        -------
        torch.Tensor
            ``(N, num_classes)`` logits.
        """
        return self.head(self.pool(self.stages(self.stem(x))))


def build_resnet(num_classes: int = 7, in_channels: int = 1, image_size: int = 48, **config) -> EmotionResNet:
    """Build an :class:`EmotionResNet`; see its parameters.

    Parameters
    ----------
    num_classes, in_channels, image_size : int
        What every backbone's build function takes.
    **config
        :class:`EmotionResNet`'s other options (``widths``, ``blocks``, ``strides``, ``dropout``).

    Returns
    -------
    EmotionResNet
        An untrained model.
    """
    return EmotionResNet(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **config)


def _last_stage(model: Any) -> nn.Module:
    return model.stages[-1]


#: The ``resnet`` entry of the ``emotionkit.backbones`` group.
SPEC = BackboneSpec(
    name="resnet",
    build=build_resnet,
    default_config={"in_channels": 1, "image_size": 48},
    preprocessing={"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]},
    target_layer=_last_stage,
    explainers=("gradcam",),
    # Trained on FER-2013 by tools/bundle_weights.py; metrics and the training command are in its card.
    weights=(
        WeightsSpec(
            name="resnet_fer2013",
            package="emotionkit",
            directory="assets/models/resnet",
        ),
    ),
    description="Compact ResNet (basic residual blocks, global average pooling), 48x48 grayscale.",
)
