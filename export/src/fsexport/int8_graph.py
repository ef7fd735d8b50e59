"""Which nodes of an encoder graph belong to which layer group, found from the graph's structure.

Groups that a quantization recipe can leave in float (names are what meta.json records):
- preprocess: every node between the uint8 input and the stem conv (Cast, Transpose, Resize,
  the normalization multiply-add, the shape arithmetic). Always float: it is the contract that
  lets fsrun feed uint8 frames of any size, resized or not.
- shape: arithmetic on tensor shapes, from a Shape node to the pads / sizes / shape input of a
  Pad, Resize, Reshape or Slice (TF-style "same" padding computes its pads from the feature
  map's size in float: Div, Ceil, Clip). Always float: a quantized pad is a wrong pad.
- stem: the first convolution, which sees the normalized pixels.
- silu: Sigmoid + Mul pairs computing x * sigmoid(x) (how SiLU is exported).
- se: squeeze-excite blocks, from the global ReduceMean up to the Mul that gates the feature map.
- dense: the Dense(256) (Gemm / MatMul) and what follows it.
Structure rather than node names, so graphs from other exporters (a Keras import) group the same.
"""
from __future__ import annotations

from typing import Any

GROUPS = ("preprocess", "shape", "stem", "silu", "se", "dense")
ALWAYS_FLOAT = ("preprocess", "shape")  # the encoder contract and shape arithmetic
# Inputs of these op types that carry shapes or indices rather than data.
CONTROL_INPUTS: dict[str, tuple[int, ...]] = {
    "Pad": (1, 2), "Resize": (1, 2, 3), "Reshape": (1,), "Slice": (1, 2, 3, 4), "Expand": (1,),
    "Tile": (1,), "ConstantOfShape": (0,), "Upsample": (1,),
}


def _producers(graph: Any) -> dict[str, Any]:
    return {out: node for node in graph.node for out in node.output}


def _ancestors(node: Any, producers: dict[str, Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        for name in current.input:
            parent = producers.get(name)
            if parent is not None and id(parent) not in seen:
                seen[id(parent)] = parent
                stack.append(parent)
    return list(seen.values())


def _shape_arithmetic(graph: Any, producers: dict[str, Any]) -> list[Any]:
    """Ancestors of every control input, walking back no further than a Shape node."""
    seen: dict[int, Any] = {}
    stack = [producers[name] for node in graph.node
             for i in CONTROL_INPUTS.get(node.op_type, ()) if i < len(node.input)
             and (name := node.input[i]) in producers]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if node.op_type != "Shape":
            stack += [producers[name] for name in node.input if name in producers]
    return list(seen.values())


def _stem(graph: Any) -> Any | None:
    """The first Conv in graph order (exporters write nodes topologically)."""
    return next((n for n in graph.node if n.op_type == "Conv"), None)


def _silu_pairs(graph: Any, producers: dict[str, Any]) -> list[Any]:
    nodes = []
    for node in graph.node:
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        for a, b in (node.input, node.input[::-1]):
            sigmoid = producers.get(b)
            if sigmoid is not None and sigmoid.op_type == "Sigmoid" and sigmoid.input[0] == a:
                nodes += [sigmoid, node]
                break
    return nodes


def _squeeze_excite(graph: Any) -> list[Any]:
    """From each global pool, in graph order, every node fed from inside the block, up to and
    including the Mul that multiplies the block's gate into the feature map (the first Mul
    with an input from outside the block)."""
    constant = {i.name for i in graph.initializer}
    constant |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    order = list(graph.node)
    nodes: list[Any] = []
    for index, pool in enumerate(order):
        if pool.op_type not in ("ReduceMean", "GlobalAveragePool"):
            continue
        block, produced = [pool], set(pool.output)
        for node in order[index + 1:]:
            data = [i for i in node.input if i and i not in constant]
            if not any(i in produced for i in data):
                continue
            block.append(node)
            if node.op_type == "Mul" and not all(i in produced for i in data):
                nodes += block  # found the gate: this was a squeeze-excite block
                break
            produced.update(node.output)
    return nodes


def layer_groups(model: Any) -> dict[str, list[str]]:
    """Group name -> node names of an encoder ModelProto."""
    graph = model.graph
    producers = _producers(graph)
    stem = _stem(graph)
    groups: dict[str, list[Any]] = {g: [] for g in GROUPS}
    if stem is not None:
        groups["preprocess"] = [n for n in _ancestors(stem, producers)]
        groups["stem"] = [stem]
    groups["shape"] = _shape_arithmetic(graph, producers)
    groups["silu"] = _silu_pairs(graph, producers)
    groups["se"] = _squeeze_excite(graph)
    dense = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    groups["dense"] = dense
    return {g: sorted({n.name for n in nodes}) for g, nodes in groups.items()}


def downsampling(model: Any) -> dict[str, int]:
    """Tensor name -> how many times smaller than the network's input (after the in-graph
    resize) its feature map is: the product of the strides of the convolutions and pools
    upstream, 1 where there are none."""
    factors: dict[str, int] = {i.name: 1 for i in model.graph.input}
    for node in model.graph.node:  # exporters write nodes in topological order
        factor = max((factors.get(name, 1) for name in node.input if name), default=1)
        if node.op_type in ("Conv", "MaxPool", "AveragePool"):
            strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [1])
            factor *= max(strides)
        for name in node.output:
            factors[name] = factor
    return factors


def float_skip_path(model: Any, min_downsampling: int = 1) -> int:
    """Let each residual Add of a QDQ graph read the skip tensor in float. Returns how many
    inputs were rewired.

    The quantizer rounds every tensor an int8 node reads, and the skip path shares that copy:
    the residual stream of a stage is rounded again at every block, and the rounding adds up
    over the depth. Where an Add's input is DequantizeLinear(QuantizeLinear(t)) and t is itself
    an Add's output (a residual stream), the Add now reads t. The convolution of the next block
    still reads the int8 copy, so every convolution stays int8; the Adds of that stream run in
    float (ORT can no longer fuse them into QLinearAdd), which costs time in proportion to the
    feature map: min_downsampling leaves alone the streams whose maps are larger than the input
    divided by it (the early stages, where maps are large and little error has built up yet).
    A skip tensor produced by a convolution is left alone too: reading its float output would
    stop the convolution from writing int8 directly."""
    producers = _producers(model.graph)
    factors = downsampling(model)
    rewired = 0
    for node in model.graph.node:
        if node.op_type != "Add":
            continue
        for index, name in enumerate(node.input):
            dequantize = producers.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear":
                continue
            quantize = producers.get(dequantize.input[0])
            if quantize is None or quantize.op_type != "QuantizeLinear":
                continue
            source = producers.get(quantize.input[0])
            if (source is not None and source.op_type == "Add"
                    and factors.get(quantize.input[0], 1) >= min_downsampling):
                node.input[index] = quantize.input[0]
                rewired += 1
    _drop_unused(model.graph)
    return rewired


def _drop_unused(graph: Any) -> None:
    """Remove nodes none of whose outputs is read (a QDQ pair only the rewired Add read)."""
    while True:
        read = {name for node in graph.node for name in node.input}
        read |= {output.name for output in graph.output}
        unused = [n for n in graph.node if not any(o in read for o in n.output)]
        if not unused:
            return
        for node in unused:
            graph.node.remove(node)
