"""Vision Transformer: timm's ``vit_tiny_patch16_224`` family with a 7-class linear head.

Three tokenisers: timm's linear patch embedding (``stem="patch"``, the original ViT); a
small convolutional stem (``stem="conv"``: stride-2 3x3 convolutions with batch norm and
ReLU down to the patch grid, then a 1x1 projection to the embedding width), after Xiao
et al., *Early Convolutions Help Transformers See Better* (NeurIPS 2021); or the first
stages of a MobileNetV2 (``stem="mobilenetv2"``, stride 16, then a 1x1 projection): the
hybrid ViT of Dosovitskiy et al. (ICLR 2021, section 3.1), whose convolutional part can
start from pretrained MobileNetV2 weights (``tools/hybrid_vit_start.py``). Without
ImageNet weights the conv stem learns far faster on FER-2013's 28k faces than the
patch embedding: see the vit model card.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..interfaces import BackboneSpec
from ..weights import WeightsSpec

__all__ = ["build_vit", "ConvStem", "MobileNetV2Stem", "SPEC"]

#: The stems ``build_vit`` knows.
STEMS = ("patch", "conv", "mobilenetv2")


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
    stem : {"patch", "conv", "mobilenetv2"}, default "patch"
        ``"patch"``: one ``patch_size`` x ``patch_size`` linear projection per patch (timm's
        ``PatchEmbed``). ``"conv"``: :class:`ConvStem`, ``log2(patch_size)`` stride-2
        convolutions; ``patch_size`` must then be a power of two. ``"mobilenetv2"``:
        :class:`MobileNetV2Stem`, MobileNetV2's stride-16 part; ``patch_size`` must be 16.
    stem_width : int, default 32
        Channels of the conv stem's first convolution (doubling at each one after;
        ``stem="conv"`` only).
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
        with a ``patch_size`` that is not a power of two, a MobileNetV2 stem with a ``patch_size``
        other than 16, or a conv or MobileNetV2 stem with ImageNet weights.
    MissingDependencyError
        ``pretrained=True`` and the ImageNet weights cannot be downloaded.
    """
    from ._timm import create_timm_model

    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be divisible by patch_size={patch_size}.")
    extra = _embed_layer(stem, patch_size, stem_width, pretrained)
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


def _embed_layer(stem: str, patch_size: int, stem_width: int, pretrained: bool) -> dict[str, Any]:
    """The ``embed_layer`` keyword for timm's ``VisionTransformer`` that ``stem`` asks for (none for "patch").

    Raises
    ------
    ValueError
        See :func:`build_vit`.
    """
    if stem not in STEMS:
        raise ValueError(
            f"Unknown stem {stem!r}. Allowed: 'patch' (linear patch embedding), 'conv' (ConvStem), "
            "'mobilenetv2' (MobileNetV2Stem)."
        )
    if stem != "patch" and pretrained:
        raise ValueError(
            f"ImageNet weights exist for stem='patch' only, not stem={stem!r}; use stem='patch' with "
            "pretrained=True, or start a MobileNetV2 stem from a file (tools/hybrid_vit_start.py, --init PATH)."
        )
    extra: dict[str, Any] = {}
    if stem == "conv":
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f"stem='conv' needs a power-of-two patch_size (2, 4, 8, 16); got {patch_size}.")

        def conv_stem(*, img_size: Any, patch_size: Any, in_chans: int, embed_dim: int, **_: Any) -> ConvStem:
            return ConvStem(img_size, patch_size, in_chans, embed_dim, width=stem_width)

        extra["embed_layer"] = conv_stem
    elif stem == "mobilenetv2":
        if patch_size != MobileNetV2Stem.STRIDE:
            raise ValueError(
                f"stem='mobilenetv2' has a fixed stride of {MobileNetV2Stem.STRIDE}: give patch_size="
                f"{MobileNetV2Stem.STRIDE} (got {patch_size}), and an image_size that is a multiple of it (e.g. 96)."
            )

        def mobilenet_stem(
            *, img_size: Any, patch_size: Any, in_chans: int, embed_dim: int, **_: Any
        ) -> MobileNetV2Stem:
            return MobileNetV2Stem(img_size, in_chans, embed_dim)

        extra["embed_layer"] = mobilenet_stem
    return extra


