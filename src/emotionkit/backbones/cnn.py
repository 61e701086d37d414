"""The seed's CNN: three conv blocks (32, 64, 128 filters), a 512-unit dense layer, 7 outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..interfaces import BackboneSpec
from ..weights import WeightsSpec

__all__ = ["EmotionCNN", "build_cnn", "SPEC"]


class EmotionCNN(nn.Module):
    """A VGG-style CNN for 48x48 face crops.

    Each block is ``convs_per_block`` times (conv 3x3, batch norm, ReLU), then 2x2
    max pooling and dropout. The seed network is the default: one conv per block,
    filters (32, 64, 128), a 512-unit dense layer with batch norm and dropout 0.5.

    Parameters
    ----------
    num_classes : int, default 7
        Number of outputs.
    in_channels : int, default 1
        Input channels (1 for grayscale).
    image_size : int, default 48
        Input height and width; must be divisible by ``2 ** len(widths)``.
    widths : sequence of int, default (32, 64, 128)
        Filters of each block.
    convs_per_block : int, default 1
        Conv layers per block.
    hidden : int, default 512
        Units of the dense layer.
    conv_dropout : float, default 0.25
        Dropout after each block.
    dropout : float, default 0.5
        Dropout after the dense layer.

    Raises
    ------
    ValueError
        ``image_size`` is not divisible by ``2 ** len(widths)``.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        image_size: int = 48,
        widths: Sequence[int] = (32, 64, 128),
        convs_per_block: int = 1,
        hidden: int = 512,
        conv_dropout: float = 0.25,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if image_size % (2 ** len(widths)):
            raise ValueError(
                f"image_size={image_size} must be divisible by 2**{len(widths)} for widths={tuple(widths)}."
            )
        blocks: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers: list[nn.Module] = []
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
            layers += [nn.MaxPool2d(2), nn.Dropout(conv_dropout)]
            blocks.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*blocks)
        side = image_size // 2 ** len(widths)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        """Classify a batch of faces.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, image_size, image_size)`` preprocessed faces.

        Returns
        -------
        torch.Tensor
            ``(N, num_classes)`` logits.
        """
        return self.classifier(self.features(x))


def build_cnn(num_classes: int = 7, in_channels: int = 1, image_size: int = 48, **config) -> EmotionCNN:
    """Build an :class:`EmotionCNN`; see its parameters.

    Parameters
    ----------
    num_classes, in_channels, image_size : int
        What every backbone's build function takes.
    **config
        :class:`EmotionCNN`'s other options (``widths``, ``convs_per_block``, ``hidden``, dropouts).

    Returns
    -------
    EmotionCNN
        An untrained model.
    """
    return EmotionCNN(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **config)


def _last_conv_block(model: Any) -> nn.Module:
    # The ReLU after the last conv of the last block: full 12x12 resolution before pooling.
    last_block = model.features[-1]
    relus = [m for m in last_block if isinstance(m, nn.ReLU)]
    return relus[-1]


#: The ``cnn`` entry of the ``emotionkit.backbones`` group.
SPEC = BackboneSpec(
    name="cnn",
    build=build_cnn,
    default_config={"in_channels": 1, "image_size": 48},
    preprocessing={"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]},
    target_layer=_last_conv_block,
    explainers=("gradcam",),
    # Trained on FER-2013 by tools/bundle_weights.py; metrics and the training command are in its card.
    weights=(
        WeightsSpec(
            name="cnn_fer2013",
            package="emotionkit",
            directory="assets/models/cnn",
        ),
    ),
    description="The seed's VGG-style CNN (3 conv blocks + 512-unit dense layer), 48x48 grayscale.",
)
