"""What the ImageNet-start converters in ``tools/`` share: in-order renaming, the grey stem fold, a test photo, saving.

Used by ``convert_imagenet_mobilenetv2.py`` and ``convert_imagenet_efficientnet_lite0.py`` (maintainers, once, at
training time; nothing here runs when emotionkit is used).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from emotionkit.weights import sha256sum

#: Channel weights of a grey face crop (ITU-R 601, as :func:`emotionkit.preprocessing.rgb_to_gray`).
LUMA = (0.299, 0.587, 0.114)
#: ImageNet classes of skimage's cat photo (tabby, tiger cat, Egyptian cat ... ), for sanity checks.
CAT_CLASSES = {281, 282, 283, 284, 285}


def remap_in_order(source: dict[str, torch.Tensor], target_keys: list[str], what: str) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors onto ``target_keys`` in order, refusing a network of another shape.

    Raises
    ------
    SystemExit
        The tensor counts differ ("not the same network") or a pair of shapes differs (names both).
    """
    items = list(source.items())
    if len(items) != len(target_keys):
        raise SystemExit(f"{what} has {len(items)} tensors, the target {len(target_keys)}: not the same network")
    return dict(zip(target_keys, (v for _, v in items)))


def fold_rgb_stem(weight: torch.Tensor, channel_std: Sequence[float], grey_std: float) -> torch.Tensor:
    """Fold an RGB stem ``(O, 3, k, k)`` into one grey channel: ``sum_c w_c * grey_std / std_c``.

    Exact for a grey image copied to three channels when every channel is centred on the grey mean (up to a
    constant per filter otherwise, which the following batch norm absorbs): then
    ``sum_c w_c (x - m) / std_c = (sum_c w_c grey_std / std_c) (x - m) / grey_std``, zero padding included.
    """
    scale = torch.tensor([grey_std / s for s in channel_std], dtype=weight.dtype).view(1, 3, 1, 1)
    return (weight * scale).sum(1, keepdim=True)


def cat_photo(size: int = 224) -> np.ndarray:
    """skimage's cat (``data.chelsea()``) as ``(size, size, 3)`` float32 RGB in [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    return resize(data.chelsea(), (size, size), anti_aliasing=True).astype(np.float32)


def grey(rgb: np.ndarray) -> np.ndarray:
    """What a grey face crop of ``rgb`` looks like: ``(H, W)`` float32."""
    return rgb @ np.array(LUMA, np.float32)


def top(logits: torch.Tensor, k: int = 5) -> list[int]:
    """The ``k`` highest classes of one row of logits."""
    return [int(i) for i in logits.topk(k).indices.tolist()]


def check_source(path: str, expected_sha256: str) -> str:
    """The file's sha256, refusing any other file than the one the card names."""
    digest = sha256sum(path)
    if digest != expected_sha256:
        raise SystemExit(f"{path} has sha256 {digest}, expected {expected_sha256}")
    return digest


def save_start(state: dict[str, torch.Tensor], out: str | Path, meta: dict[str, str]) -> dict[str, str]:
    """Write ``state`` as safetensors with ``meta``; print and return the record (path, sha256, metadata)."""
    from safetensors.torch import save_file

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
    record = {"out": str(path), "sha256": sha256sum(path), **meta}
    print(json.dumps(record, indent=2))
    return record
