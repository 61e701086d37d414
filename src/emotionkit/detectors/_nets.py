"""MTCNN's three networks with facenet-pytorch's weights, computed with fewer and cheaper operations.

Same functions of the input as facenet-pytorch's ``PNet``, ``RNet`` and ``ONet`` (to float
rounding; checked in ``tests/test_mtcnn_cascade.py``), rearranged for CPU inference:

- the input normalisation ``(x - 127.5) / 128`` is folded into the first convolution, so the
  nets take raw pixel values (0-255) and the pyramid levels and crops skip two full-size
  element-wise passes;
- P-Net's 2x2 ceil-mode max pool on the big pyramid levels is the element-wise maximum of
  four strided views, about 2x faster than ``max_pool2d`` on channels-last tensors of that
  size (R-Net's and O-Net's 3x3 pools are not: the views cost more there);
- the heads (face score, box regression, landmarks) are one matrix product instead of two
  or three layers, and the face score is ``sigmoid(l1 - l0)``, the softmax's second column,
  without the first;
- the flatten before R-Net's and O-Net's dense layer reads the channels-last tensor as it
  lies (the dense weights' columns are permuted once instead of the activations every call).

Each wrapper returns only what the cascade uses: box regression, face score, and for O-Net
the landmarks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastONet", "FastPNet", "FastRNet", "max_pool_ceil"]

#: Below this many elements ``max_pool2d``'s single call beats the strided views' four
#: (P-Net levels under ~80 px; measured crossover ~50k elements on 2 cores).
_SLICE_POOL_MIN_ELEMENTS = 1 << 16


def max_pool_ceil(x: torch.Tensor, kernel: int, stride: int = 2) -> torch.Tensor:
    """``F.max_pool2d(x, kernel, stride, ceil_mode=True)`` as maxima of strided views.

    Separable: the rows' maximum first, then the columns'. The missing pixels of the last,
    partial windows are ``-inf``, as in ``max_pool2d``.

    Examples
    --------
    >>> x = torch.arange(25.0).reshape(1, 1, 5, 5)
    >>> max_pool_ceil(x, 2)[0, 0].tolist()
    [[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]
    """
    h, w = x.shape[-2:]
    out_h, out_w = -(-(h - kernel) // stride) + 1, -(-(w - kernel) // stride) + 1
    pad_h, pad_w = (out_h - 1) * stride + kernel - h, (out_w - 1) * stride + kernel - w
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, max(pad_w, 0), 0, max(pad_h, 0)), value=float("-inf"))
    span_h, span_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    rows = x[..., 0:span_h:stride, :]
    for i in range(1, kernel):
        rows = torch.maximum(rows, x[..., i : i + span_h : stride, :])
    out = rows[..., 0:span_w:stride]
    for j in range(1, kernel):
        out = torch.maximum(out, rows[..., j : j + span_w : stride])
    return out


def _pool2(x: torch.Tensor) -> torch.Tensor:
    if x.numel() >= _SLICE_POOL_MIN_ELEMENTS:
        return max_pool_ceil(x, 2)
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


def _fold_normalisation(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv`` that takes raw pixels: ``conv((x - 127.5) / 128)`` as ``conv'(x)``."""
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride)  # type: ignore[arg-type]
    assert conv.bias is not None and folded.bias is not None  # MTCNN's convolutions have biases
    with torch.no_grad():
        folded.weight.copy_(conv.weight * 0.0078125)
        folded.bias.copy_(conv.bias - 127.5 * 0.0078125 * conv.weight.sum(dim=(1, 2, 3)))
    return folded.to(conv.weight.device).to(memory_format=torch.channels_last)


