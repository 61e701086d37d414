"""The protocols of a recognizer's swappable parts (face detector, explainer), and the specs plugins register.

A plugin distribution registers a *spec* object under one of the entry-point
groups ``emotionkit.backbones``, ``emotionkit.detectors`` or
``emotionkit.explainers``::

    [project.entry-points."emotionkit.backbones"]
    tinynet = "emotionkit_tinynet:SPEC"

The spec is a small frozen dataclass that says how to build the part; nothing
heavy is imported until it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .types import Detection

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .weights import WeightsSpec

__all__ = [
    "FaceDetector",
    "Explainer",
    "BackboneSpec",
    "DetectorSpec",
    "ExplainerSpec",
]


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in an RGB image.

    ``detect`` takes an ``(H, W, 3)`` uint8 RGB array and always returns a list
    (empty when there is no face), with boxes clipped to the image.
    """

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Return the faces in one image.

        Parameters
        ----------
        image : numpy.ndarray
            ``(H, W, 3)`` uint8 RGB.

        Returns
        -------
        list of Detection
            Highest score first; empty when there is no face.
        """
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Return the faces in each of several images.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            ``(H, W, 3)`` uint8 RGB images (sizes may differ).

        Returns
        -------
        list of list of Detection
            One list per image, in input order.
        """
        ...


@runtime_checkable
class Explainer(Protocol):
    """Explains a backbone's decision as a heatmap per input."""

    def __call__(self, model: nn.Module, x: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
        """Return ``(N, H, W)`` heatmaps in [0, 1] on the input's pixel grid.

        Parameters
        ----------
        model : torch.nn.Module
            The backbone, in eval mode.
        x : torch.Tensor
            Preprocessed faces ``(N, C, H, W)`` on the model's device.
        targets : sequence of int
            The class index to explain for each face.

        Returns
        -------
        numpy.ndarray
            ``(N, H, W)`` float32 in [0, 1].
        """
        ...


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone, what it expects, and which weights it ships.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"cnn"``.
    build : callable
        ``build(num_classes=7, in_channels=1, image_size=48, **config) -> nn.Module``.
        The module maps ``(N, C, H, W)`` float32 to ``(N, num_classes)`` logits.
    default_config : mapping
        Keyword arguments ``build`` gets when nothing else is given.
    preprocessing : mapping
        Default :class:`~emotionkit.preprocessing.FacePreprocessor` config for a
        freshly built (untrained) model of this family.
    target_layer : callable, optional
        ``target_layer(model) -> nn.Module``: the layer Grad-CAM hooks.
    token_grid : callable, optional
        For transformers: ``token_grid(model) -> (rows, cols, prefix_tokens)`` so
        Grad-CAM can reshape patch tokens into a map.
    explainers : tuple of str
        Explainer names this family supports.
    weights : tuple of WeightsSpec
        Pretrained weights; the first is the default.
    description : str
        One line for ``emotionkit models``.
    """

    name: str
    build: Callable[..., nn.Module]
    default_config: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    target_layer: Callable[[nn.Module], nn.Module] | None = None
    token_grid: Callable[[nn.Module], tuple[int, int, int]] | None = None
    explainers: tuple[str, ...] = ("gradcam",)
    weights: tuple[WeightsSpec, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class DetectorSpec:
    """How to build a face detector: ``build(device=None, **options) -> FaceDetector``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"mtcnn"``.
    build : callable
        ``build(device=None, **options) -> FaceDetector``.
    description : str
        One line for ``emotionkit models``.
    """

    name: str
    build: Callable[..., FaceDetector]
    description: str = ""


@dataclass(frozen=True)
class ExplainerSpec:
    """How to build an explainer: ``build(spec: BackboneSpec, **options) -> Explainer``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"gradcam"``.
    build : callable
        ``build(spec, **options) -> Explainer``, given the backbone's :class:`BackboneSpec`.
    description : str
        One line for ``emotionkit models``.
    """

    name: str
    build: Callable[..., Explainer]
    description: str = ""
