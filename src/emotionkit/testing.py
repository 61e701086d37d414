"""Conformance checks for backbone plugins, like scikit-learn's ``check_estimator``.

Plugin authors call :func:`check_backbone` in their own test suite::

    from emotionkit.testing import check_backbone
    from emotionkit_tinynet import SPEC

    def test_conformance():
        check_backbone(SPEC)

Every broken promise raises :class:`BackboneCheckError` (an ``AssertionError``, so
pytest reports it as a test failure) naming the check, what was found and what to fix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .exceptions import EmotionKitError
from .interfaces import BackboneSpec
from .types import EMOTIONS
from .weights import WeightsSpec

__all__ = ["BackboneCheckError", "check_backbone", "CHECKS"]

#: The checks :func:`check_backbone` runs, in order.
CHECKS: tuple[str, ...] = (
    "spec",
    "preprocessing",
    "build",
    "output_shape",
    "num_classes",
    "determinism",
    "batch_independence",
    "gradients",
    "target_layer",
    "state_dict",
    "recognizer",
    "save_pretrained",
    "weights",
)


class BackboneCheckError(EmotionKitError, AssertionError):
    """A backbone that breaks a promise emotionkit relies on; the message names the check."""


class _Checker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.passed: list[str] = []

    def fail(self, check: str, detail: str, cause: BaseException | None = None) -> None:
        raise BackboneCheckError(f"check_backbone({self.name!r}) failed check {check!r}: {detail}") from cause

    @contextmanager
    def check(self, check: str) -> Iterator[None]:
        try:
            yield
        except BackboneCheckError:
            raise
        except Exception as exc:
            self.fail(check, f"raised {type(exc).__name__}: {exc}", exc)
        self.passed.append(check)


def _resolve(spec_or_name: BackboneSpec | str) -> BackboneSpec:
    if isinstance(spec_or_name, BackboneSpec):
        return spec_or_name
    if isinstance(spec_or_name, str):
        from .registry import load_plugin

        spec: BackboneSpec = load_plugin("backbones", spec_or_name)
        return spec
    raise TypeError(
        f"check_backbone expects a BackboneSpec or a registered backbone name, got {type(spec_or_name).__name__}."
    )


def _close(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    return bool(torch.allclose(a, b, atol=atol, rtol=atol))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def check_backbone(
    spec_or_name: BackboneSpec | str,
    *,
    config: Mapping[str, Any] | None = None,
    batch_size: int = 3,
    atol: float = 1e-4,
    seed: int = 0,
) -> list[str]:
    """Check that a backbone plugin keeps every promise emotionkit relies on.

    The checks (see :data:`CHECKS`): the spec's fields are sound; its preprocessing config
    builds a :class:`~emotionkit.preprocessing.FacePreprocessor` whose channels and size match
    the build config; ``build`` returns an ``nn.Module`` mapping ``(N, C, H, W)`` to finite
    ``(N, 7)`` logits and honours ``num_classes``; in eval mode repeated calls agree and each
    sample's output does not depend on the rest of the batch; gradients reach every trainable
    parameter and the input (Grad-CAM needs both); ``target_layer`` returns a submodule that runs
    in the forward pass with a spatial (or, with ``token_grid``, a token) output; the
    state dict survives a safetensors round trip; the model works inside
    :class:`~emotionkit.EmotionRecognizer` (``predict_proba`` and ``predict``) and, when the
    spec is registered, through ``save_pretrained`` / ``from_pretrained``; declared weights
    exist, match their checksum and load.

    Parameters
    ----------
    spec_or_name : BackboneSpec or str
        The spec object, or the name it is registered under.
    config : mapping, optional
        Build options merged over the spec's ``default_config``.
    batch_size : int, default 3
        Faces per test batch (at least 2).
    atol : float, default 1e-4
        Absolute and relative tolerance of the numerical comparisons.
    seed : int, default 0
        Seed of the random inputs and weights.

    Returns
    -------
    list of str
        The checks that ran and passed (``save_pretrained`` is left out for unregistered specs,
        ``target_layer`` for specs without one, ``weights`` for specs without weights).

    Raises
    ------
    BackboneCheckError
        A check failed (also an ``AssertionError``); the message names the check and the fix.
    UnknownPluginError, PluginLoadError
        ``spec_or_name`` is a name that is not registered or whose plugin does not import.

    Examples
    --------
    >>> from emotionkit.testing import check_backbone
    >>> passed = check_backbone("cnn")
    >>> "gradients" in passed and "recognizer" in passed
    True
    """
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 to test batch independence, got {batch_size}.")
    spec = _resolve(spec_or_name)
    c = _Checker(getattr(spec, "name", "?"))
    kwargs: dict[str, Any] = {}

    with c.check("spec"):
        if not isinstance(spec.name, str) or not spec.name.strip():
            c.fail("spec", f"name must be a non-empty string, got {spec.name!r}.")
        if not callable(spec.build):
            c.fail("spec", f"build must be callable, got {type(spec.build).__name__}.")
        if not isinstance(spec.default_config, Mapping) or not isinstance(spec.preprocessing, Mapping):
            c.fail("spec", "default_config and preprocessing must be mappings.")
        if not all(isinstance(e, str) for e in spec.explainers):
            c.fail("spec", f"explainers must be names (str), got {spec.explainers!r}.")
        if "gradcam" in spec.explainers and spec.target_layer is None:
            c.fail("spec", "explainers lists 'gradcam' but target_layer is None. Set target_layer=lambda m: m.<layer>.")
        bad = [type(w).__name__ for w in spec.weights if not isinstance(w, WeightsSpec)]
        if bad:
            c.fail("spec", f"weights must be WeightsSpec objects, got {', '.join(bad)}.")
        kwargs = {**spec.default_config, **(config or {})}

    from .preprocessing import FacePreprocessor

    with c.check("preprocessing"):
        try:
            pre = FacePreprocessor.from_dict(dict(spec.preprocessing))
        except (TypeError, ValueError) as exc:
            c.fail(
                "preprocessing",
                f"spec.preprocessing={dict(spec.preprocessing)!r} is not a valid FacePreprocessor config ({exc}).",
                exc,
            )
        in_channels = int(kwargs.get("in_channels", pre.channels))
        if in_channels != pre.channels:
            c.fail(
                "preprocessing",
                f"preprocessing gives {pre.channels}-channel faces but the build config has in_channels={in_channels}. "
                "Make spec.preprocessing['channels'] and default_config['in_channels'] agree.",
            )
        if "image_size" in kwargs:
            size = kwargs["image_size"]
            expected = (size, size) if isinstance(size, int) else tuple(size)
            if tuple(pre.size) != tuple(expected):  # type: ignore[arg-type]
                c.fail(
                    "preprocessing",
                    f"preprocessing size {pre.size} differs from the build config's image_size={size!r}.",
                )
        kwargs.setdefault("in_channels", pre.channels)
    h, w = pre.size  # type: ignore[misc]
    channels = pre.channels
    n = len(EMOTIONS)

    def build(num_classes: int = n, offset: int = 0) -> nn.Module:
        torch.manual_seed(seed + offset)
        return spec.build(num_classes=num_classes, **kwargs)

    with c.check("build"):
        model = build()
        if not isinstance(model, nn.Module):
            c.fail("build", f"build() returned {type(model).__name__}, not a torch.nn.Module.")
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch_size, channels, h, w), generator=gen)

    def forward(m: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return m(inputs)

    with c.check("output_shape"):
        model.eval()
        out = forward(model, x)
        if not isinstance(out, torch.Tensor):
            c.fail("output_shape", f"forward returned {type(out).__name__}; it must return a logits tensor.")
        if tuple(out.shape) != (batch_size, n):
            c.fail(
                "output_shape",
                f"input {tuple(x.shape)} gave output {tuple(out.shape)}; expected ({batch_size}, {n}) logits.",
            )
        if not out.is_floating_point() or not torch.isfinite(out).all():
            c.fail("output_shape", f"logits must be finite floats, got dtype {out.dtype} with non-finite values.")

    with c.check("num_classes"):
        other = build(num_classes=3).eval()
        got = tuple(forward(other, x).shape)
        if got != (batch_size, 3):
            c.fail("num_classes", f"build(num_classes=3) gave output {got}; build must honour num_classes.")
        del other

    with c.check("determinism"):
        again = forward(model, x)
        if not _close(again, out, atol):
            c.fail(
                "determinism",
                f"two eval-mode calls on the same input differ by {_max_diff(again, out):.3g}. "
                "Disable dropout and other randomness in eval mode.",
            )

    with c.check("batch_independence"):
        for i in range(batch_size):
            single = forward(model, x[i : i + 1])
            if not _close(single[0], out[i], atol):
                c.fail(
                    "batch_independence",
                    f"in eval mode sample {i} alone gives logits differing by {_max_diff(single[0], out[i]):.3g} from "
                    "the same sample in a batch. Use running statistics (BatchNorm) in eval, not batch statistics.",
                )

    with c.check("gradients"):
        model.train()
        xg = x.clone().requires_grad_(True)
        logits = model(xg)
        loss = F.cross_entropy(logits, torch.arange(batch_size) % n)
        loss.backward()
        missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            c.fail(
                "gradients",
                f"no gradient reached {len(missing)} trainable parameter(s), e.g. {', '.join(missing[:5])}. "
                "Remove unused parameters or freeze them (requires_grad=False).",
            )
        bad = [name for name, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            c.fail("gradients", f"non-finite gradients in {', '.join(bad[:5])}.")
        if xg.grad is None or not bool(xg.grad.abs().sum() > 0):
            c.fail("gradients", "no gradient reaches the input; Grad-CAM and training need a differentiable forward.")
        model.zero_grad(set_to_none=True)
        model.eval()

    if spec.target_layer is not None:
        with c.check("target_layer"):
            layer = spec.target_layer(model)
            if not isinstance(layer, nn.Module) or not any(layer is m for m in model.modules()):
                c.fail(
                    "target_layer",
                    f"target_layer(model) returned {type(layer).__name__}, not a submodule of the model.",
                )
            seen: list[Any] = []
            handle = layer.register_forward_hook(lambda _m, _i, o: seen.append(o))
            try:
                forward(model, x)
            finally:
                handle.remove()
            if not seen:
                c.fail("target_layer", f"the target layer ({type(layer).__name__}) does not run in the forward pass.")
            act = seen[-1][0] if isinstance(seen[-1], (tuple, list)) else seen[-1]
            if spec.token_grid is not None:
                rows, cols, prefix = (int(v) for v in spec.token_grid(model))
                if act.ndim != 3 or act.shape[1] != rows * cols + prefix:
                    c.fail(
                        "target_layer",
                        f"token_grid says {rows}x{cols} patches + {prefix} prefix tokens, but the target layer "
                        f"outputs {tuple(act.shape)}; expected (N, {rows * cols + prefix}, D).",
                    )
            elif act.ndim != 4:
                c.fail(
                    "target_layer",
                    f"the target layer outputs {tuple(act.shape)}; Grad-CAM needs a spatial (N, C, h, w) map. "
                    "Pick a conv layer, or give token_grid for transformers.",
                )

    from .weights import load_weights, save_weights

    reference = forward(model, x)
    with c.check("state_dict"), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            digest = save_weights(model.state_dict(), path)
        except Exception as exc:
            c.fail(
                "state_dict",
                f"safetensors cannot store the state dict ({type(exc).__name__}: {exc}). Tensors that share memory "
                "(tied weights) must be cloned or registered once.",
                exc,
            )
        fresh = build(offset=1)
        fresh.load_state_dict(load_weights(path, digest))
        reloaded = forward(fresh.eval(), x)
        if not _close(reloaded, reference, atol):
            c.fail(
                "state_dict",
                f"a fresh model loaded with the saved state dict differs by {_max_diff(reloaded, reference):.3g}. "
                "Keep every weight and buffer that affects the output in the state dict.",
            )

    from .recognizer import EmotionRecognizer

    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (batch_size, h * 2, w * 2, 3), dtype=np.uint8)
    recognizer = EmotionRecognizer(fresh, pre, None, backbone_name=spec.name, backbone_config=kwargs)
    with c.check("recognizer"):
        probs = recognizer.predict_proba(faces)
        if probs.shape != (batch_size, n) or not np.isfinite(probs).all():
            c.fail("recognizer", f"predict_proba gave shape {probs.shape}; expected ({batch_size}, {n}) finite values.")
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
            c.fail("recognizer", f"predict_proba rows sum to {probs.sum(axis=1)}, not 1.")
        gray = recognizer.predict_proba(faces[..., 0])
        if gray.shape != (batch_size, n):
            c.fail("recognizer", f"predict_proba on grayscale faces gave shape {gray.shape}.")
        results = recognizer.predict(faces[0])
        if len(results) != 1 or set(results[0].scores) != set(EMOTIONS):
            c.fail("recognizer", f"predict on one face crop gave {len(results)} results; expected 1 with 7 scores.")

    from .registry import list_plugins, load_plugin

    try:
        registered = spec.name in list_plugins("backbones") and load_plugin("backbones", spec.name) == spec
    except EmotionKitError:  # registered under that name by a plugin that does not load
        registered = False
    if registered:
        with c.check("save_pretrained"), tempfile.TemporaryDirectory() as tmp:
            recognizer.save_pretrained(tmp)
            loaded = EmotionRecognizer.from_pretrained(tmp, detector=None)
            again_probs = loaded.predict_proba(faces)
            if not np.allclose(again_probs, probs, atol=atol):
                c.fail(
                    "save_pretrained",
                    f"from_pretrained(save_pretrained(dir)) changed the probabilities by "
                    f"{float(np.abs(again_probs - probs).max()):.3g}.",
                )

    if spec.weights:
        with c.check("weights"):
            for weights in spec.weights:
                if not weights.exists():
                    c.fail("weights", f"declared weights {weights.name!r} have no file under {str(weights.path)!r}.")
                saved = weights.config()
                labels = saved.get("labels", EMOTIONS)
                model_w = spec.build(
                    num_classes=len(labels), **{**spec.default_config, **saved.get("backbone_config", {})}
                )
                model_w.load_state_dict(weights.state_dict())  # verifies the sha256
                weights.preprocessor()
    return c.passed
