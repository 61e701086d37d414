"""Just enough of the ONNX protobuf format to write a model: nodes, attributes, tensors, inputs and outputs.

Building a graph (YuNet's, or a classifier's in :mod:`emotionkit.onnx_graph`) with the ``onnx`` package means
importing it, which takes 0.6 s beside torch (most of it in ``ml_dtypes``), every time a model is made: more than
detecting faces in a dozen photos.
onnxruntime only needs the serialised ``ModelProto``, so this module writes it directly, with the field
numbers of ``onnx/onnx.proto`` (proto2; repeated scalars unpacked, which every parser reads).

Each function returns the encoded message as bytes; messages nest as length-delimited fields.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["model", "graph", "node", "tensor", "value_info", "FLOAT", "UINT8", "INT64"]

#: TensorProto.DataType values.
FLOAT, UINT8, INT64 = 1, 2, 7
_DTYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int64): INT64}
# AttributeProto.AttributeType values.
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s as two's complement, ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def _attribute(name: str, value: int | float | str | Sequence[int]) -> bytes:
    if isinstance(value, bool) or isinstance(value, int):
        body = _int(3, int(value)) + _int(20, _ATTR_INT)
    elif isinstance(value, float):
        body = _float(2, value) + _int(20, _ATTR_FLOAT)
    elif isinstance(value, str):
        body = _bytes(4, value) + _int(20, _ATTR_STRING)
    else:
        body = b"".join(_int(8, int(v)) for v in value) + _int(20, _ATTR_INTS)
    return _bytes(1, name) + body


def node(op_type: str, inputs: Iterable[str], outputs: Iterable[str], **attributes: object) -> bytes:
    """A ``NodeProto``: operator ``op_type`` of the default domain, its input and output names and attributes."""
    body = b"".join(_bytes(1, name) for name in inputs) + b"".join(_bytes(2, name) for name in outputs)
    body += _bytes(4, op_type)
    body += b"".join(_bytes(5, _attribute(k, v)) for k, v in attributes.items())  # type: ignore[arg-type]
    return body


def tensor(name: str, array: np.ndarray) -> bytes:
    """A ``TensorProto`` holding ``array`` (float32, uint8 or int64) as little-endian raw data."""
    array = np.ascontiguousarray(array)
    data_type = _DTYPES[array.dtype]
    body = b"".join(_int(1, d) for d in array.shape) + _int(2, data_type) + _bytes(8, name)
    return body + _bytes(9, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    """A ``ValueInfoProto``: a graph input or output of ``elem_type`` whose dims are sizes or symbolic names."""
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def graph(
    nodes: Iterable[bytes], name: str, inputs: Iterable[bytes], outputs: Iterable[bytes], initializers: Iterable[bytes]
) -> bytes:
    """A ``GraphProto`` from encoded nodes, inputs, outputs (``value_info``) and initializers (``tensor``)."""
    body = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name)
    body += b"".join(_bytes(5, t) for t in initializers)
    body += b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)
    return body


def model(graph_proto: bytes, *, opset: int, ir_version: int, producer: str) -> bytes:
    """A serialised ``ModelProto`` of one graph using the default operator set at version ``opset``."""
    return (
        _int(1, ir_version) + _bytes(2, producer) + _bytes(7, graph_proto) + _bytes(8, _bytes(1, "") + _int(2, opset))
    )
