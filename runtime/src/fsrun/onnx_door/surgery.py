"""Graph surgery on a seed-contract ONNX model with onnx alone.

The seed contract: float32 frames [B, T, S, S, 3] in 0..255 -> positions [B, T]. The per-frame
part ends at the embedding tensor: one row per frame ([B*T, D]) through which everything the
output needs from the frames passes (a cut of the graph). Graphs as tf2onnx writes them from
Keras (NHWC, Transposes, Reshape to B*T frames, LSTM ops or Loops with outer-scope inputs) and
graphs exported from PyTorch both have one.

- encoder.onnx: uint8 [N, H, W, 3] -> Cast -> Resize to S x S -> [1, N, S, S, 3] into the
  original input -> ... -> the embedding tensor [N, D];
- head.onnx: embeddings [B, T, D] -> [B*T, D] as the embedding tensor -> ... -> positions;
- model.onnx: the original whole, with uint8 [B, T, H, W, 3] -> Cast -> Resize in front.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from fsrun.errors import Interrupted, ModelError

FRONT = "fsimport_"  # prefix of every tensor and node the surgery adds
PACKAGE_NAMES = ("frames", "embeddings", "positions")  # graph IO names of the package contract


@dataclass
class Contract:
    input_name: str  # the original graph input
    output_name: str  # the original graph output
    window: int  # T
    size: int  # S


def load(path: Path) -> onnx.ModelProto:
    """The model, checked. The checker reads the file itself: handed the loaded model it would
    serialize a copy of every weight first."""
    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path))
    except Interrupted:
        raise
    except Exception as exc:  # DecodeError, ValidationError, OSError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a valid ONNX model ({first})") from None
    return model


def contract(model: onnx.ModelProto, path: Path) -> Contract:
    """Check the seed contract: one float input [B, T, S, S, 3], one output."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(f"{path}: expected one input and one output, found {len(inputs)} and "
                         f"{len(graph.output)}")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if tensor.elem_type != TensorProto.FLOAT or len(dims) != 5 or dims[4] != 3:
        raise ModelError(f"{path}: input '{inputs[0].name}' is not float32 [B, T, S, S, 3] "
                         f"(seed contract); found {TensorProto.DataType.Name(tensor.elem_type)} {dims}")
    _, window, h, w, _ = dims
    if window is None or h is None or h != w:
        raise ModelError(f"{path}: input '{inputs[0].name}' needs a fixed T and square frames; "
                         f"found {dims}")
    output = graph.output[0].type.tensor_type
    if output.HasField("shape"):
        out_dims = [d.dim_value if d.HasField("dim_value") else None for d in output.shape.dim]
        if len(out_dims) != 2 or out_dims[1] not in (None, window):
            name = graph.output[0].name.removeprefix(FRONT + "orig_")
            raise ModelError(f"{path}: output '{name}' has shape {_shape_text(out_dims)}; a "
                             f"model must give [B, {window}] positions (one per input frame)")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        raise ModelError(f"{path}: opset {opset} is older than 11 (Resize); re-export it")
    return Contract(inputs[0].name, graph.output[0].name, int(window), int(h))


