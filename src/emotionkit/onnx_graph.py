"""The folded torch classifier as an ONNX graph, run by onnxruntime: the fast CPU runtime for few faces at a time.

Photo to emotions classifies a handful of faces per photo, where torch's eager kernels spend most
of their time between operators: one 96 px face through the bundled ``mobilenetv2`` takes about
6 ms with torch and 1.3-1.9 ms with onnxruntime on these two cores, and the ``cnn`` 0.8 vs 0.4 ms
(timed in loops of 200 calls; ``python benchmarks/speed.py --runtimes auto torch`` measures the same
as batch-1 faces/s). :class:`OnnxGraphRuntime` writes the graph node by node from the
BatchNorm-folded module's own tensors (``torch.fx`` lists its operations;
:mod:`~emotionkit._onnx_proto` encodes them), so it needs neither an exporter nor the ``onnx``
package, and builds in about 0.2 s (the first one in a process also pays for importing
``torch.fx``). It follows the torch model: when a weight changes, the torch runtime refolds and
the graph is rebuilt before the next call.

Only the operations of convolutional classifiers are written (convolutions, linear layers, ReLU,
ReLU6, pooling, residual sums, flattening); a model with anything else (the ``vit``'s attention, a
third-party layer) raises :class:`UnsupportedGraphError`, and ``runtime="auto"`` keeps torch for it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from . import _onnx_proto as proto
from .exceptions import MissingDependencyError
from .inference import InferenceModel, TorchRuntime

__all__ = ["UnsupportedGraphError", "build_graph", "OnnxGraphRuntime", "use_onnx_graph"]

#: Opset of the written graphs (``ReduceMean`` still takes ``axes`` as an attribute).
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "faces", "logits"


class UnsupportedGraphError(ValueError):
    """The model holds an operation :func:`build_graph` does not write (the message names it)."""


class _Writer:
    """Accumulates nodes and weights; names every value after the fx node that makes it."""

    def __init__(self, root: fx.GraphModule) -> None:
        self.modules = dict(root.named_modules())
        self.nodes: list[bytes] = []
        self.weights: list[bytes] = []
        self.names: dict[fx.Node, str] = {}
        self.count = 0

    def const(self, value: np.ndarray | torch.Tensor) -> str:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().float().contiguous().numpy()
        self.count += 1
        name = f"w{self.count}"
        self.weights.append(proto.tensor(name, np.asarray(value)))
        return name

    def emit(self, op: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"{op.lower()}{self.count}"
        self.nodes.append(proto.node(op, inputs, [out], **attrs))
        return out

    def value(self, arg: Any) -> str:
        if isinstance(arg, fx.Node):
            return self.names[arg]
        if isinstance(arg, (int, float)):
            return self.const(np.array(arg, np.float32))
        raise UnsupportedGraphError(f"an operand of type {type(arg).__name__} ({arg!r})")


def _pair(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else [int(value)] * 2


def _conv(w: _Writer, x: str, conv: nn.Conv2d) -> str:
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) and conv.padding != "valid":
        raise UnsupportedGraphError(f"Conv2d with padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
    pad = [0, 0] if isinstance(conv.padding, str) else _pair(conv.padding)
    inputs = [x, w.const(conv.weight)] + ([] if conv.bias is None else [w.const(conv.bias)])
    return w.emit(
        "Conv", inputs, kernel_shape=_pair(conv.kernel_size), strides=_pair(conv.stride), pads=pad + pad,
        dilations=_pair(conv.dilation), group=int(conv.groups),
    )  # fmt: skip


def _clip(w: _Writer, x: str, low: float, high: float) -> str:
    return w.emit("Clip", [x, w.const(np.array(low, np.float32)), w.const(np.array(high, np.float32))])


def _global_pool(w: _Writer, x: str, output_size: Any) -> str:
    if _pair(output_size) != [1, 1]:
        raise UnsupportedGraphError(f"adaptive average pooling to {output_size!r} (only to 1x1)")
    return w.emit("GlobalAveragePool", [x])


def _flatten(w: _Writer, x: str, start_dim: int = 1, end_dim: int = -1) -> str:
    if (start_dim, end_dim) != (1, -1):
        raise UnsupportedGraphError(f"flatten({start_dim}, {end_dim}) (only from dimension 1 to the end)")
    return w.emit("Flatten", [x], axis=1)


def _max_pool(w: _Writer, x: str, pool: nn.MaxPool2d) -> str:
    if _pair(pool.dilation) != [1, 1] or pool.return_indices:
        raise UnsupportedGraphError("MaxPool2d with dilation or indices")
    pad = _pair(pool.padding)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return w.emit(
        "MaxPool", [x], kernel_shape=_pair(pool.kernel_size), strides=stride, pads=pad + pad,
        ceil_mode=int(pool.ceil_mode),
    )  # fmt: skip


def _avg_pool(w: _Writer, x: str, pool: nn.AvgPool2d) -> str:
    if pool.divisor_override is not None:
        raise UnsupportedGraphError("AvgPool2d with divisor_override")
    pad = _pair(pool.padding)
    return w.emit(
        "AveragePool", [x], kernel_shape=_pair(pool.kernel_size), strides=_pair(pool.stride or pool.kernel_size),
        pads=pad + pad, ceil_mode=int(pool.ceil_mode), count_include_pad=int(pool.count_include_pad),
    )  # fmt: skip


def _linear(w: _Writer, x: str, linear: nn.Linear, rank: int | None) -> str:
    if rank != 2:
        raise UnsupportedGraphError(f"Linear on a {rank}-D input (only on (N, features))")
    inputs = [x, w.const(linear.weight)] + ([] if linear.bias is None else [w.const(linear.bias)])
    return w.emit("Gemm", inputs, transB=1)


_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout)


def _module(w: _Writer, node: fx.Node, x: str) -> str:
    m = w.modules[str(node.target)]
    if isinstance(m, _PASS_THROUGH):
        return x
    if isinstance(m, nn.Sequential) and len(m) == 0:
        return x
    if type(m) is nn.Conv2d:
        return _conv(w, x, m)
    if type(m) is nn.Linear:
        meta = node.args[0].meta.get("tensor_meta") if isinstance(node.args[0], fx.Node) else None
        return _linear(w, x, m, len(meta.shape) if meta is not None else None)
    if type(m) is nn.ReLU:
        return w.emit("Relu", [x])
    if type(m) in (nn.ReLU6, nn.Hardtanh):
        return _clip(w, x, float(m.min_val), float(m.max_val))  # type: ignore[union-attr]
    if type(m) in (nn.Sigmoid, nn.Tanh):
        return w.emit(type(m).__name__, [x])
    if type(m) is nn.SiLU:
        return w.emit("Mul", [x, w.emit("Sigmoid", [x])])
    if type(m) is nn.Hardswish:
        return w.emit("HardSwish", [x])
    if type(m) is nn.LeakyReLU:
        return w.emit("LeakyRelu", [x], alpha=float(m.negative_slope))
    if type(m) is nn.MaxPool2d:
        return _max_pool(w, x, m)
    if type(m) is nn.AvgPool2d:
        return _avg_pool(w, x, m)
    if type(m) is nn.AdaptiveAvgPool2d:
        return _global_pool(w, x, m.output_size)
    if type(m) is nn.Flatten:
        return _flatten(w, x, m.start_dim, m.end_dim)
    raise UnsupportedGraphError(f"module {node.target!r} of type {type(m).__name__}")


def _binary(op: str) -> Callable[[_Writer, fx.Node], str]:
    def emit(w: _Writer, node: fx.Node) -> str:
        if node.kwargs or len(node.args) != 2:
            raise UnsupportedGraphError(f"{node.target} with {node.args!r} {node.kwargs!r}")
        return w.emit(op, [w.value(a) for a in node.args])

    return emit


def _function(w: _Writer, node: fx.Node) -> str:
    target, args, kwargs = node.target, node.args, dict(node.kwargs)
    binary = {operator.add: "Add", torch.add: "Add", operator.mul: "Mul", torch.mul: "Mul"}
    if target in binary:
        return _binary(binary[target])(w, node)  # type: ignore[index]
    x = w.value(args[0])
    if target in (F.relu, torch.relu):
        return w.emit("Relu", [x])
    if target is F.relu6:
        return _clip(w, x, 0.0, 6.0)
    if target is F.dropout and not kwargs.get("training", args[2] if len(args) > 2 else False):
        return x
    if target is torch.flatten:
        return _flatten(w, x, *args[1:], **kwargs)  # type: ignore[arg-type]
    if target is F.adaptive_avg_pool2d:
        return _global_pool(w, x, args[1] if len(args) > 1 else kwargs["output_size"])
    raise UnsupportedGraphError(f"function {getattr(target, '__name__', target)!r}")


def _method(w: _Writer, node: fx.Node) -> str:
    x = w.value(node.args[0])
    if node.target == "flatten":
        return _flatten(w, x, *node.args[1:], **node.kwargs)  # type: ignore[arg-type]
    if node.target == "mean":
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        if sorted(int(d) % 4 for d in dims) != [2, 3]:  # type: ignore[union-attr, arg-type]
            raise UnsupportedGraphError(f"mean over {dims!r} (only the spatial dimensions)")
        return w.emit("ReduceMean", [x], axes=[2, 3], keepdims=int(bool(keep)))
    raise UnsupportedGraphError(f"method {node.target!r}")


def build_graph(model: nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    """Serialise an eval-mode, BatchNorm-folded classifier as an ONNX model with a dynamic batch axis.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, C, H, W)`` float32 faces to ``(N, classes)`` logits, e.g.
        :meth:`TorchRuntime.inference_model() <emotionkit.inference.TorchRuntime.inference_model>`.
    input_shape : tuple of int
        ``(C, H, W)`` of one face (the shapes of the layers are checked on it).

    Returns
    -------
    bytes
        The serialised ``ModelProto`` (input ``faces``, output ``logits``).

    Raises
    ------
    UnsupportedGraphError
        ``torch.fx`` cannot trace the model, or it holds an operation this writer does not know.
    """
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # data-dependent control flow and the like
        raise UnsupportedGraphError(f"torch.fx cannot trace the model ({type(error).__name__}: {error})") from error
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    with torch.no_grad():
        ShapeProp(traced).propagate(example)
    w = _Writer(traced)
    outputs: list[str] = []
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            w.names[node] = INPUT_NAME
        elif node.op == "call_module":
            w.names[node] = _module(w, node, w.value(node.args[0]))
        elif node.op == "call_function":
            w.names[node] = _function(w, node)
        elif node.op == "call_method":
            w.names[node] = _method(w, node)
        elif node.op == "output":
            outputs.append(w.value(node.args[0]))
        else:
            raise UnsupportedGraphError(f"a {node.op} node ({node.target})")
    w.nodes.append(proto.node("Identity", outputs, [OUTPUT_NAME]))
    graph = proto.graph(
        w.nodes,
        "emotionkit-classifier",
        [proto.value_info(INPUT_NAME, proto.FLOAT, ["N", *input_shape])],
        [proto.value_info(OUTPUT_NAME, proto.FLOAT, ["N", -1])],
        w.weights,
    )
    return proto.model(graph, opset=OPSET, ir_version=8, producer="emotionkit")


class OnnxGraphRuntime:
    """The torch runtime's folded model as an onnxruntime session, rebuilt whenever the model changes.

    A logits runtime (:class:`~emotionkit.inference.LogitsRuntime`). The torch model stays the
    source of truth: a changed weight or module makes :class:`~emotionkit.inference.TorchRuntime`
    refold, and the graph follows before the next call. In training mode, for an empty batch, and
    while a changed model holds something :func:`build_graph` cannot write, it runs torch, and
    :attr:`name` says ``"torch"``. The session's threads follow ``torch.get_num_threads()`` unless
    ``threads`` is given.

    Parameters
    ----------
    torch_runtime : TorchRuntime
        The model on the CPU.
    input_shape : tuple of int
        ``(C, H, W)`` of one preprocessed face.
    threads : int, optional
        onnxruntime's intra-op threads.

    Raises
    ------
    UnsupportedGraphError
        The model cannot be written as a graph (see :func:`build_graph`).
    MissingDependencyError
        onnxruntime is not installed.
    """

    def __init__(
        self, torch_runtime: TorchRuntime, input_shape: tuple[int, int, int], *, threads: int | None = None
    ) -> None:
        if torch_runtime.device.type != "cpu":
            raise UnsupportedGraphError(f"the model is on {torch_runtime.device}; this runtime runs on the CPU")
        self.torch_runtime, self.input_shape, self.threads = torch_runtime, tuple(input_shape), threads
        self._built: tuple[int, int, Any] | None = None
        self._build()  # fail now, not at the first photo

    @property
    def name(self) -> str:
        """``"onnx"``, or ``"torch"`` while the model runs on torch (training mode, or a model the graph cannot hold)."""
        return "torch" if self.torch_runtime.model.training or self.session() is None else "onnx"

    def session(self) -> Any:
        """The onnxruntime session of the current weights, built or rebuilt when needed.

        Returns
        -------
        onnxruntime.InferenceSession or None
            ``None`` while the model holds an operation the graph cannot (it then runs on torch).
        """
        try:
            return self._build()
        except UnsupportedGraphError:
            return None

    def _build(self) -> Any:
        folded = self.torch_runtime.inference_model()
        threads = int(self.threads or torch.get_num_threads())
        key = (self.torch_runtime.folds, threads)
        if self._built is not None and self._built[:2] == key:
            if self._built[2] is None:
                raise UnsupportedGraphError("the model changed into one the graph cannot hold")
            return self._built[2]
        self._built = (*key, None)
        from .export import cpu_session

        graph = build_graph(folded, self.input_shape)  # type: ignore[arg-type]
        try:
            session = cpu_session(graph, threads)  # no spinning: the detector shares the cores
        except MissingDependencyError:
            raise
        except Exception as error:  # an attribute combination onnxruntime has no kernel for
            raise UnsupportedGraphError(f"onnxruntime refused the graph ({error})") from error
        self._built = (*key, session)
        return session

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits with onnxruntime (or torch, see the class).

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, H, W)`` preprocessed faces.

        Returns
        -------
        torch.Tensor
            ``(N, classes)`` float32 logits on the CPU.
        """
        session = None if self.torch_runtime.model.training or not len(x) else self.session()
        if session is None:  # no faces: torch gives the (0, classes) shape
            return self.torch_runtime(x)
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {INPUT_NAME: array})[0])

    def __getstate__(self) -> dict[str, Any]:
        # An onnxruntime session cannot be pickled: it is rebuilt at the first call after unpickling.
        return {**self.__dict__, "_built": None}


def use_onnx_graph(core: InferenceModel) -> bool:
    """Route ``core``'s logits to an :class:`OnnxGraphRuntime` where one can run it (``runtime="auto"``).

    Parameters
    ----------
    core : InferenceModel
        Left on torch when it is not on the CPU, onnxruntime does not import, or the model cannot be
        written as a graph.

    Returns
    -------
    bool
        Whether the runtime was installed.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    height, width = core.preprocessor.size  # type: ignore[misc]
    try:
        runtime = OnnxGraphRuntime(core.torch_runtime, (core.preprocessor.channels, height, width))
    except UnsupportedGraphError:
        return False
    core.use_runtime(runtime)
    return True
