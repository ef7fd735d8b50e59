"""The declared inputs and outputs of an ONNX file, read without loading it.

An ONNX file is a protobuf ModelProto; its graph's inputs and outputs are a few small
ValueInfoProto messages beside the (large) weights. This reader walks the protobuf wire format
and seeks over everything else, so checking a 500 MB encoder against meta.json costs
milliseconds and needs neither the `onnx` package nor an inference session.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

# TensorProto.DataType numbers -> numpy dtype names (the ones model packages use, and more).
ELEM_TYPES: dict[int, str] = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32",
                              7: "int64", 9: "bool", 10: "float16", 11: "float64", 16: "bfloat16"}

# Field numbers (onnx.proto3).
_MODEL_GRAPH = 7
_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_INITIALIZER = 11, 12, 5
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_ELEM, _TENSOR_SHAPE = 1, 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2


class OnnxHeaderError(ValueError):
    """The file is not a readable ONNX model."""


@dataclass(frozen=True)
class TensorDecl:
    name: str  # graph input/output name
    dtype: str  # numpy dtype name, or "type N" for one this table does not know
    shape: tuple  # int for a fixed dim, str for a named (dynamic) one, None when unnamed


@dataclass(frozen=True)
class GraphHeader:
    inputs: tuple[TensorDecl, ...]  # graph inputs that are not initializers
    outputs: tuple[TensorDecl, ...]  # graph outputs


def read_header(path: Path | str) -> GraphHeader:
    """The graph's declared inputs and outputs; OnnxHeaderError when the file is not ONNX."""
    path = Path(path)
    with open(path, "rb") as f:
        size = path.stat().st_size
        graph = None
        for field, wire, start, length in _fields(f, 0, size):
            if field == _MODEL_GRAPH and wire == 2:
                graph = (start, length)
        if graph is None:
            raise OnnxHeaderError(f"{path.name}: no graph in the file")
        inputs, outputs, initializers = [], [], set()
        for field, wire, start, length in _fields(f, graph[0], graph[0] + graph[1]):
            if wire != 2 or field not in (_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_INITIALIZER):
                continue
            if field == _GRAPH_INITIALIZER:
                initializers.add(_initializer_name(f, start, length))
                continue
            f.seek(start)
            decl = _value_info(f.read(length))
            (inputs if field == _GRAPH_INPUT else outputs).append(decl)
    return GraphHeader(tuple(d for d in inputs if d.name not in initializers), tuple(outputs))


def _fields(f: BinaryIO, begin: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value length) of each field in [begin, end),
    seeking over values instead of reading them."""
    position = begin
    while position < end:
        f.seek(position)
        key, position = _varint_from(f, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, after = _varint_from(f, position)
            yield field, wire, position, after - position
            position = after
        elif wire == 1:
            yield field, wire, position, 8
            position += 8
        elif wire == 2:
            length, start = _varint_from(f, position)
            yield field, wire, start, length
            position = start + length
        elif wire == 5:
            yield field, wire, position, 4
            position += 4
        else:
            raise OnnxHeaderError(f"unsupported protobuf wire type {wire}")
    if position != end:
        raise OnnxHeaderError("a message runs past its end (file cut off?)")


def _varint_from(f: BinaryIO, position: int) -> tuple[int, int]:
    f.seek(position)
    value = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise OnnxHeaderError("the file ends inside a field (cut off?)")
        value |= (byte[0] & 0x7F) << shift
        position += 1
        if not byte[0] & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise OnnxHeaderError("a malformed number")


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field, wire type, bytes or integer) of each field of a small message in memory."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield field, wire, value
        elif wire == 2:
            length, position = _varint(data, position)
            yield field, wire, data[position:position + length]
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise OnnxHeaderError(f"unsupported protobuf wire type {wire}")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise OnnxHeaderError("a message ends inside a number")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


def _value_info(data: bytes) -> TensorDecl:
    name, dtype, shape = "", "unknown", ()
    for field, wire, value in _messages(data):
        if field == _VALUE_NAME and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif field == _VALUE_TYPE and wire == 2:
            for t_field, t_wire, tensor in _messages(bytes(value)):
                if t_field == _TYPE_TENSOR and t_wire == 2:
                    dtype, shape = _tensor_type(bytes(tensor))
    return TensorDecl(name, dtype, shape)


def _tensor_type(data: bytes) -> tuple[str, tuple]:
    dtype, dims = "unknown", []
    for field, wire, value in _messages(data):
        if field == _TENSOR_ELEM and wire == 0:
            dtype = ELEM_TYPES.get(int(value), f"type {value}")
        elif field == _TENSOR_SHAPE and wire == 2:
            for s_field, s_wire, dim in _messages(bytes(value)):
                if s_field == _SHAPE_DIM and s_wire == 2:
                    dims.append(_dim(bytes(dim)))
    return dtype, tuple(dims)


def _dim(data: bytes) -> int | str | None:
    for field, wire, value in _messages(data):
        if field == _DIM_VALUE and wire == 0:
            return int(value)
        if field == _DIM_PARAM and wire == 2:
            return bytes(value).decode("utf-8", "replace")
    return None


def _initializer_name(f: BinaryIO, start: int, length: int) -> str:
    """A TensorProto's name (field 8), found without reading its data."""
    for field, wire, value_start, value_length in _fields(f, start, start + length):
        if field == 8 and wire == 2:
            f.seek(value_start)
            return f.read(value_length).decode("utf-8", "replace")
    return ""