class _GridTokeniser(nn.Module):
    """What the two convolutional tokenisers share: timm's ``PatchEmbed`` interface over a feature map.

    Sets ``img_size``, ``patch_size``, ``grid_size`` and ``num_patches`` as timm's ``PatchEmbed``
    does; a subclass defines ``_features`` (images to a ``(N, C, rows, cols)`` map at the total
    stride) and ``proj`` (C to the token width) under its own tensor names.
    """

    proj: nn.Module

    def _set_grid(self, img_size: Any, stride: int) -> None:
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.img_size = (int(size[0]), int(size[1]))
        self.patch_size = (stride, stride)
        self.grid_size = (self.img_size[0] // stride, self.img_size[1] // stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def _features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every subclass defines it
        """Map ``(N, in_chans, H, W)`` images to the ``(N, C, rows, cols)`` map the tokens come from."""
        raise NotImplementedError

    def feat_ratio(self, as_scalar: bool = True) -> int:
        """Return the tokeniser's total stride (timm asks its embed layers for it).

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
        return self.proj(self._features(x)).flatten(2).transpose(1, 2)


class ConvStem(_GridTokeniser):
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
        patch = patch_size if isinstance(patch_size, int) else int(patch_size[0])
        self._set_grid(img_size, patch)
        layers: list[nn.Module] = []
        channels = in_chans
        for i in range(int(math.log2(patch))):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, embed_dim, 1)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-2 convolutions' map, ``(N, C, rows, cols)``."""
        return self.convs(x)


class MobileNetV2Stem(_GridTokeniser):
    """Hybrid-ViT tokeniser: MobileNetV2's layers down to stride 16, then a 1x1 projection to tokens.

    timm's ``mobilenetv2_100`` stem convolution (stride 2), its batch norm, and its first five
    stages of inverted residuals (``blocks[0:5]``: 16, 24, 32, 64 and 96 channels, total stride
    16), under the same names as in that model (``conv_stem``, ``bn1``, ``blocks``), so that a
    trained MobileNetV2's tensors copy in by name. A drop-in ``embed_layer`` for timm's
    ``VisionTransformer`` with the interface of :class:`ConvStem`. At 96 px it gives the 6x6
    grid of the 48 px conv stem, from MobileNetV2's 96 px features.

    Parameters
    ----------
    img_size : int or tuple of int
        Input side (or ``(height, width)``), a multiple of 16.
    in_chans : int
        Input channels.
    embed_dim : int
        Token width.

    Raises
    ------
    ValueError
        ``img_size`` is not a multiple of 16.
    """

    #: Input pixels per token along each axis.
    STRIDE = 16
    #: MobileNetV2 stages kept (``blocks[:STAGES]``) and their output channels.
    STAGES = 5
    CHANNELS = 96

    def __init__(self, img_size: Any, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        from ._timm import create_timm_model

        self._set_grid(img_size, self.STRIDE)
        if self.img_size[0] % self.STRIDE or self.img_size[1] % self.STRIDE:
            raise ValueError(f"stem='mobilenetv2' needs an image size that is a multiple of 16; got {self.img_size}.")
        net: Any = create_timm_model("mobilenetv2_100", pretrained=False, num_classes=0, in_chans=in_chans)
        self.conv_stem = net.conv_stem
        self.bn1 = net.bn1
        self.blocks = nn.Sequential(*list(net.blocks)[: self.STAGES])
        self.proj = nn.Conv2d(self.CHANNELS, embed_dim, 1)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """MobileNetV2's stride-16 map, ``(N, 96, rows, cols)``."""
        return self.blocks(self.bn1(self.conv_stem(x)))


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
    "stem='conv' for a convolutional tokeniser, stem='mobilenetv2' for a hybrid ViT on MobileNetV2 features.",
)
