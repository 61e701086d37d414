"""The YuNet network as an ONNX graph built from its torch module's tensors, run by onnxruntime.

With onnxruntime the whole detector takes about 0.6x the CPU time it takes with torch's eager
kernels on one core (``benchmarks/detection_recall.py --fer 1200 --configs "yunet default" "yunet, torch"``:
1,200 FER faces on 100 photos in 2.8 vs 4.6 s); on a 512x512 photo the network's 0.69 GFLOP then run
at about 95 GFLOP/s on one core, close to what its FP32 vector units can do. The graph is
written node by node from :class:`~emotionkit.detectors._yunet_net.YuNetNet`'s weights (no
exporter, no file, and not even the ``onnx`` package: :mod:`~emotionkit._onnx_proto`
encodes it), so it computes exactly what the torch module does; it also takes the
detector's uint8 batch as it is (the transpose and cast are its first nodes) and returns the
three levels' maps as one flat array, so nothing is converted in Python on either side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _onnx_proto as proto
from ._yunet_net import HEAD_CHANNELS, SeparableUnit, YuNetNet

__all__ = ["build_graph", "OnnxYuNet"]


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.weights: list[bytes] = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value: np.ndarray) -> str:
        name = self._name("w")
        self.weights.append(proto.tensor(name, value))
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self._name(op.lower())
        self.nodes.append(proto.node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, conv: nn.Conv2d) -> str:
        k = conv.kernel_size[0]
        w = self.const(conv.weight.detach().cpu().numpy().astype(np.float32))
        b = self.const(conv.bias.detach().cpu().numpy().astype(np.float32))  # type: ignore[union-attr]
        pad = int(conv.padding[0])  # type: ignore[index]
        return self.node(
            "Conv", [x, w, b], kernel_shape=[k, k], strides=list(conv.stride), pads=[pad] * 4, group=conv.groups
        )

    def unit(self, x: str, unit: nn.Module) -> str:
        if not isinstance(unit, SeparableUnit):  # nn.Identity: a level without a shared unit
            return x
        y = self.conv(self.conv(x, unit.point), unit.depth)
        return self.node("Relu", [y]) if unit.relu else y

    def pool(self, x: str) -> str:
        return self.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])

    def up_add(self, fine: str, coarse: str) -> str:
        scales = self.const(np.array([1.0, 1.0, 2.0, 2.0], np.float32))
        up = self.node(
            "Resize", [coarse, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )  # fmt: skip
        return self.node("Add", [fine, up])


def build_graph(net: YuNetNet) -> bytes:
    """Serialise ``net`` as an ONNX model (opset 17) that takes the detector's uint8 batch and returns flat maps.

    Input ``image``: ``(N, H, W, 3)`` uint8 in the network's channel order (RGB after
    :meth:`YuNetNet.take_rgb`), H and W multiples of 32; the transpose to NCHW and the cast to
    float are the graph's first nodes, so the caller converts nothing. Output ``maps``:
    ``(N, 16, A)`` float32, the three levels' maps (strides 8, 16, 32) flattened row by row and
    concatenated, ``A = sum(H/s * W/s)``.
    """
    g = _Graph()
    # Transpose the uint8 pixels, then cast: a quarter of the bytes moved (onnxruntime's profiler on a 512x512
    # photo: 0.35 ms for the pair against 0.75 ms cast first).
    image = g.node("Cast", [g.node("Transpose", ["image"], perm=[0, 3, 1, 2])], to=proto.FLOAT)
    x = g.unit(g.node("Relu", [g.conv(image, net.stem)]), net.stem_unit)
    x = g.pool(x)
    feats = []
    for i, stage in enumerate(net.stages):
        for unit in stage.children():
            x = g.unit(x, unit)
        if i >= 2:
            feats.append(x)
        if i in (1, 2, 3):
            x = g.pool(x)
    top = g.unit(feats[2], net.lateral[2])
    mid = g.unit(g.up_add(feats[1], top), net.lateral[1])
    low = g.unit(g.up_add(feats[0], mid), net.lateral[0])
    outs = [g.unit(g.unit(f, s), h) for f, s, h in zip((low, mid, top), net.shared, net.heads)]
    flat_shape = g.const(np.array([0, HEAD_CHANNELS, -1], np.int64))
    g.node("Concat", [g.node("Reshape", [o, flat_shape]) for o in outs], "maps", axis=2)
    graph = proto.graph(
        g.nodes,
        "yunet",
        [proto.value_info("image", proto.UINT8, ["N", "H", "W", 3])],
        [proto.value_info("maps", proto.FLOAT, ["N", HEAD_CHANNELS, "A"])],
        g.weights,
    )
    return proto.model(graph, opset=17, ir_version=8, producer="emotionkit")


class OnnxYuNet:
    """The network on onnxruntime: a uint8 ``(N, H, W, 3)`` batch in, flat ``(N, 16, A)`` maps out.

    Parameters
    ----------
    net : YuNetNet
        The torch network whose weights the graph carries (in its channel order).
    threads : int, optional
        onnxruntime's intra-op threads (default: ``torch.get_num_threads()``).

    Raises
    ------
    MissingDependencyError
        onnxruntime is not installed (``pip install "emotionkit[onnx]"``).
    """

    def __init__(self, net: YuNetNet, threads: int | None = None) -> None:
        self._graph = build_graph(net)
        self._threads = int(threads or torch.get_num_threads())
        self.session = self._session()

    def _session(self) -> Any:
        from ..export import cpu_session

        # No spinning: the session shares the cores with the classifier (see emotionkit.export.OnnxBackbone).
        return cpu_session(self._graph, self._threads, purpose='YuNetDetector(runtime="onnx")')

    def __getstate__(self) -> dict[str, Any]:
        # An onnxruntime session cannot be pickled: keep the graph and threads, and rebuild it (copies, processes).
        return {"_graph": self._graph, "_threads": self._threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.session = self._session()

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        """Map a C-contiguous ``(N, H, W, 3)`` uint8 batch (H, W multiples of 32) to ``(N, 16, A)`` maps."""
        return torch.from_numpy(self.session.run(None, {"image": batch})[0])
