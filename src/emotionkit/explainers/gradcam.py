"""Grad-CAM (Selvaraju et al., 2017) for any backbone whose spec names a target layer.

The class score's gradient with respect to the target layer's output, averaged over
space, weights that output's channels; the ReLU of the weighted sum is the map.
Convolutional layers give ``(N, C, h, w)``; transformer layers give ``(N, T, D)``
tokens, reshaped to their patch grid with the spec's ``token_grid`` after the
prefix (class, register) tokens are dropped.

Written here rather than taken from ``pytorch-grad-cam``: emotionkit needs only this
one method, with the layer chosen by a plugin's :class:`~emotionkit.interfaces.BackboneSpec`,
token reshaping driven by the same spec, no state left on the model (gradients come
from :func:`torch.autograd.grad`, so no parameter ``.grad`` is touched), and hooks that
ignore forwards from other threads. That is under 100 lines, versus a dependency that
pins OpenCV and keeps hooks on the model between calls.

``weighting="elementwise"`` gives HiResCAM (Draelos & Carin, 2020): gradient times activation
summed over channels at each position, without averaging the gradient over space first. For
heads that flatten the feature map into a dense layer (the ``cnn`` backbone) each position has
its own weights, and the spatial average of Grad-CAM can highlight regions the score does not
depend on; HiResCAM is then the faithful choice. For globally pooled heads the two agree closely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..exceptions import IncompatibleComponentsError
from ..interfaces import BackboneSpec, ExplainerSpec
from ._common import check_inputs, forward_hook, model_lock, normalize_maps

__all__ = ["GradCAM", "Weighting", "SPEC"]

#: ``"mean"``: Grad-CAM; ``"elementwise"``: HiResCAM.
Weighting = Literal["mean", "elementwise"]


class GradCAM:
    """Grad-CAM heatmaps for a backbone family.

    Parameters
    ----------
    spec : BackboneSpec
        The backbone's spec; its ``target_layer`` (and ``token_grid`` for transformers) is used.
    weighting : {"mean", "elementwise"}, default "mean"
        ``"mean"``: Grad-CAM, channels weighted by their spatially averaged gradient.
        ``"elementwise"``: HiResCAM, activation times gradient at each position.

    Raises
    ------
    IncompatibleComponentsError
        The spec declares no target layer.
    ValueError
        Unknown ``weighting``.

    Examples
    --------
    >>> from emotionkit.registry import load_plugin
    >>> from emotionkit.recognizer import build_backbone
    >>> cam = GradCAM(load_plugin("backbones", "cnn"))
    >>> maps = cam(build_backbone("cnn").eval(), torch.rand(2, 1, 48, 48), [3, 0])
    >>> maps.shape, maps.dtype, bool(maps.min() >= 0 and maps.max() <= 1)
    ((2, 48, 48), dtype('float32'), True)
    """

    def __init__(self, spec: BackboneSpec, *, weighting: Weighting = "mean") -> None:
        if weighting not in ("mean", "elementwise"):
            raise ValueError(f"weighting must be 'mean' (Grad-CAM) or 'elementwise' (HiResCAM), got {weighting!r}.")
        if spec.target_layer is None:
            raise IncompatibleComponentsError(
                f"Backbone {spec.name!r} declares no Grad-CAM target layer. Give its BackboneSpec a "
                "target_layer=lambda model: <layer> (usually the last convolutional block)."
            )
        self.spec = spec
        self.weighting = weighting

    def __call__(self, model: nn.Module, x: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
        """Return ``(N, H, W)`` float32 maps in [0, 1] on the input's pixel grid, one per target class.

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
            ``(N, H, W)`` float32 in [0, 1] on the input's pixel grid; all zeros where the class
            has no positive evidence.

        Raises
        ------
        ValueError
            ``x`` is not ``(N, C, H, W)``, the number of targets differs from ``N``, or a target
            is not an output of the model.
        IncompatibleComponentsError
            The spec's target layer did not run, or gives an output that cannot be mapped to space.
        """
        targets = check_inputs(x, targets)
        if x.shape[0] == 0:
            return np.zeros((0, *x.shape[-2:]), np.float32)
        layer = self.spec.target_layer(model)  # type: ignore[misc]
        captured: list[torch.Tensor] = []

        def keep(output: Any) -> None:
            captured.append(output[0] if isinstance(output, (tuple, list)) else output)

        with model_lock(model), forward_hook(layer, keep), torch.enable_grad():
            # The input needs a gradient so the graph reaches the layer even when parameters are frozen.
            inputs = x.detach().clone().requires_grad_(True)
            logits = model(inputs)
            if not captured:
                raise IncompatibleComponentsError(
                    f"The Grad-CAM target layer of backbone {self.spec.name!r} ({type(layer).__name__}) "
                    "did not run during the forward pass; fix the spec's target_layer."
                )
            activation = captured[-1]
            if logits.ndim != 2 or any(t >= logits.shape[1] for t in targets):
                raise ValueError(
                    f"Target classes {targets} do not fit the model's output of shape {tuple(logits.shape)}."
                )
            score = logits.gather(1, torch.tensor(targets, device=logits.device)[:, None]).sum()
            (grad,) = torch.autograd.grad(score, activation)
        cams = self._combine(model, activation.detach(), grad.detach())
        return normalize_maps(torch.relu(cams), (int(x.shape[-2]), int(x.shape[-1])))

    def _combine(self, model: nn.Module, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if activation.ndim == 4:  # (N, C, h, w)
            weights = grad.mean(dim=(2, 3), keepdim=True) if self.weighting == "mean" else grad
            return (weights * activation).sum(dim=1)
        if activation.ndim == 3:  # (N, T, D) tokens
            if self.spec.token_grid is None:
                raise IncompatibleComponentsError(
                    f"The target layer of backbone {self.spec.name!r} gives tokens of shape {tuple(activation.shape)}, "
                    "but its BackboneSpec has no token_grid to reshape them; add token_grid=lambda model: "
                    "(rows, cols, prefix_tokens)."
                )
            rows, cols, prefix = self.spec.token_grid(model)
            if activation.shape[1] != prefix + rows * cols:
                raise IncompatibleComponentsError(
                    f"Backbone {self.spec.name!r}: {activation.shape[1]} tokens do not match token_grid "
                    f"{rows}x{cols} + {prefix} prefix tokens."
                )
            act, grd = activation[:, prefix:], grad[:, prefix:]
            weights = grd.mean(dim=1, keepdim=True) if self.weighting == "mean" else grd  # (N, 1 or T, D)
            return (weights * act).sum(dim=2).reshape(-1, rows, cols)
        raise IncompatibleComponentsError(
            f"The Grad-CAM target layer of backbone {self.spec.name!r} gives an output of shape "
            f"{tuple(activation.shape)}; expected (N, C, h, w) feature maps or (N, tokens, dim)."
        )


def _build(spec: BackboneSpec, *, weighting: Weighting = "mean", **options: Any) -> GradCAM:
    if options:
        raise TypeError(f"The 'gradcam' explainer takes only the option 'weighting', got {sorted(options)}.")
    return GradCAM(spec, weighting=weighting)


#: The ``gradcam`` explainer plugin (registered in emotionkit's own entry points).
SPEC = ExplainerSpec(
    name="gradcam",
    build=_build,
    description="Grad-CAM on the layer each backbone's spec declares (patch tokens reshaped for ViTs).",
)
