"""Conformance checks for backbone plugins, like scikit-learn's ``check_estimator``.

Plugin authors call :func:`check_backbone` in their own test suite::

    from emotionkit.testing import check_backbone
    from emotionkit_tinynet import SPEC

    def test_conformance():
        check_backbone(SPEC)

or, like scikit-learn's ``parametrize_with_checks``, get one test per check (so pytest reports
each by name, e.g. ``test_conformance[tinynet-gradients]``, and a known failure can be marked)::

    from emotionkit.testing import parametrize_with_checks

    @parametrize_with_checks([SPEC], expected_failures={"batch_independence": "uses batch statistics"})
    def test_conformance(case, check):
        check(case)

Each check is a function of its own (``check_spec``, ``check_gradients``, ...; :data:`CHECKS`
names them) taking a :class:`BackboneCase`, which builds what the checks share (the
preprocessor, the model, the test batch) on first use. Every broken promise raises
:class:`BackboneCheckError` (an ``AssertionError``, so pytest reports it as a test failure)
naming the check, what was found and what to fix.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .exceptions import EmotionKitError
from .heads import output_width, parse_heads
from .interfaces import BackboneSpec
from .types import EMOTIONS
from .weights import WeightsSpec

if TYPE_CHECKING:  # pragma: no cover
    from .preprocessing import FacePreprocessor
    from .recognizer import EmotionRecognizer

__all__ = [
    "BackboneCheckError",
    "BackboneCase",
    "check_backbone",
    "backbone_checks",
    "parametrize_with_checks",
    "CHECKS",
    "check_spec",
    "check_preprocessing",
    "check_build",
    "check_output_shape",
    "check_num_classes",
    "check_determinism",
    "check_batch_independence",
    "check_gradients",
    "check_target_layer",
    "check_state_dict",
    "check_recognizer",
    "check_save_pretrained",
    "check_weights",
]

#: The checks :func:`check_backbone` runs, in order (``check_<name>`` is each one's function).
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


def _resolve_spec(spec_or_name: BackboneSpec | str) -> BackboneSpec:
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


def _forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(inputs)


class BackboneCase:
    """A backbone under test and what its checks share, each part built on first use.

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

    Raises
    ------
    TypeError
        ``spec_or_name`` is neither a spec nor a name.
    ValueError
        ``batch_size`` is below 2.
    UnknownPluginError, PluginLoadError
        ``spec_or_name`` is a name that is not registered or whose plugin does not import.

    Examples
    --------
    >>> case = BackboneCase("cnn")
    >>> check_output_shape(case)
    >>> tuple(case.logits.shape)
    (3, 7)
    """

    def __init__(
        self,
        spec_or_name: BackboneSpec | str,
        *,
        config: Mapping[str, Any] | None = None,
        batch_size: int = 3,
        atol: float = 1e-4,
        seed: int = 0,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 to test batch independence, got {batch_size}.")
        self.spec = _resolve_spec(spec_or_name)
        self.config = dict(config or {})
        self.batch_size, self.atol, self.seed = batch_size, atol, seed
        self.num_classes = len(EMOTIONS)

    @property
    def name(self) -> str:
        """The spec's name (``"?"`` when it has none)."""
        return str(getattr(self.spec, "name", "?"))

    def fail(self, check: str, detail: str, cause: BaseException | None = None) -> NoReturn:
        """Raise the :class:`BackboneCheckError` of ``check``.

        Parameters
        ----------
        check : str
            The check's name.
        detail : str
            What was found and what to fix.
        cause : BaseException, optional
            The exception behind it.

        Raises
        ------
        BackboneCheckError
            Always.
        """
        raise BackboneCheckError(f"check_backbone({self.name!r}) failed check {check!r}: {detail}") from cause

    @functools.cached_property
    def preprocessor(self) -> FacePreprocessor:
        """The spec's preprocessing as a :class:`~emotionkit.preprocessing.FacePreprocessor`."""
        from .preprocessing import FacePreprocessor

        preprocessing = dict(self.spec.preprocessing)
        try:
            return FacePreprocessor.from_dict(preprocessing)
        except (TypeError, ValueError) as exc:
            self.fail(
                "preprocessing",
                f"spec.preprocessing={preprocessing!r} is not a valid FacePreprocessor config ({exc}).",
                exc,
            )

    @functools.cached_property
    def build_config(self) -> dict[str, Any]:
        """Keyword arguments for ``spec.build``: default config, ``config``, and the preprocessor's channels."""
        kwargs = {**self.spec.default_config, **self.config}
        kwargs.setdefault("in_channels", self.preprocessor.channels)
        return kwargs

    def build(self, num_classes: int | None = None, offset: int = 0) -> nn.Module:
        """Build a freshly seeded model.

        Parameters
        ----------
        num_classes : int, optional
            Outputs (default 7).
        offset : int, default 0
            Added to the seed, for a model with other weights.

        Returns
        -------
        torch.nn.Module
            Whatever ``spec.build`` returns.
        """
        torch.manual_seed(self.seed + offset)
        return self.spec.build(num_classes=num_classes or self.num_classes, **self.build_config)

    @functools.cached_property
    def model(self) -> nn.Module:
        """The model the checks share, in eval mode (the ``build`` check's failure if it is not a module)."""
        model = self.build()
        if not isinstance(model, nn.Module):
            self.fail("build", f"build() returned {type(model).__name__}, not a torch.nn.Module.")
        return model.eval()

    @functools.cached_property
    def x(self) -> torch.Tensor:
        """The test batch: ``(batch_size, C, H, W)`` uniform noise."""
        h, w = self.preprocessor.size  # type: ignore[misc]
        gen = torch.Generator().manual_seed(self.seed)
        return torch.rand((self.batch_size, self.preprocessor.channels, h, w), generator=gen)

    @functools.cached_property
    def logits(self) -> torch.Tensor:
        """The shared model's eval-mode logits on :attr:`x`."""
        return _forward(self.model.eval(), self.x)

    @functools.cached_property
    def faces(self) -> np.ndarray:
        """Random RGB face crops at twice the input size, ``(batch_size, 2H, 2W, 3)`` uint8."""
        h, w = self.preprocessor.size  # type: ignore[misc]
        rng = np.random.default_rng(self.seed)
        return rng.integers(0, 256, (self.batch_size, h * 2, w * 2, 3), dtype=np.uint8)

    @functools.cached_property
    def recognizer(self) -> EmotionRecognizer:
        """An :class:`~emotionkit.EmotionRecognizer` around a model of its own."""
        from .recognizer import EmotionRecognizer

        model = self.build(offset=1)
        return EmotionRecognizer(
            model, self.preprocessor, None, backbone_name=self.spec.name, backbone_config=self.build_config
        )

    def is_registered(self) -> bool:
        """Whether the spec is the one registered under its name (``save_pretrained`` needs it).

        Returns
        -------
        bool
        """
        from .registry import list_plugins, load_plugin

        try:
            return self.spec.name in list_plugins("backbones") and load_plugin("backbones", self.spec.name) == self.spec
        except EmotionKitError:  # registered under that name by a plugin that does not load
            return False

    def __repr__(self) -> str:
        return f"BackboneCase({self.name!r}, config={self.config!r})"


