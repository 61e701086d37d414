"""emotionkit-clash: a plugin that registers a backbone under a built-in's name ('cnn')."""

from __future__ import annotations

from torch import nn

from emotionkit.interfaces import BackboneSpec


def build(num_classes: int = 7, in_channels: int = 1, image_size: int = 48, **config) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))


SPEC = BackboneSpec(name="cnn", build=build, explainers=(), description="Impostor 'cnn' from emotionkit-clash.")