def _shape_text(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Outer-scope tensors a Loop/Scan/If body uses (implicit inputs of the node)."""
    used: set[str] = set()
    for attribute in node.attribute:
        bodies = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for body in bodies:
            defined = {i.name for i in body.input} | {i.name for i in body.initializer}
            for inner in body.node:
                defined |= set(inner.output)
            for inner in body.node:
                used |= {n for n in inner.input if n and n not in defined}
                used |= {n for n in _subgraph_inputs(inner) if n not in defined}
    return used


def node_inputs(node: onnx.NodeProto) -> list[str]:
    return [n for n in node.input if n] + sorted(_subgraph_inputs(node))


def needed_nodes(graph: onnx.GraphProto, outputs: list[str], stops: set[str]) -> list[onnx.NodeProto]:
    """Nodes computing `outputs`, not looking past `stops`; in graph order."""
    producer = {o: i for i, node in enumerate(graph.node) for o in node.output}
    wanted, keep = list(outputs), set()
    while wanted:
        name = wanted.pop()
        if name in stops or name not in producer or producer[name] in keep:
            continue
        keep.add(producer[name])
        wanted.extend(node_inputs(graph.node[producer[name]]))
    return [node for i, node in enumerate(graph.node) if i in keep]


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node_inputs(node):
            consumers.setdefault(name, []).append(node)
    return consumers


def reaches(consumers: dict, source: str, target: str, blocked: str | None = None) -> bool:
    """Whether values flow from source to target; a Shape node passes no values on."""
    seen, todo = {source}, [source]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        for node in consumers.get(name, []):
            if node.op_type == "Shape":
                continue
            for out in node.output:
                if out and out not in seen and out != blocked:
                    seen.add(out)
                    todo.append(out)
    return False


def cut_candidates(model: onnx.ModelProto, c: Contract) -> list[str]:
    """Tensors the output depends on the input only through, rank 2 or of unknown rank."""
    graph = model.graph
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton(model)).graph
        ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in inferred.value_info
                 if v.type.tensor_type.HasField("shape")}
    except Exception:  # inference is only a filter; without it every tensor is a candidate
        ranks = {}
    consumers = _consumers(graph)
    from_input: set[str] = set()
    todo = [c.input_name]
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.op_type == "Shape":
                continue
            for out in node.output:
                if out and out not in from_input:
                    from_input.add(out)
                    todo.append(out)
    order = [o for node in graph.node for o in node.output if o in from_input]
    return [name for name in order
            if ranks.get(name, 2) == 2 and name != c.output_name
            and not reaches(consumers, c.input_name, c.output_name, blocked=name)]


def rename_reserved(model: onnx.ModelProto) -> None:
    """Give original tensors named like the package's IO names another name, in place."""
    names = {o for node in model.graph.node for o in node.output}
    names |= {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    mapping = {n: FRONT + "orig_" + n for n in PACKAGE_NAMES if n in names}
    if mapping:
        _rename(model.graph, mapping)


def _rename(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
    for tensor in graph.initializer:
        tensor.name = mapping.get(tensor.name, tensor.name)
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attribute in node.attribute:
            for body in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH
                         else list(attribute.graphs)):
                _rename(body, mapping)


# Initializers up to this many bytes keep their values in a skeleton (shape constants of
# Reshape and friends, which shape inference reads); larger ones keep only their shape.
SKELETON_BYTES = 4096


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the values of its large initializers left out (their names, types and
    shapes kept): what shape inference needs, without a copy of every weight."""
    out = onnx.ModelProto(ir_version=model.ir_version)
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    graph, copy = model.graph, out.graph
    copy.name = graph.name
    for field in ("node", "input", "output", "value_info"):
        getattr(copy, field).extend(getattr(graph, field))
    for tensor in graph.initializer:
        if tensor.ByteSize() <= SKELETON_BYTES:
            copy.initializer.append(tensor)
        else:
            copy.initializer.add(name=tensor.name, data_type=tensor.data_type,
                                 dims=tensor.dims)
    return out


def split_candidates(model: onnx.ModelProto, c: Contract, split_at: str | None,
                     path: Path) -> list[str]:
    """The tensors the split may be at: every cut tensor, or --split-at alone (checked)."""
    candidates = cut_candidates(model, c)
    if split_at is not None:
        if split_at not in candidates:
            known = {o for node in model.graph.node for o in node.output}
            why = "no such tensor" if split_at not in known else \
                "the output also depends on the frames by another path, or it is not 2-D"
            raise ModelError(f"{path}: --split-at {split_at!r}: {why}")
        candidates = [split_at]
    if not candidates:
        raise ModelError(f"{path}: no tensor carries everything from the frames to the output; "
                         "cannot split into encoder and head")
    return candidates


def save_probe(model: onnx.ModelProto, names: list[str], path: Path) -> None:
    """Write the model with `names` as extra outputs (for ONNX Runtime to read from a file,
    not from a serialized copy in memory); the model itself is left as it was."""
    graph = model.graph
    added = 0
    present = {o.name for o in graph.output}
    for name in names:
        if name not in present:
            graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            added += 1
    try:
        onnx.save(model, str(path))
    finally:
        for _ in range(added):
            graph.output.pop()


def pick_embedding(candidates: list[str], window_a: dict[str, np.ndarray],
                   window_b: dict[str, np.ndarray], c: Contract, split_at: str | None,
                   path: Path) -> tuple[str, int]:
    """(embedding tensor, D): the last cut tensor with one row per frame, each row made from
    its own frame only. window_a and window_b are the candidates' values for two windows that
    differ in their first and last frames (one clip each): a per-frame tensor's other rows are
    the same in both, where anything that mixes frames (an LSTM, time-major or not) differs.
    One window at a time keeps the original's activations to one window's worth of memory."""
    per_frame = []
    for name in candidates:
        a, b = window_a[name], window_b[name]
        if a.ndim != 2 or a.shape[0] != c.window or a.shape != b.shape:
            continue
        inner_a, inner_b = a[1:-1], b[1:-1]
        scale = max(1.0, float(np.abs(inner_a).max(initial=0.0)))
        if np.allclose(inner_a, inner_b, rtol=0.0, atol=1e-6 * scale):
            per_frame.append((name, a.shape[1]))
    if not per_frame:
        shape = f" ({split_at!r} is {window_a[split_at].shape})" if split_at else ""
        raise ModelError(f"{path}: no 2-D tensor with one row per frame, made from that frame "
                         f"alone, on the way to the output{shape}")
    name, dim = per_frame[-1]
    return name, int(dim)


def _front(prefix: str, frames: str, size: int, batch_dims: int) -> list[onnx.NodeProto]:
    """uint8 [..., H, W, 3] -> float32 [..., S, S, 3], resized like PyTorch's bilinear."""
    p = FRONT + prefix
    nodes = [helper.make_node("Cast", [frames], [p + "float"], to=TensorProto.FLOAT)]
    flat = p + "float"
    if batch_dims == 2:
        nodes += [helper.make_node("Shape", [frames], [p + "shape"]),
                  helper.make_node("Slice", [p + "shape", p + "c0", p + "c2"], [p + "bt"]),
                  helper.make_node("Slice", [p + "shape", p + "c2", p + "c5"], [p + "hwc"]),
                  helper.make_node("Concat", [p + "m1", p + "hwc"], [p + "flat_shape"], axis=0),
                  helper.make_node("Reshape", [p + "float", p + "flat_shape"], [p + "flat"])]
        flat = p + "flat"
    nodes += [helper.make_node("Transpose", [flat], [p + "nchw"], perm=[0, 3, 1, 2]),
              helper.make_node("Shape", [p + "nchw"], [p + "nchw_shape"]),
              helper.make_node("Slice", [p + "nchw_shape", p + "c0", p + "c2"], [p + "nc"]),
              helper.make_node("Concat", [p + "nc", p + "size"], [p + "sizes"], axis=0),
              helper.make_node("Resize", [p + "nchw", "", "", p + "sizes"], [p + "resized"],
                               mode="linear", coordinate_transformation_mode="half_pixel"),
              helper.make_node("Transpose", [p + "resized"], [p + "nhwc"], perm=[0, 2, 3, 1])]
    return nodes


def _front_constants(prefix: str, size: int) -> list[onnx.TensorProto]:
    p = FRONT + prefix
    ints = {"c0": [0], "c2": [2], "c5": [5], "m1": [-1], "size": [size, size], "axis0": [0],
            "sss3": [size, size, 3]}
    return [helper.make_tensor(p + k, TensorProto.INT64, [len(v)], v) for k, v in ints.items()]


def _io(name: str, elem: int, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def _model(model: onnx.ModelProto, nodes, inputs, outputs, initializers, name: str) -> onnx.ModelProto:
    graph = model.graph
    used = {n for node in nodes for n in node_inputs(node)}
    kept = [i for i in [*graph.initializer, *initializers] if i.name in used]
    new_graph = helper.make_graph(list(nodes), name, inputs, outputs, kept)
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import),
                            producer_name="fsrun onnx door")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def encoder_graph(model: onnx.ModelProto, c: Contract, embedding: str) -> onnx.ModelProto:
    nodes = _front("enc_", "frames", c.size, batch_dims=1)
    nodes.append(helper.make_node("Unsqueeze", [FRONT + "enc_nhwc", FRONT + "enc_axis0"],
                                  [c.input_name]))
    nodes += needed_nodes(model.graph, [embedding], {c.input_name})
    nodes.append(helper.make_node("Identity", [embedding], ["embeddings"]))
    return _model(model, nodes, [_io("frames", TensorProto.UINT8, ["N", "H", "W", 3])],
                  [_io("embeddings", TensorProto.FLOAT, ["N", None])],
                  _front_constants("enc_", c.size), "encoder")


def head_graph(model: onnx.ModelProto, c: Contract, embedding: str, dim: int) -> onnx.ModelProto:
    p = FRONT + "head_"
    constants = [helper.make_tensor(p + "rows", TensorProto.INT64, [2], [-1, dim]),
                 helper.make_tensor(p + "c0", TensorProto.INT64, [1], [0]),
                 helper.make_tensor(p + "c2", TensorProto.INT64, [1], [2]),
                 helper.make_tensor(p + "sss3", TensorProto.INT64, [3], [c.size, c.size, 3])]
    nodes = [helper.make_node("Reshape", ["embeddings", p + "rows"], [embedding])]
    body = needed_nodes(model.graph, [c.output_name], {embedding})
    shapes = [n for n in body if n.op_type == "Shape" and n.input[0] == c.input_name]
    if shapes:  # e.g. PyTorch's reshape(b, t, -1): the frames' shape, not their values
        nodes += [helper.make_node("Shape", ["embeddings"], [p + "shape"]),
                  helper.make_node("Slice", [p + "shape", p + "c0", p + "c2"], [p + "bt"]),
                  helper.make_node("Concat", [p + "bt", p + "sss3"], [p + "frames_shape"], axis=0)]
        for node in shapes:
            start = next((a.i for a in node.attribute if a.name == "start"), 0)
            end = next((a.i for a in node.attribute if a.name == "end"), None)
            renamed = helper.make_node("Identity", [p + "frames_shape"], list(node.output))
            if start or end is not None:
                limits = [helper.make_tensor(f"{p}{node.output[0]}_{k}", TensorProto.INT64, [1], [v])
                          for k, v in (("start", start), ("end", 5 if end is None else end))]
                constants += limits
                renamed = helper.make_node("Slice", [p + "frames_shape", limits[0].name,
                                                     limits[1].name], list(node.output))
            body[body.index(node)] = renamed
    nodes += body
    nodes.append(helper.make_node("Identity", [c.output_name], ["positions"]))
    if c.input_name in {n for node in nodes for n in node_inputs(node)}:
        raise ModelError(f"the head still needs the frames input after the cut at {embedding!r}")
    return _model(model, nodes, [_io("embeddings", TensorProto.FLOAT, ["B", c.window, dim])],
                  [_io("positions", TensorProto.FLOAT, ["B", c.window])], constants, "head")


def composite_graph(model: onnx.ModelProto, c: Contract) -> onnx.ModelProto:
    """The original whole, behind a uint8 input with cast and resize."""
    p = FRONT + "cmp_"
    nodes = _front("cmp_", "frames", c.size, batch_dims=2)
    nodes += [helper.make_node("Concat", [p + "bt", p + "sss3"], [p + "video_shape"], axis=0),
              helper.make_node("Reshape", [p + "nhwc", p + "video_shape"], [c.input_name])]
    nodes += list(model.graph.node)
    nodes.append(helper.make_node("Identity", [c.output_name], ["positions"]))
    return _model(model, nodes, [_io("frames", TensorProto.UINT8, ["B", c.window, "H", "W", 3])],
                  [_io("positions", TensorProto.FLOAT, ["B", c.window])],
                  _front_constants("cmp_", c.size), "model")