Check = Callable[[BackboneCase], None]


def _check(name: str) -> Callable[[Check], Check]:
    """Name a check: any unexpected exception in it becomes its :class:`BackboneCheckError`."""

    def decorate(func: Check) -> Check:
        @functools.wraps(func)
        def run(case: BackboneCase) -> None:
            try:
                func(case)
            except BackboneCheckError:
                raise
            except Exception as exc:
                case.fail(name, f"raised {type(exc).__name__}: {exc}", exc)

        return run

    return decorate


@_check("spec")
def check_spec(case: BackboneCase) -> None:
    """The spec's fields are sound: a name, a callable build, mappings, explainer names, WeightsSpec weights.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    spec = case.spec
    if not isinstance(spec.name, str) or not spec.name.strip():
        case.fail("spec", f"name must be a non-empty string, got {spec.name!r}.")
    if not callable(spec.build):
        case.fail("spec", f"build must be callable, got {type(spec.build).__name__}.")
    if not isinstance(spec.default_config, Mapping) or not isinstance(spec.preprocessing, Mapping):
        case.fail("spec", "default_config and preprocessing must be mappings.")
    if not all(isinstance(e, str) for e in spec.explainers):
        case.fail("spec", f"explainers must be names (str), got {spec.explainers!r}.")
    if "gradcam" in spec.explainers and spec.target_layer is None:
        case.fail("spec", "explainers lists 'gradcam' but target_layer is None. Set target_layer=lambda m: m.<layer>.")
    bad = [type(w).__name__ for w in spec.weights if not isinstance(w, WeightsSpec)]
    if bad:
        case.fail("spec", f"weights must be WeightsSpec objects, got {', '.join(bad)}.")


@_check("preprocessing")
def check_preprocessing(case: BackboneCase) -> None:
    """The preprocessing config builds a FacePreprocessor whose channels and size match the build config.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    pre = case.preprocessor
    kwargs = {**case.spec.default_config, **case.config}
    in_channels = int(kwargs.get("in_channels", pre.channels))
    if in_channels != pre.channels:
        case.fail(
            "preprocessing",
            f"preprocessing gives {pre.channels}-channel faces but the build config has in_channels={in_channels}. "
            "Make spec.preprocessing['channels'] and default_config['in_channels'] agree.",
        )
    if "image_size" in kwargs:
        size = kwargs["image_size"]
        expected = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(pre.size) != tuple(expected):  # type: ignore[arg-type]
            case.fail(
                "preprocessing", f"preprocessing size {pre.size} differs from the build config's image_size={size!r}."
            )


