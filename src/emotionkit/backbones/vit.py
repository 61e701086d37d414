"""Vision Transformer: timm's ``vit_tiny_patch16_224`` family with a 7-class linear head.

Two tokenisers: timm's linear patch embedding (``stem="patch"``, the original ViT) or a
small convolutional stem (``stem="conv"``: stride-2 3x3 convolutions with batch norm and
ReLU down to the patch grid, then a 1x1 projection to the embedding width), after Xiao
et al., *Early Convolutions Help Transformers See Better* (NeurIPS 2021). Without
ImageNet weights the conv stem learns far faster on FER-2013's 28k faces: see the vit
model card.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..interfaces import BackboneSpec
from ..weights import WeightsSpec

__all__ = ["build_vit", "ConvStem", "SPEC"]


def build_vit(
    num_classes: int = 7,
    in_channels: int = 1,
    image_size: int = 48,
    *,
    patch_size: int = 8,
    variant: str = "vit_tiny_patch16_224",
    depth: int = 12,
    embed_dim: int = 192,
    num_heads: int = 3,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.1,
    stem: str = "patch",
    stem_width: int = 32,
    pretrained: bool = False,
) -> nn.Module:
    """Build a timm ViT (12 layers, 192 dims, 3 heads by default) for face crops.

    The classification head is an ``nn.Linear(embed_dim, num_classes)``; image size,
    patch size and channels are configurable, and timm resamples position
    embeddings when ImageNet weights are requested at another size.

    Parameters
    ----------
    num_classes : int, default 7
        Outputs of the linear head.
    in_channels : int, default 1
        Input channels.
    image_size : int, default 48
        Input side; must be divisible by ``patch_size``.
    patch_size : int, default 8
        Patch side (16 for the ImageNet configuration at 224 px).
    variant : str, default "vit_tiny_patch16_224"
        The timm model name.
    depth, embed_dim, num_heads : int
        Transformer size (12, 192, 3 for ViT-Tiny).
    drop_rate, drop_path_rate : float
        Dropout and stochastic depth.
    stem : {"patch", "conv"}, default "patch"
        ``"patch"``: one ``patch_size`` x ``patch_size`` linear projection per patch (timm's
        ``PatchEmbed``). ``"conv"``: :class:`ConvStem`, ``log2(patch_size)`` stride-2
        convolutions; ``patch_size`` must then be a power of two.
    stem_width : int, default 32
        Channels of the conv stem's first convolution (doubling at each one after).
    pretrained : bool, default False
        Ask timm for ImageNet weights (needs network access; ``stem="patch"`` only).

    Returns
    -------
    torch.nn.Module
        The model; maps ``(N, in_channels, image_size, image_size)`` to logits.

    Raises
    ------
    ValueError
        ``image_size`` is not divisible by ``patch_size``, an unknown ``stem``, a conv stem
        with a ``patch_size`` that is not a power of two, or a conv stem with ImageNet weights.
    MissingDependencyError
        ``pretrained=True`` and the ImageNet weights cannot be downloaded.
    """
    from ._timm import create_timm_model

    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be divisible by patch_size={patch_size}.")
    extra: dict[str, Any] = {}
    if stem == "conv":
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f"stem='conv' needs a power-of-two patch_size (2, 4, 8, 16); got {patch_size}.")
        if pretrained:
            raise ValueError("ImageNet weights exist for stem='patch' only; use stem='patch' with pretrained=True.")

        def conv_stem(*, img_size: Any, patch_size: Any, in_chans: int, embed_dim: int, **_: Any) -> ConvStem:
            return ConvStem(img_size, patch_size, in_chans, embed_dim, width=stem_width)

        extra["embed_layer"] = conv_stem
    elif stem != "patch":
        raise ValueError(f"Unknown stem {stem!r}. Allowed: 'patch' (linear patch embedding), 'conv' (ConvStem).")
    return create_timm_model(
        variant,
        pretrained=pretrained,
        num_classes=num_classes,
        in_chans=in_channels,
        img_size=image_size,
        patch_size=patch_size,
        depth=depth,
        embed_dim=embed_dim,
        num_heads=num_heads,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        **extra,
    )


class ConvStem(nn.Module):
    """Convolutional tokeniser: stride-2 conv-BN-ReLU blocks down to the patch grid, then a 1x1 projection.

    A drop-in ``embed_layer`` for timm's ``VisionTransformer``: it exposes the same
    ``img_size``, ``patch_size``, ``grid_size`` and ``num_patches`` as timm's ``PatchEmbed``
    and returns ``(N, tokens, embed_dim)``.

    Parameters
    ----------
    img_size : int or tuple of int
        Input side (or ``(height, width)``).
    patch_size : int or tuple of int
        Total stride, a power of two: ``log2(patch_size)`` convolutions.
    in_chans : int
        Input channels.
    embed_dim : int
        Token width.
    width : int, default 32
        Channels of the first convolution, doubled at each later one.
    """

    def __init__(self, img_size: Any, patch_size: Any, in_chans: int, embed_dim: int, *, width: int = 32) -> None:
        super().__init__()
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        patch = patch_size if isinstance(patch_size, int) else int(patch_size[0])
        self.img_size = (int(size[0]), int(size[1]))
        self.patch_size = (patch, patch)
        self.grid_size = (self.img_size[0] // patch, self.img_size[1] // patch)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        layers: list[nn.Module] = []
        channels = in_chans
        for i in range(int(math.log2(patch))):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, embed_dim, 1)

    def feat_ratio(self, as_scalar: bool = True) -> int:
        """Return the stem's total stride (timm asks its embed layers for it).

        Parameters
        ----------
        as_scalar : bool, default True
            Accepted for timm's interface; the stride is the same along both axes.

        Returns
        -------
        int
            Input pixels per token along each axis (``patch_size``).
        """
        return self.patch_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images to tokens.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_chans, H, W)`` images of ``img_size``.

        Returns
        -------
        torch.Tensor
            ``(N, grid_rows * grid_cols, embed_dim)`` tokens, row-major over the grid.
        """
        return self.proj(self.convs(x)).flatten(2).transpose(1, 2)


def _token_grid(model: Any) -> tuple[int, int, int]:
    rows, cols = model.patch_embed.grid_size
    return int(rows), int(cols), int(getattr(model, "num_prefix_tokens", 1))


def _last_norm1(model: Any) -> nn.Module:
    return model.blocks[-1].norm1


#: The ``vit`` entry of the ``emotionkit.backbones`` group.
SPEC = BackboneSpec(
    name="vit",
    build=build_vit,
    default_config={"in_channels": 1, "image_size": 48, "patch_size": 8},
    preprocessing={"size": 48, "channels": 1, "mean": [0.5], "std": [0.5]},
    target_layer=_last_norm1,
    token_grid=_token_grid,
    explainers=("gradcam", "attention"),
    # Trained on FER-2013 by tools/bundle_weights.py (conv stem, 6 layers; see its card for the command).
    weights=(
        WeightsSpec(
            name="vit_fer2013",
            package="emotionkit",
            directory="assets/models/vit",
        ),
    ),
    description="ViT (timm; ViT-Tiny by default: 12 layers, 192 dims, 3 heads), patch 8 at 48x48 grayscale; "
    "stem='conv' for a convolutional tokeniser (the bundled weights: conv stem, 6 layers).",
)
