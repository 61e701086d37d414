"""The inference core: a resolved model and the runtime that computes its logits.

An :class:`InferenceModel` holds everything needed to turn preprocessed faces into
probabilities: the backbone (and its registry name, config and, when known, its
:class:`~emotionkit.interfaces.BackboneSpec`), the :class:`~emotionkit.preprocessing.FacePreprocessor`
the weights were trained with, the labels, the calibrated temperature, and a *logits
runtime*: :class:`TorchRuntime` by default, or any object with a ``name`` and a
``__call__(x) -> logits`` (such as :class:`emotionkit.export.OnnxBackbone`) installed
with :meth:`InferenceModel.use_runtime`.

This module sits below :class:`~emotionkit.EmotionRecognizer`, the explainers, the
ONNX export and the video stream: they all use it through its public methods and
none of them is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from .devices import resolve_device
from .exceptions import IncompatibleComponentsError
from .heads import OutputHead, head_columns, output_width, parse_heads
from .types import EMOTIONS

if TYPE_CHECKING:  # pragma: no cover
    from .interfaces import BackboneSpec
    from .preprocessing import FacePreprocessor

__all__ = ["InferenceModel", "LogitsRuntime", "TorchRuntime", "HasInference", "InferenceAttributes", "inference_of"]


@runtime_checkable
class LogitsRuntime(Protocol):
    """What computes a model's logits: ``runtime(x)`` maps ``(N, C, H, W)`` faces to ``(N, classes)``.

    ``name`` says which runtime it is (``"torch"``, ``"onnx"``, ...); the result is a float32
    tensor on the CPU.
    """

    @property
    def name(self) -> str:
        """Which runtime computes the logits (``"torch"``, ``"onnx"``, ...)."""
        ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of preprocessed faces.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` preprocessed faces.

        Returns
        -------
        torch.Tensor
            ``(N, classes)`` float32 logits on the CPU.
        """
        ...


def _uses_convolutions(model: nn.Module) -> bool:
    return sum(isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) for m in model.modules()) > 2


def first_conv_channels(model: nn.Module) -> int | None:
    """Input channels of the first ``nn.Conv2d`` (the stem or patch embedding), or ``None`` without one.

    Examples
    --------
    >>> first_conv_channels(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    3
    """
    return next((int(m.in_channels) for m in model.modules() if isinstance(m, nn.Conv2d)), None)