@_check("build")
def check_build(case: BackboneCase) -> None:
    """``build`` returns a ``torch.nn.Module``.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    case.model  # noqa: B018 - building it is the check


@_check("output_shape")
def check_output_shape(case: BackboneCase) -> None:
    """In eval mode the model maps ``(N, C, H, W)`` to finite ``(N, 7)`` float logits.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    out = case.logits
    if not isinstance(out, torch.Tensor):
        case.fail("output_shape", f"forward returned {type(out).__name__}; it must return a logits tensor.")
    if tuple(out.shape) != (case.batch_size, case.num_classes):
        case.fail(
            "output_shape",
            f"input {tuple(case.x.shape)} gave output {tuple(out.shape)}; expected ({case.batch_size}, "
            f"{case.num_classes}) logits.",
        )
    if not out.is_floating_point() or not torch.isfinite(out).all():
        case.fail("output_shape", f"logits must be finite floats, got dtype {out.dtype} with non-finite values.")


@_check("num_classes")
def check_num_classes(case: BackboneCase) -> None:
    """``build(num_classes=3)`` gives 3 outputs.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    model = case.build(num_classes=3).eval()
    got = tuple(_forward(model, case.x).shape)
    if got != (case.batch_size, 3):
        case.fail("num_classes", f"build(num_classes=3) gave output {got}; build must honour num_classes.")


@_check("determinism")
def check_determinism(case: BackboneCase) -> None:
    """Two eval-mode calls on the same input agree.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    out = case.logits
    again = _forward(case.model.eval(), case.x)
    if not _close(again, out, case.atol):
        case.fail(
            "determinism",
            f"two eval-mode calls on the same input differ by {_max_diff(again, out):.3g}. "
            "Disable dropout and other randomness in eval mode.",
        )


