"""Static check that TensorRT's ONNX parser will take every graph of a package.

TensorRT cannot be installed everywhere the package is built, so this reads the ONNX files and
checks them against what the TensorRT 10 ONNX parser documents (onnx-tensorrt docs/operators.md):
the operator list, the data types it handles (uint8 only as a network input, and then only into
a Cast), Resize on float input with supported modes, LSTM attribute limits, and the opset range.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import onnx
from onnx import TensorProto, helper

OPSET_RANGE = (9, 20)  # default-domain opsets every TensorRT 10.x parser accepts
DEFAULT_DOMAINS = ("", "ai.onnx")

# ONNX operators the TensorRT 10 parser supports (docs/operators.md, "Supported: Y").
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape
Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum
Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop
LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod
Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign Round ScaledTanh Scan Scatter
ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze STFT Sub Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Tensor types TensorRT computes in. uint8 is allowed only at the network boundary (see below);
# double, int8 and the other integer types are not types a network of this product may carry.
COMPUTE_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16,
                           TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL})
BOUNDARY_TYPES = frozenset({TensorProto.UINT8})
# Nodes that may read a uint8 network input: Cast converts it, Shape reads only its dimensions.
UINT8_CONSUMERS = frozenset({"Cast", "Shape"})
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16})

RESIZE_MODES = frozenset({b"nearest", b"linear"})
RESIZE_COORDINATES = frozenset({b"half_pixel", b"pytorch_half_pixel", b"tf_half_pixel_for_nn",
                                b"asymmetric", b"align_corners"})
LSTM_DEFAULT_ACTIVATIONS = (b"Sigmoid", b"Tanh", b"Tanh")


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" (the parser will refuse it) or "warning" (may work, check on a GPU)
    file: str  # ONNX file name
    node: str  # node name and op type, or "graph" for graph-level findings
    message: str  # what is wrong and what TensorRT needs instead

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.node}: {self.message}"


def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _label(node: onnx.NodeProto, index: int) -> str:
    return f"{node.name or f'#{index}'} ({node.op_type})"


class _Graph:
    """A graph with the element type of every value that has one (after shape inference)."""

    def __init__(self, model: onnx.ModelProto):
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - inference is best-effort; the types we have still count
            pass
        self.graph = model.graph
        self.types: dict[str, int] = {}
        for value in [*self.graph.input, *self.graph.output, *self.graph.value_info]:
            if value.type.HasField("tensor_type"):
                self.types[value.name] = value.type.tensor_type.elem_type
        for init in self.graph.initializer:
            self.types[init.name] = init.data_type
        self.inputs = {v.name for v in self.graph.input} - {i.name for i in self.graph.initializer}
        self.outputs = {v.name for v in self.graph.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)


def _walk(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _walk(sub)


def _check_opset(model: onnx.ModelProto, file: str) -> list[Finding]:
    low, high = OPSET_RANGE
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS and not low <= opset.version <= high:
            return [Finding("error", file, "graph", f"opset {opset.version} is outside the range "
                                                     f"TensorRT 10 parses ({low}..{high})")]
    return []


def _check_ops(g: _Graph, file: str) -> list[Finding]:
    findings = []
    for index, node in enumerate(_walk(g.graph)):
        if node.domain not in DEFAULT_DOMAINS:
            findings.append(Finding("error", file, _label(node, index),
                                    f"custom-domain operator {node.domain}::{node.op_type} needs "
                                    f"a TensorRT plugin"))
        elif node.op_type not in SUPPORTED_OPS:
            findings.append(Finding("error", file, _label(node, index),
                                    f"{node.op_type} is not supported by the TensorRT ONNX parser"))
    return findings


def _check_types(g: _Graph, file: str) -> list[Finding]:
    findings = []
    for name, elem_type in sorted(g.types.items()):
        if elem_type in COMPUTE_TYPES or elem_type == TensorProto.UNDEFINED:
            continue
        if elem_type in BOUNDARY_TYPES:
            if name in g.outputs:
                continue
            if name not in g.inputs:
                findings.append(Finding("error", file, f"tensor {name}",
                                        "uint8 inside the network: TensorRT takes uint8 only as "
                                        "a network input or output"))
                continue
            for node in g.consumers.get(name, []):
                if node.op_type not in UINT8_CONSUMERS:
                    findings.append(Finding("error", file, f"{node.name} ({node.op_type})",
                                            f"uint8 input {name} must go through a Cast first"))
            continue
        findings.append(Finding("error", file, f"tensor {name}",
                                f"type {_type_name(elem_type)} is not supported by TensorRT "
                                f"(use float32, float16, int32, int64 or bool)"))
    return findings


def _check_cast(node: onnx.NodeProto, g: _Graph, label: str, file: str) -> list[Finding]:
    target = _attributes(node).get("to")
    if target is None or target in COMPUTE_TYPES:
        return []
    if target in BOUNDARY_TYPES and all(o in g.outputs for o in node.output):
        return []
    return [Finding("error", file, label, f"Cast to {_type_name(target)} is not supported by "
                                          f"TensorRT inside the network")]


def _check_resize(node: onnx.NodeProto, g: _Graph, label: str, file: str) -> list[Finding]:
    findings = []
    data_type = g.types.get(node.input[0]) if node.input else None
    if data_type is not None and data_type not in FLOAT_TYPES:
        findings.append(Finding("error", file, label,
                                f"Resize input is {_type_name(data_type)}; TensorRT resizes only "
                                f"float tensors (Cast before Resize)"))
    attrs = _attributes(node)
    mode = attrs.get("mode", b"nearest")
    if mode not in RESIZE_MODES:
        findings.append(Finding("error", file, label, f"Resize mode {mode.decode()} is not "
                                                      f"supported (nearest or linear)"))
    coordinates = attrs.get("coordinate_transformation_mode", b"half_pixel")
    if coordinates not in RESIZE_COORDINATES:
        findings.append(Finding("error", file, label, f"Resize coordinate mode "
                                                      f"{coordinates.decode()} is not supported"))
    if attrs.get("antialias", 0):
        findings.append(Finding("error", file, label, "antialiased Resize is not supported"))
    return findings


def _check_lstm(node: onnx.NodeProto, g: _Graph, label: str, file: str) -> list[Finding]:
    findings = []
    attrs = _attributes(node)
    directions = 2 if attrs.get("direction", b"forward") == b"bidirectional" else 1
    activations = tuple(attrs.get("activations", LSTM_DEFAULT_ACTIVATIONS * directions))
    if activations != LSTM_DEFAULT_ACTIVATIONS * directions:
        findings.append(Finding("error", file, label, "LSTM activations must be the defaults "
                                                      "(Sigmoid, Tanh, Tanh) in every direction"))
    for name in ("activation_alpha", "activation_beta"):
        if name in attrs:
            findings.append(Finding("error", file, label, f"LSTM {name} is not supported"))
    if attrs.get("layout", 0) != 0:
        findings.append(Finding("error", file, label, "LSTM layout must be 0 (sequence first)"))
    if attrs.get("input_forget", 0) != 0:
        findings.append(Finding("error", file, label, "LSTM input_forget must be 0"))
    if "clip" in attrs:
        findings.append(Finding("error", file, label, "LSTM clip is not supported"))
    inputs = list(node.input) + [""] * (8 - len(node.input))
    if inputs[4]:
        findings.append(Finding("warning", file, label,
                                "LSTM sequence_lens is given: TensorRT needs every sequence at "
                                "full length (windows here are never padded per item)"))
    if inputs[7]:
        findings.append(Finding("error", file, label, "LSTM peephole weights (P) are not "
                                                      "supported"))
    return findings


# Per-operator rules beyond "is it supported at all".
NODE_RULES: dict[str, Callable[[onnx.NodeProto, _Graph, str, str], list[Finding]]] = {
    "Cast": _check_cast,
    "Resize": _check_resize,
    "LSTM": _check_lstm,
}


def check_model(model: onnx.ModelProto, file: str = "model.onnx") -> list[Finding]:
    """Findings for an in-memory model (file names the findings)."""
    g = _Graph(model)
    findings = _check_opset(model, file) + _check_ops(g, file) + _check_types(g, file)
    for index, node in enumerate(g.graph.node):
        rule = NODE_RULES.get(node.op_type)
        if rule is not None and node.domain in DEFAULT_DOMAINS:
            findings.extend(rule(node, g, _label(node, index), file))
    return findings


def check_onnx(path: Path | str) -> list[Finding]:
    """Findings for one ONNX file (weights are not loaded: only the graph is read)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    return check_model(model, path.name)


def check_package(package_dir: Path | str) -> list[Finding]:
    """Findings for every ONNX file of a package, in file-name order."""
    package_dir = Path(package_dir)
    files = sorted(package_dir.glob("*.onnx"))
    if not files:
        return [Finding("error", package_dir.name, "package", "no ONNX files found")]
    findings: list[Finding] = []
    for path in files:
        findings.extend(check_onnx(path))
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
