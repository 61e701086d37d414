"""Vision Transformer: timm's ``vit_tiny_patch16_224`` family with a 7-class linear head."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..interfaces import BackboneSpec

__all__ = ["build_vit", "SPEC"]


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
    pretrained : bool, default False
        Ask timm for ImageNet weights (needs network access).

    Returns
    -------
    torch.nn.Module
        The model; maps ``(N, in_channels, image_size, image_size)`` to logits.

    Raises
    ------
    ValueError
        ``image_size`` is not divisible by ``patch_size``.
    MissingDependencyError
        ``pretrained=True`` and the ImageNet weights cannot be downloaded.
    """
    from ._timm import create_timm_model

    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be divisible by patch_size={patch_size}.")
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
    )


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
    weights=(),
    description="ViT-Tiny (timm; 12 layers, 192 dims, 3 heads), patch 8 at 48x48 grayscale.",
)