@_check("batch_independence")
def check_batch_independence(case: BackboneCase) -> None:
    """In eval mode each sample's logits do not depend on the rest of the batch.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    out, model = case.logits, case.model.eval()
    for i in range(case.batch_size):
        single = _forward(model, case.x[i : i + 1])
        if not _close(single[0], out[i], case.atol):
            case.fail(
                "batch_independence",
                f"in eval mode sample {i} alone gives logits differing by {_max_diff(single[0], out[i]):.3g} from "
                "the same sample in a batch. Use running statistics (BatchNorm) in eval, not batch statistics.",
            )


@_check("gradients")
def check_gradients(case: BackboneCase) -> None:
    """Gradients reach every trainable parameter and the input (training and Grad-CAM need both).

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    model = copy.deepcopy(case.model).train()  # a copy: a training step moves the shared model's BatchNorm statistics
    xg = case.x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(xg), torch.arange(case.batch_size) % case.num_classes)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        case.fail(
            "gradients",
            f"no gradient reached {len(missing)} trainable parameter(s), e.g. {', '.join(missing[:5])}. "
            "Remove unused parameters or freeze them (requires_grad=False).",
        )
    bad = [name for name, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    if bad:
        case.fail("gradients", f"non-finite gradients in {', '.join(bad[:5])}.")
    if xg.grad is None or not bool(xg.grad.abs().sum() > 0):
        case.fail("gradients", "no gradient reaches the input; Grad-CAM and training need a differentiable forward.")


@_check("target_layer")
def check_target_layer(case: BackboneCase) -> None:
    """``target_layer`` returns a submodule that runs, with a spatial (or ``token_grid``) output.

    Nothing to check for a spec without one.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    spec, model = case.spec, case.model.eval()
    if spec.target_layer is None:
        return
    layer = spec.target_layer(model)
    if not isinstance(layer, nn.Module) or not any(layer is m for m in model.modules()):
        case.fail("target_layer", f"target_layer(model) returned {type(layer).__name__}, not a submodule of the model.")
    seen: list[Any] = []
    handle = layer.register_forward_hook(lambda _m, _i, o: seen.append(o))
    try:
        _forward(model, case.x)
    finally:
        handle.remove()
    if not seen:
        case.fail("target_layer", f"the target layer ({type(layer).__name__}) does not run in the forward pass.")
    act = seen[-1][0] if isinstance(seen[-1], (tuple, list)) else seen[-1]
    if spec.token_grid is not None:
        rows, cols, prefix = (int(v) for v in spec.token_grid(model))
        if act.ndim != 3 or act.shape[1] != rows * cols + prefix:
            case.fail(
                "target_layer",
                f"token_grid says {rows}x{cols} patches + {prefix} prefix tokens, but the target layer "
                f"outputs {tuple(act.shape)}; expected (N, {rows * cols + prefix}, D).",
            )
    elif act.ndim != 4:
        case.fail(
            "target_layer",
            f"the target layer outputs {tuple(act.shape)}; Grad-CAM needs a spatial (N, C, h, w) map. "
            "Pick a conv layer, or give token_grid for transformers.",
        )


@_check("state_dict")
def check_state_dict(case: BackboneCase) -> None:
    """The state dict survives a safetensors round trip into a fresh model, outputs unchanged.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    from .weights import load_weights, save_weights

    model = case.model.eval()
    reference = _forward(model, case.x)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            digest = save_weights(model.state_dict(), path)
        except Exception as exc:
            case.fail(
                "state_dict",
                f"safetensors cannot store the state dict ({type(exc).__name__}: {exc}). Tensors that share memory "
                "(tied weights) must be cloned or registered once.",
                exc,
            )
        fresh = case.build(offset=1)
        fresh.load_state_dict(load_weights(path, digest))
    reloaded = _forward(fresh.eval(), case.x)
    if not _close(reloaded, reference, case.atol):
        case.fail(
            "state_dict",
            f"a fresh model loaded with the saved state dict differs by {_max_diff(reloaded, reference):.3g}. "
            "Keep every weight and buffer that affects the output in the state dict.",
        )


@_check("recognizer")
def check_recognizer(case: BackboneCase) -> None:
    """The model works inside an EmotionRecognizer: ``predict_proba`` (RGB and grey) and ``predict``.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    recognizer, faces, n = case.recognizer, case.faces, case.num_classes
    probs = recognizer.predict_proba(faces)
    if probs.shape != (case.batch_size, n) or not np.isfinite(probs).all():
        case.fail(
            "recognizer", f"predict_proba gave shape {probs.shape}; expected ({case.batch_size}, {n}) finite values."
        )
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        case.fail("recognizer", f"predict_proba rows sum to {probs.sum(axis=1)}, not 1.")
    gray = recognizer.predict_proba(faces[..., 0])
    if gray.shape != (case.batch_size, n):
        case.fail("recognizer", f"predict_proba on grayscale faces gave shape {gray.shape}.")
    results = recognizer.predict(faces[0])
    if len(results) != 1 or set(results[0].scores) != set(EMOTIONS):
        case.fail("recognizer", f"predict on one face crop gave {len(results)} results; expected 1 with 7 scores.")


@_check("save_pretrained")
def check_save_pretrained(case: BackboneCase) -> None:
    """``from_pretrained(save_pretrained(dir))`` gives the same probabilities.

    Needs the spec registered under its name; nothing to check otherwise.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    from .recognizer import EmotionRecognizer

    if not case.is_registered():
        return
    recognizer = case.recognizer
    probs = recognizer.predict_proba(case.faces)
    with tempfile.TemporaryDirectory() as tmp:
        recognizer.save_pretrained(tmp)
        loaded = EmotionRecognizer.from_pretrained(tmp, detector=None)
        again = loaded.predict_proba(case.faces)
    if not np.allclose(again, probs, atol=case.atol):
        case.fail(
            "save_pretrained",
            f"from_pretrained(save_pretrained(dir)) changed the probabilities by {float(np.abs(again - probs).max()):.3g}.",
        )


@_check("weights")
def check_weights(case: BackboneCase) -> None:
    """Declared weights exist, match their checksum, load into the model and name a preprocessor.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Raises
    ------
    BackboneCheckError
        The promise is broken; the message says what was found and how to fix it.
    """
    spec = case.spec
    for weights in spec.weights:
        if not weights.exists():
            case.fail("weights", f"declared weights {weights.name!r} have no file under {str(weights.path)!r}.")
        saved = weights.config()
        labels = saved.get("labels", EMOTIONS)
        width = output_width(labels, parse_heads(saved.get("heads")))  # extra output heads follow the labels
        model = spec.build(num_classes=width, **{**spec.default_config, **saved.get("backbone_config", {})})
        model.load_state_dict(weights.state_dict())  # verifies the sha256
        weights.preprocessor()


_FUNCTIONS: dict[str, Check] = {
    "spec": check_spec,
    "preprocessing": check_preprocessing,
    "build": check_build,
    "output_shape": check_output_shape,
    "num_classes": check_num_classes,
    "determinism": check_determinism,
    "batch_independence": check_batch_independence,
    "gradients": check_gradients,
    "target_layer": check_target_layer,
    "state_dict": check_state_dict,
    "recognizer": check_recognizer,
    "save_pretrained": check_save_pretrained,
    "weights": check_weights,
}


def backbone_checks(case: BackboneCase) -> Iterator[tuple[str, Check]]:
    """Yield the checks that apply to a backbone, in :data:`CHECKS` order, with their names.

    ``target_layer`` is left out for specs without one, ``save_pretrained`` for specs that are not
    registered, ``weights`` for specs without weights.

    Parameters
    ----------
    case : BackboneCase
        The backbone under test.

    Yields
    ------
    (str, callable)
        A check's name and its function; call it with ``case``.

    Examples
    --------
    >>> [name for name, _ in backbone_checks(BackboneCase("cnn"))][:3]
    ['spec', 'preprocessing', 'build']
    """
    skip = {
        "target_layer": case.spec.target_layer is None,
        "save_pretrained": not case.is_registered(),
        "weights": not case.spec.weights,
    }
    for name in CHECKS:
        if not skip.get(name, False):
            yield name, _FUNCTIONS[name]


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
    case = BackboneCase(spec_or_name, config=config, batch_size=batch_size, atol=atol, seed=seed)
    passed = []
    for name, check in backbone_checks(case):
        check(case)
        passed.append(name)
    return passed


def parametrize_with_checks(
    backbones: Iterable[BackboneSpec | str | BackboneCase],
    *,
    expected_failures: Mapping[str, str] | Callable[[BackboneSpec], Mapping[str, str]] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize`` over every check of every backbone, one test id each.

    Like scikit-learn's ``parametrize_with_checks``: the decorated test takes ``case`` and
    ``check`` and calls ``check(case)``; pytest names each test ``<backbone>-<check>``.

    Parameters
    ----------
    backbones : iterable of BackboneSpec, str or BackboneCase
        Specs, registered names, or cases (to pass a ``config``, ``batch_size``...).
    expected_failures : mapping or callable, optional
        Check name to the reason it is known to fail (or a function of the spec returning that);
        those tests are marked ``xfail(strict=True)``, so one that starts passing is reported.

    Returns
    -------
    pytest.MarkDecorator
        Apply it to a test function ``(case, check)``.

    Examples
    --------
    >>> mark = parametrize_with_checks(["cnn"], expected_failures={"weights": "not shipped yet"})
    >>> mark.args[0]
    ('case', 'check')
    """
    import pytest

    params = []
    for item in backbones:
        case = item if isinstance(item, BackboneCase) else BackboneCase(item)
        known = expected_failures(case.spec) if callable(expected_failures) else (expected_failures or {})
        for name, check in backbone_checks(case):
            marks = [pytest.mark.xfail(reason=known[name], strict=True)] if name in known else []
            params.append(pytest.param(case, check, id=f"{case.name}-{name}", marks=marks))
    return pytest.mark.parametrize(("case", "check"), params)