def _merged(*layers: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1x1 convolutions or dense layers into one ``(out, in)`` weight and bias."""
    weight = torch.cat([layer.weight.detach().flatten(1) for layer in layers])
    bias = torch.cat([layer.bias.detach() for layer in layers])
    return weight, bias


def _score(logits: torch.Tensor) -> torch.Tensor:
    """The softmax's face column of two logits: ``sigmoid(l1 - l0)``."""
    return torch.sigmoid(logits[..., 1] - logits[..., 0])


def _dense_for_channels_last(dense: nn.Linear, channels: int, height: int, width: int) -> nn.Linear:
    """``dense`` reading a ``(N, H, W, C)`` flatten, where facenet-pytorch flattens ``(N, W, H, C)``."""
    out = nn.Linear(dense.in_features, dense.out_features)
    index = torch.arange(width * height * channels).view(width, height, channels).permute(1, 0, 2).reshape(-1)
    with torch.no_grad():
        out.weight.copy_(dense.weight[:, index])
        out.bias.copy_(dense.bias)
    return out.to(dense.weight.device)


class _MergedHeads(nn.Module):
    """A network whose output layers run as one matrix product (:func:`_merged`)."""

    head_weight: torch.Tensor
    head_bias: torch.Tensor

    def _set_heads(self, *layers: Any) -> None:
        weight, bias = _merged(*layers)
        self.register_buffer("head_weight", weight.t().contiguous())
        self.register_buffer("head_bias", bias)

    def _heads(self, features: torch.Tensor) -> torch.Tensor:
        """``(M, in)`` features -> ``(M, out)`` logits of every head side by side."""
        return torch.addmm(self.head_bias, features, self.head_weight)


class FastPNet(_MergedHeads):
    """P-Net over raw-pixel pyramid levels: ``(N, 3, H, W)`` float, channels-last.

    Returns box regression ``(N, H', W', 4)`` and face score ``(N, H', W')``.
    """

    def __init__(self, pnet: Any) -> None:
        super().__init__()
        self.conv1 = _fold_normalisation(pnet.conv1)
        self.prelu1, self.conv2, self.prelu2 = pnet.prelu1, pnet.conv2, pnet.prelu2
        self.conv3, self.prelu3 = pnet.conv3, pnet.prelu3
        self._set_heads(pnet.conv4_1, pnet.conv4_2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _pool2(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        n, c, h, w = x.shape
        nhwc = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view for channels-last activations
        heads = self._heads(nhwc).view(n, h, w, 6)
        return heads[..., 2:], _score(heads)


class FastRNet(_MergedHeads):
    """R-Net over raw-pixel 24x24 crops: returns box regression ``(N, 4)`` and face score ``(N,)``."""

    def __init__(self, rnet: Any) -> None:
        super().__init__()
        self.conv1 = _fold_normalisation(rnet.conv1)
        self.prelu1, self.conv2, self.prelu2 = rnet.prelu1, rnet.conv2, rnet.prelu2
        self.conv3, self.prelu3, self.prelu4 = rnet.conv3, rnet.prelu3, rnet.prelu4
        self.dense4 = _dense_for_channels_last(rnet.dense4, 64, 3, 3)
        self._set_heads(rnet.dense5_1, rnet.dense5_2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)))
        heads = self._heads(x)
        return heads[:, 2:], _score(heads)


class FastONet(_MergedHeads):
    """O-Net over raw-pixel 48x48 crops.

    Returns box regression ``(N, 4)``, landmarks ``(N, 10)`` (five x then five y) and face
    score ``(N,)``.
    """

    def __init__(self, onet: Any) -> None:
        super().__init__()
        self.conv1 = _fold_normalisation(onet.conv1)
        self.prelu1, self.conv2, self.prelu2 = onet.prelu1, onet.conv2, onet.prelu2
        self.conv3, self.prelu3, self.conv4, self.prelu4 = onet.conv3, onet.prelu3, onet.conv4, onet.prelu4
        self.prelu5 = onet.prelu5
        self.dense5 = _dense_for_channels_last(onet.dense5, 128, 3, 3)
        self._set_heads(onet.dense6_1, onet.dense6_2, onet.dense6_3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)))
        heads = self._heads(x)
        return heads[:, 2:6], heads[:, 6:], _score(heads)
