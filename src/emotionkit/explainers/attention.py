"""Attention rollout (Abnar & Zuidema, 2020) for timm Vision Transformers.

Each block's attention, averaged over heads, gets the residual connection added
(``0.5 * A + 0.5 * I``, rows renormalised); the product over blocks says how much
each input token flows into the class token. Its row for the class token, over
the patch tokens, reshaped to the patch grid, is the map. Rollout is
class-agnostic: every target gets the same map.

timm computes attention with a fused kernel that never materialises the attention
matrix, so fused attention is switched off on every block while hooked and
restored afterwards, even on error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..exceptions import IncompatibleComponentsError
from ..interfaces import BackboneSpec, ExplainerSpec
from ._common import check_inputs, forward_hook, model_lock, normalize_maps

__all__ = ["AttentionRollout", "SPEC"]

#: How the heads of one block are combined.
HeadFusion = Literal["mean", "max", "min"]


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """Return timm attention modules (they have ``fused_attn`` and ``attn_drop``), in forward order."""
    return [
        m for m in model.modules() if hasattr(m, "fused_attn") and isinstance(getattr(m, "attn_drop", None), nn.Module)
    ]


@contextmanager
def _unfused(modules: Sequence[nn.Module]) -> Iterator[None]:
    saved = [m.fused_attn for m in modules]
    try:
        for m in modules:
            setattr(m, "fused_attn", False)  # noqa: B010 - a timm attribute nn.Module's typing does not know
        yield
    finally:
        for m, value in zip(modules, saved):
            setattr(m, "fused_attn", value)  # noqa: B010


class AttentionRollout:
    """Attention-rollout heatmaps for a timm ViT.

    Parameters
    ----------
    spec : BackboneSpec
        The backbone's spec; its ``token_grid`` gives the patch grid and prefix tokens.
    head_fusion : {"mean", "max", "min"}, default "mean"
        How the heads of a block are combined.
    discard_ratio : float, default 0.0
        Fraction of the weakest attention weights of each block set to zero before
        rollout (0.9 sharpens maps, as in Gildenblat's vit-explain); in [0, 1).

    Raises
    ------
    IncompatibleComponentsError
        The spec has no ``token_grid``.

    Examples
    --------
    >>> from emotionkit.registry import load_plugin
    >>> from emotionkit.recognizer import build_backbone
    >>> rollout = AttentionRollout(load_plugin("backbones", "vit"))
    >>> rollout(build_backbone("vit").eval(), torch.rand(1, 1, 48, 48), [0]).shape
    (1, 48, 48)
    """

    def __init__(self, spec: BackboneSpec, *, head_fusion: HeadFusion = "mean", discard_ratio: float = 0.0) -> None:
        if spec.token_grid is None:
            raise IncompatibleComponentsError(
                f"Attention rollout needs a transformer; backbone {spec.name!r} declares no token_grid. "
                "Use method='gradcam' for convolutional backbones."
            )
        if head_fusion not in ("mean", "max", "min"):
            raise ValueError(f"head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}.")
        if not 0.0 <= discard_ratio < 1.0:
            raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}.")
        self.spec = spec
        self.head_fusion = head_fusion
        self.discard_ratio = float(discard_ratio)

    def __call__(self, model: nn.Module, x: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
        """Return one attention-rollout map per input.

        Parameters
        ----------
        model : torch.nn.Module
            A timm Vision Transformer, in eval mode.
        x : torch.Tensor
            Preprocessed faces ``(N, C, H, W)`` on the model's device.
        targets : sequence of int
            One class per face; rollout is class-agnostic, so they only fix ``N``.

        Returns
        -------
        numpy.ndarray
            ``(N, H, W)`` float32 in [0, 1] on the input's pixel grid.

        Raises
        ------
        ValueError
            ``x`` is not ``(N, C, H, W)`` or the number of targets differs from ``N``.
        IncompatibleComponentsError
            The model has no timm attention modules, or its token count does not match ``token_grid``.
        """
        check_inputs(x, targets)
        if x.shape[0] == 0:
            return np.zeros((0, *x.shape[-2:]), np.float32)
        modules = _attention_modules(model)
        if not modules:
            raise IncompatibleComponentsError(
                f"Backbone {self.spec.name!r} ({type(model).__name__}) has no timm attention modules "
                "(with fused_attn and attn_drop) to hook; use method='gradcam'."
            )
        rows, cols, prefix = self.spec.token_grid(model)  # type: ignore[misc]
        attentions: list[torch.Tensor] = []
        with model_lock(model), _unfused(modules), ExitStack() as stack, torch.no_grad():
            for m in modules:
                stack.enter_context(forward_hook(m.attn_drop, attentions.append))  # type: ignore[arg-type]
            model(x)
        if len(attentions) != len(modules):
            raise IncompatibleComponentsError(
                f"Expected attention from {len(modules)} blocks of backbone {self.spec.name!r}, got {len(attentions)}; "
                "this timm version's Attention may not call attn_drop on the attention matrix."
            )
        rollout = self._rollout(attentions)
        tokens = rollout.shape[-1]
        if tokens != prefix + rows * cols:
            raise IncompatibleComponentsError(
                f"Backbone {self.spec.name!r}: {tokens} tokens do not match token_grid {rows}x{cols} + {prefix} prefix tokens."
            )
        if prefix > 0 and getattr(model, "global_pool", "token") == "token":
            flow = rollout[:, 0, prefix:]  # into the class token
        else:  # average-pooled heads read every patch token
            flow = rollout[:, prefix:, prefix:].mean(dim=1)
        return normalize_maps(flow.reshape(-1, rows, cols), (int(x.shape[-2]), int(x.shape[-1])))

    def _rollout(self, attentions: Sequence[torch.Tensor]) -> torch.Tensor:
        result: torch.Tensor | None = None
        for attn in attentions:
            a = attn.float()
            fused = {"mean": a.mean(dim=1), "max": a.amax(dim=1), "min": a.amin(dim=1)}[self.head_fusion]
            if self.discard_ratio > 0:
                flat = fused.reshape(fused.shape[0], -1)
                k = int(flat.shape[1] * self.discard_ratio)
                if k > 0:
                    low = flat.topk(k, dim=1, largest=False).indices
                    flat = flat.scatter(1, low, 0.0)
                fused = flat.reshape(fused.shape)
            eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
            step = 0.5 * fused + 0.5 * eye
            step = step / step.sum(dim=-1, keepdim=True)
            result = step if result is None else step @ result
        assert result is not None
        return result


def _build(spec: BackboneSpec, **options: Any) -> AttentionRollout:
    return AttentionRollout(spec, **options)


#: The ``attention`` explainer plugin (registered in emotionkit's own entry points).
SPEC = ExplainerSpec(
    name="attention",
    build=_build,
    description="Attention rollout for Vision Transformers (class-agnostic; fused attention switched off while hooked).",
)
