"""YuNet's network (Wu, Peng, Yu 2023), written for inference with its batch norms folded into the convolutions.

The layout follows the published model (``ShiqiYu/libfacedetection.train``, Apache-2.0): a stride-2 stem,
five stages of depthwise-separable units with 2x2 max pooling between them, a top-down feature pyramid at
strides 8, 16 and 32, and per level one shared unit followed by score, objectness, box and five-landmark
outputs. Here every unit is a 1x1 convolution then a 3x3 depthwise convolution whose bias carries the
folded batch norm, and the four outputs of a level are one 1x1 convolution (16 channels) and one depthwise
convolution, which computes the same thing as four separate branches in two calls instead of eight.

The module only maps a BGR image batch to raw per-level maps; :mod:`emotionkit.detectors.yunet` decodes them.
``tools/convert_yunet.py`` writes the weights this module loads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["YuNetNet", "STRIDES", "HEAD_CHANNELS"]

#: Output strides of the three pyramid levels (pixels of network input per feature-map cell).
STRIDES = (8, 16, 32)
#: Channels of one level's output map, in order: face score, objectness, box (dx, dy, log w, log h),
#: then five landmarks (x, y) each; all relative to the cell, in units of the stride.
HEAD_CHANNELS = 16


class SeparableUnit(nn.Module):
    """1x1 convolution then 3x3 depthwise convolution (bias = folded batch norm), then ReLU if ``relu``."""

    def __init__(self, cin: int, cout: int, relu: bool = True) -> None:
        super().__init__()
        self.point = nn.Conv2d(cin, cout, 1)
        self.depth = nn.Conv2d(cout, cout, 3, padding=1, groups=cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1:
            # The 1x1 convolution as one matrix product over the NHWC pixels: 10-20% less CPU time than
            # torch's channels-last 1x1 convolution, which takes a slower generic path.
            y = F.linear(x.permute(0, 2, 3, 1), self.point.weight.flatten(1), self.point.bias).permute(0, 3, 1, 2)
        else:
            y = self.point(x)
        y = self.depth(y)
        return y.relu_() if self.relu else y


class YuNetNet(nn.Module):
    """YuNet backbone, pyramid and heads; ``forward`` returns one ``(N, 16, H/s, W/s)`` map per stride.

    Parameters
    ----------
    widths : tuple of int
        Output channels of the five stages after the stem (YuNet-n: 64 each; YuNet-s: 32, 64, 64, 64, 64).
    shared : bool, default True
        Whether each level has a unit before its outputs (YuNet-n does, YuNet-s does not).

    Notes
    -----
    Input: ``(N, 3, H, W)`` float32 BGR in 0-255 (no normalisation), H and W multiples of 32; RGB after
    :meth:`take_rgb`.
    """

    def __init__(self, widths: tuple[int, ...] = (64, 64, 64, 64, 64), shared: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.stem_unit = SeparableUnit(16, 16)
        stages = []
        cin = 16
        for w in widths:
            stages.append(nn.Sequential(SeparableUnit(cin, cin), SeparableUnit(cin, w)))
            cin = w
        self.stages = nn.ModuleList(stages)
        level = widths[-1]
        self.lateral = nn.ModuleList(SeparableUnit(level, level) for _ in STRIDES)
        self.shared = nn.ModuleList(SeparableUnit(level, level) if shared else nn.Identity() for _ in STRIDES)
        self.heads = nn.ModuleList(SeparableUnit(level, HEAD_CHANNELS, relu=False) for _ in STRIDES)

    def take_rgb(self) -> YuNetNet:
        """Reverse the stem's input channels in place, so the network takes RGB instead of BGR; returns ``self``.

        The weights were trained on BGR images; reversing the three input channels of the first
        convolution's kernel computes the same thing on RGB input (to float rounding), and saves
        flipping every photo's channels.
        """
        with torch.no_grad():
            self.stem.weight.copy_(self.stem.weight.flip(1))
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Map ``(N, 3, H, W)`` BGR 0-255 (RGB after :meth:`take_rgb`) to three ``(N, 16, H/s, W/s)`` maps (s = 8, 16, 32)."""
        x = F.max_pool2d(self.stem_unit(F.relu(self.stem(x))), 2)  # stride 4
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 2:  # stages 3, 4, 5 of the paper: strides 8, 16, 32
                feats.append(x)
            if i in (1, 2, 3):
                x = F.max_pool2d(x, 2)
        # Top-down: each coarser level, after its lateral unit, is upsampled and added to the finer one.
        top = self.lateral[2](feats[2])
        mid = self.lateral[1](feats[1] + F.interpolate(top, scale_factor=2.0, mode="nearest"))
        low = self.lateral[0](feats[0] + F.interpolate(mid, scale_factor=2.0, mode="nearest"))
        return [head(shared(f)) for f, shared, head in zip((low, mid, top), self.shared, self.heads)]