class TorchRuntime:
    """The torch backbone as a logits runtime.

    The model is put on ``device`` in eval mode; on the CPU a convolutional model is
    stored channels-last (its inputs are converted by :meth:`prepare`), and inference
    runs with BatchNorm folded into the layers before it (:meth:`inference_model`).

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, C, H, W)`` to logits.
    device : str or torch.device, optional
        Where it runs (default CPU).
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device | None = None) -> None:
        self.device = resolve_device(device)  # "cuda" without a GPU: DeviceUnavailableError listing what there is
        #: Whether inputs are converted to ``torch.channels_last`` (CPU convnets, where it is faster).
        self.channels_last = self.device.type == "cpu" and _uses_convolutions(model)
        self._folded: tuple[tuple[int, ...], nn.Module] | None = None
        #: How many times :meth:`inference_model` has (re)built the folded copy: a runtime built from it
        #: (:class:`emotionkit.onnx_graph.OnnxGraphRuntime`) is stale when this moved on.
        self.folds = 0
        self._modules: tuple[nn.Module | None, list[nn.Module]] = (None, [])
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Move preprocessed faces to the model's device, in the memory layout the model is stored in.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` faces.

        Returns
        -------
        torch.Tensor
            The model's input (what explainers call the model on).
        """
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the backbone (BatchNorm folded) on preprocessed faces.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` preprocessed faces.

        Returns
        -------
        torch.Tensor
            ``(N, classes)`` float32 logits on the CPU.
        """
        x = self.prepare(x)
        with torch.inference_mode():
            return self.inference_model()(x).float().cpu()

    def inference_model(self) -> nn.Module:
        """The backbone with BatchNorm folded into the layers before it (:func:`~emotionkit.fusion.fold_batch_norm`).

        Rebuilt whenever a parameter or buffer of :attr:`model` changed (in place or replaced)
        or the model is in training mode, so :attr:`model` stays the one source of truth.

        Returns
        -------
        torch.nn.Module
            :attr:`model` itself in training mode, else its folded copy.
        """
        if self.model.training:
            return self.model
        cached = self._folded
        if cached is not None and self._modules[0] is self.model and cached[0] == self._state_key():
            return cached[1]
        from .fusion import fold_batch_norm

        self._modules = (self.model, list(self.model.modules()))
        folded = fold_batch_norm(self.model)
        self._folded = (self._state_key(), folded)
        self.folds += 1
        return folded

    def _state_key(self) -> tuple[int, ...]:
        """What the folded copy depends on: the ids of every submodule, parameter and buffer, and the tensors' versions.

        Read from each module's own dicts (a flat list kept since the last fold), which costs a tenth of walking
        ``model.parameters()`` at every call (mobilenetv2: 0.1 vs 1 ms); a replaced submodule changes its
        parent's entry, so it is noticed as well.
        """
        key: list[int] = []
        for module in self._modules[1]:
            key.extend(map(id, module._modules.values()))
            for tensors in (module._parameters, module._buffers):
                for t in tensors.values():
                    if t is not None:
                        key += (id(t), t._version)
        return tuple(key)


class InferenceModel:
    """A resolved model: backbone, preprocessing, labels, temperature and the runtime of its logits.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps ``(N, C, H, W)`` to ``(N, len(labels))`` logits.
    preprocessor : FacePreprocessor
        How faces become the backbone's input.
    backbone_name : str, default "custom"
        Registry name of the backbone.
    backbone_config : mapping, optional
        Keyword arguments that rebuild the backbone through the registry.
    labels : sequence of str, default EMOTIONS
        Class names, in the backbone's output order.
    temperature : float, default 1.0
        Softmax temperature fitted for calibration.
    device : str or torch.device, optional
        Where the backbone runs (default CPU).
    spec : BackboneSpec, optional
        The backbone's resolved registry spec; ``None`` looks ``backbone_name`` up when needed.
    flip_tta : bool, default False
        Flip test-time augmentation: :meth:`logits` averages each face's logits with its mirror
        image's (twice the classifier's work). A saved model says whether it was calibrated and
        scored that way (``"flip_tta"`` in its ``config.json``).
    heads : mapping, optional
        Extra output heads after the model's own classes (:mod:`emotionkit.heads`): head name to an
        :class:`~emotionkit.heads.OutputHead` or its JSON form. The backbone then has
        ``len(labels) + sum(len(head.labels))`` outputs; :meth:`logits` returns one head's columns.

    Raises
    ------
    IncompatibleComponentsError
        The preprocessor's channels differ from the backbone's ``in_channels``.
    ValueError
        ``temperature`` is not positive.

    Examples
    --------
    >>> from emotionkit.preprocessing import FacePreprocessor
    >>> from emotionkit.pretrained import build_backbone
    >>> core = InferenceModel(build_backbone("cnn"), FacePreprocessor(), backbone_name="cnn")
    >>> core.probabilities(torch.zeros(2, 1, 48, 48)).shape, core.runtime.name
    ((2, 7), 'torch')
    """

    def __init__(
        self,
        backbone: nn.Module,
        preprocessor: FacePreprocessor,
        *,
        backbone_name: str = "custom",
        backbone_config: Mapping[str, Any] | None = None,
        labels: Sequence[str] = EMOTIONS,
        temperature: float = 1.0,
        device: str | torch.device | None = None,
        spec: BackboneSpec | None = None,
        flip_tta: bool = False,
        heads: Mapping[str, Any] | None = None,
    ) -> None:
        self.backbone_config = dict(backbone_config or {})
        in_channels = self.backbone_config.get("in_channels", first_conv_channels(backbone))
        if in_channels is not None and int(in_channels) != preprocessor.channels:
            raise IncompatibleComponentsError(
                f"The preprocessor gives {preprocessor.channels}-channel faces but backbone {backbone_name!r} expects "
                f"in_channels={in_channels}. Use FacePreprocessor(channels={in_channels}, ...) or rebuild the backbone "
                f"with in_channels={preprocessor.channels}."
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.backbone_name = backbone_name
        self.spec = spec
        self.preprocessor = preprocessor
        self.labels: tuple[str, ...] = tuple(labels)
        self.temperature = float(temperature)
        #: Whether :meth:`logits` averages each face with its mirror image (flip test-time augmentation).
        self.flip_tta = bool(flip_tta)
        #: Extra output heads after :attr:`labels`' columns, in column order (:mod:`emotionkit.heads`).
        self.heads: dict[str, OutputHead] = parse_heads(heads)
        self._head: str | None = None
        #: The torch backbone's runtime; explanations and export always use it.
        self.torch_runtime = TorchRuntime(backbone, device)
        #: What :meth:`logits` runs: :attr:`torch_runtime` unless :meth:`use_runtime` installed another.
        self.runtime: LogitsRuntime = self.torch_runtime

    @property
    def model(self) -> nn.Module:
        """The torch backbone (on :attr:`device`, eval mode)."""
        return self.torch_runtime.model

    @property
    def device(self) -> torch.device:
        """Where the torch backbone runs."""
        return self.torch_runtime.device

    @property
    def backbone(self) -> BackboneSpec | str:
        """The backbone's spec when resolved, else its registry name (what explainers are looked up by)."""
        return self.spec if self.spec is not None else self.backbone_name

    def use_runtime(self, runtime: LogitsRuntime | None) -> None:
        """Route :meth:`logits` to ``runtime`` (e.g. an :class:`emotionkit.export.OnnxBackbone`); ``None`` goes back to torch.

        Parameters
        ----------
        runtime : LogitsRuntime or None
            Maps preprocessed faces to logits of this model's weights.
        """
        self.runtime = self.torch_runtime if runtime is None else runtime

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Put preprocessed faces where and how the torch backbone takes them (device, memory layout).

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` faces, as :attr:`preprocessor` makes them.

        Returns
        -------
        torch.Tensor
            The input to call :attr:`model` on (explainers do).
        """
        return self.torch_runtime.prepare(x)

    @property
    def head(self) -> str | None:
        """The output head :meth:`probabilities` answers with: ``None`` (default) for :attr:`labels`, else one of
        :attr:`heads` (e.g. ``"ferplus"``: what the FER+ crowd would say). Setting an unknown head raises
        :class:`~emotionkit.exceptions.InvalidOptionError`."""
        return self._head

    @head.setter
    def head(self, value: str | None) -> None:
        head_columns(self.labels, self.heads, value)  # refuses an unknown head, naming the model's
        self._head = value

    @property
    def active_labels(self) -> tuple[str, ...]:
        """Class names of :attr:`head`, the columns of :meth:`probabilities`."""
        return self.head_spec(self._head).labels

    @property
    def active_columns(self) -> slice:
        """The backbone's output columns of :attr:`head` (what an explainer's target indexes into)."""
        return head_columns(self.labels, self.heads, self._head)

    @property
    def outputs(self) -> int:
        """Columns of the backbone's output: :attr:`labels` and every extra head's."""
        return output_width(self.labels, self.heads)

    def head_spec(self, head: str | None = None) -> OutputHead:
        """Class names and softmax temperature of ``head`` (``None``: the model's own, :attr:`labels` and
        :attr:`temperature`).

        Parameters
        ----------
        head : str, optional
            One of :attr:`heads`.

        Returns
        -------
        OutputHead

        Raises
        ------
        InvalidOptionError
            Not one of the model's heads.
        """
        head_columns(self.labels, self.heads, head)  # refuses an unknown head, naming the model's
        return OutputHead(self.labels, self.temperature) if head is None else self.heads[head]

    def logits(self, x: torch.Tensor, *, flip_tta: bool | None = None, head: str | None = None) -> torch.Tensor:
        """Run the runtime on preprocessed faces ``(N, C, H, W)`` and return raw logits on the CPU.

        Parameters
        ----------
        x : torch.Tensor
            Faces as :attr:`preprocessor` makes them (``preprocessor.faces`` or ``preprocessor.crops``).
        flip_tta : bool, optional
            Average each face's logits with its mirror image's; ``None`` (default) follows :attr:`flip_tta`.
        head : str, optional
            An extra head's columns (one of :attr:`heads`, e.g. ``"ferplus"``); ``None`` (default): the
            model's own classes, :attr:`labels`.

        Returns
        -------
        torch.Tensor
            ``(N, len(head_spec(head).labels))`` float32 logits, before the temperature and the softmax.

        Raises
        ------
        InvalidOptionError
            ``head`` is not one of the model's heads.
        """
        columns = head_columns(self.labels, self.heads, head)
        if x.shape[0] == 0:
            return torch.empty((0, columns.stop - columns.start))
        if not (self.flip_tta if flip_tta is None else flip_tta):
            out = self.runtime(x)
        else:
            both = self.runtime(torch.cat([x, torch.flip(x, dims=[3])]))  # one pass over faces and mirrors
            out = (both[: x.shape[0]] + both[x.shape[0] :]) / 2.0
        if out.shape[1] != self.outputs:
            raise IncompatibleComponentsError(
                f"The {self.runtime.name} runtime gave {out.shape[1]} outputs per face, but this model has "
                f"{self.outputs} ({len(self.labels)} labels"
                + "".join(f" + {len(h.labels)} of head {n!r}" for n, h in self.heads.items())
                + "). The runtime was made from another model: export or attach this model's own."
            )
        return out[:, columns]

    def probabilities(self, x: torch.Tensor) -> np.ndarray:
        """Return ``softmax(logits / temperature)`` of preprocessed faces, from the output :attr:`head`.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` faces, as :attr:`preprocessor` makes them.

        Returns
        -------
        numpy.ndarray
            ``(N, len(active_labels))`` float32; columns follow :attr:`active_labels` (:attr:`labels`
            unless :attr:`head` is set), with that head's temperature.
        """
        head = self._head
        return torch.softmax(self.logits(x, head=head) / self.head_spec(head).temperature, dim=1).numpy()


@runtime_checkable
class HasInference(Protocol):
    """Anything that carries an :class:`InferenceModel` as ``inference`` (an :class:`~emotionkit.EmotionRecognizer`)."""

    inference: InferenceModel


def inference_of(model: InferenceModel | HasInference) -> InferenceModel:
    """Return the inference core of a recognizer, or the core itself.

    Parameters
    ----------
    model : InferenceModel or HasInference
        An :class:`InferenceModel`, or an object with one as ``inference``.

    Returns
    -------
    InferenceModel

    Raises
    ------
    TypeError
        ``model`` is neither.
    """
    if isinstance(model, InferenceModel):
        return model
    core = getattr(model, "inference", None)
    if not isinstance(core, InferenceModel):
        raise TypeError(f"Expected an EmotionRecognizer or an InferenceModel, got {type(model).__name__}.")
    return core


class InferenceAttributes:
    """The inference core's attributes, read through an object that holds an :class:`InferenceModel` as ``inference``.

    :class:`~emotionkit.EmotionRecognizer` is one: ``rec.labels`` is ``rec.inference.labels``, and so on.
    """

    inference: InferenceModel

    @property
    def model(self) -> nn.Module:
        """The torch backbone (on :attr:`device`, eval mode)."""
        return self.inference.model

    @property
    def device(self) -> torch.device:
        """Where the backbone runs."""
        return self.inference.device

    @property
    def preprocessor(self) -> FacePreprocessor:
        """How faces become the backbone's input."""
        return self.inference.preprocessor

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names, in the backbone's output order."""
        return self.inference.labels

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted for calibration."""
        return self.inference.temperature

    @property
    def backbone_name(self) -> str:
        """Registry name of the backbone."""
        return self.inference.backbone_name

    @property
    def backbone_config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild the backbone through the registry."""
        return self.inference.backbone_config

    @property
    def runtime(self) -> str:
        """``"torch"``, or ``"onnx"`` once :func:`emotionkit.export.attach_onnx` routes :meth:`logits` to onnxruntime."""
        return self.inference.runtime.name

    @property
    def flip_tta(self) -> bool:
        """Whether :meth:`logits` averages each face with its mirror image (flip test-time augmentation).

        Set it to change that: ``rec.flip_tta = False`` classifies one crop per face, at half the cost.
        """
        return self.inference.flip_tta

    @flip_tta.setter
    def flip_tta(self, value: bool) -> None:
        self.inference.flip_tta = bool(value)

    @property
    def heads(self) -> dict[str, OutputHead]:
        """Extra output heads (e.g. ``"ferplus"``), in column order; empty for a one-head model."""
        return self.inference.heads

    @property
    def head(self) -> str | None:
        """The output head that predictions answer with: ``None`` for :attr:`labels` (FER-2013's for the bundled
        models), or one of :attr:`heads`: ``rec.head = "ferplus"`` gives what the FER+ crowd would say."""
        return self.inference.head

    @head.setter
    def head(self, value: str | None) -> None:
        self.inference.head = value

    def logits(self, x: torch.Tensor, *, flip_tta: bool | None = None, head: str | None = None) -> torch.Tensor:
        """Run the backbone on preprocessed faces ``(N, C, H, W)`` and return raw logits on the CPU.

        Parameters
        ----------
        x : torch.Tensor
            Faces as :attr:`preprocessor` makes them (``preprocessor.faces`` or ``preprocessor.crops``).
        flip_tta : bool, optional
            Average each face's logits with its mirror image's; ``None`` (default) follows :attr:`flip_tta`.
        head : str, optional
            One of :attr:`heads` (e.g. ``"ferplus"``); ``None`` (default): the model's own classes.

        Returns
        -------
        torch.Tensor
            ``(N, len(labels))`` float32 logits, before the temperature and the softmax.
        """
        return self.inference.logits(x, flip_tta=flip_tta, head=head)