# Field numbers for external data (onnx.proto3): where a tensor's bytes live when not inline.
_GRAPH_NODE, _NODE_ATTRIBUTE = 1, 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 11, 12
_TENSOR_EXTERNAL_DATA, _ENTRY_KEY, _ENTRY_VALUE = 13, 1, 2


def external_data_locations(path: Path | str) -> list[str]:
    """The `location` of every tensor whose bytes live in another file (initializers and
    tensors in node attributes, subgraphs included), each once, in order of appearance; read
    without loading the weights. OnnxHeaderError when the file is not ONNX."""
    path = Path(path)
    found: dict[str, None] = {}
    with open(path, "rb") as f:
        size = path.stat().st_size
        for field, wire, start, length in _fields(f, 0, size):
            if field == _MODEL_GRAPH and wire == 2:
                _graph_locations(f, start, length, found)
    return list(found)


def _graph_locations(f: BinaryIO, start: int, length: int, found: dict[str, None]) -> None:
    for field, wire, value_start, value_length in _fields(f, start, start + length):
        if wire != 2:
            continue
        if field == _GRAPH_INITIALIZER:
            _tensor_location(f, value_start, value_length, found)
        elif field == _GRAPH_NODE:
            for n_field, n_wire, a_start, a_length in _fields(f, value_start,
                                                               value_start + value_length):
                if n_field == _NODE_ATTRIBUTE and n_wire == 2:
                    _attribute_locations(f, a_start, a_length, found)


def _attribute_locations(f: BinaryIO, start: int, length: int, found: dict[str, None]) -> None:
    for field, wire, value_start, value_length in _fields(f, start, start + length):
        if wire != 2:
            continue
        if field in (_ATTR_T, _ATTR_TENSORS):
            _tensor_location(f, value_start, value_length, found)
        elif field in (_ATTR_G, _ATTR_GRAPHS):
            _graph_locations(f, value_start, value_length, found)


def _tensor_location(f: BinaryIO, start: int, length: int, found: dict[str, None]) -> None:
    for field, wire, value_start, value_length in _fields(f, start, start + length):
        if field == _TENSOR_EXTERNAL_DATA and wire == 2:
            f.seek(value_start)
            entry = dict(_entry(f.read(value_length)))
            if entry.get("location"):
                found.setdefault(entry["location"], None)


def _entry(data: bytes) -> Iterator[tuple[str, str]]:
    key = value = ""
    for field, wire, raw in _messages(data):
        if wire == 2 and field == _ENTRY_KEY:
            key = bytes(raw).decode("utf-8", "replace")
        elif wire == 2 and field == _ENTRY_VALUE:
            value = bytes(raw).decode("utf-8", "replace")
    yield key, value
