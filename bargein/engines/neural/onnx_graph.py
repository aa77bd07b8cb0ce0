"""Expose an intermediate tensor of an ONNX model as an extra graph output, without the `onnx`
package: a few lines of protobuf wire format (ModelProto.graph = field 7, GraphProto.output =
field 12, ValueInfoProto{name = 1, type = 2}, TypeProto.tensor_type = 1, elem_type = 1).

Used for the Piper voice: its VITS graph computes each phoneme's duration in frames
(`/Ceil_output_0`, the ceil of the duration predictor) but only outputs the audio. With the
durations, word marks are exact instead of estimated.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["node_outputs", "with_output"]

_FLOAT = 1
_GRAPH, _NODE, _NODE_OUTPUT, _GRAPH_OUTPUT = 7, 1, 2, 12


def _varint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _fields(data: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field in data[start:end]; for varints
    start..end spans the value's bytes."""
    i = start
    while i < end:
        first = i
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(data, i)
            yield number, wire, first, i
        elif wire == 2:
            n, i = _varint(data, i)
            yield number, wire, i, i + n
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _graph_span(view: memoryview) -> tuple[int, int]:
    for number, wire, start, end in _fields(view, 0, len(view)):
        if number == _GRAPH and wire == 2:
            return start, end
    raise ValueError("not an ONNX model: no graph")


def node_outputs(model: bytes) -> set[str]:
    """Names of every node output of the model's main graph."""
    view = memoryview(model)
    g0, g1 = _graph_span(view)
    names: set[str] = set()
    for number, wire, start, end in _fields(view, g0, g1):
        if number == _NODE and wire == 2:
            for n2, w2, s2, e2 in _fields(view, start, end):
                if n2 == _NODE_OUTPUT and w2 == 2:
                    names.add(bytes(view[s2:e2]).decode())
    return names


def with_output(model: bytes, tensor: str) -> bytes:
    """The model with `tensor` (a float node output) added as a graph output."""
    if tensor not in node_outputs(model):
        raise ValueError(f"the model has no tensor {tensor!r}")
    view = memoryview(model)
    g0, g1 = _graph_span(view)
    value_info = _field(1, tensor.encode()) + _field(2, _field(1, b"\x08" + bytes([_FLOAT])))
    graph = bytes(view[g0:g1]) + _field(_GRAPH_OUTPUT, value_info)
    out = bytearray()
    i = 0
    while i < len(model):
        first = i
        key, i = _varint(model, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(model, i)
            out += model[first:i]
        elif wire == 2:
            n, j = _varint(model, i)
            i = j + n
            out += _field(_GRAPH, graph) if number == _GRAPH else model[first:i]
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            out += model[first:i]
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return bytes(out)
