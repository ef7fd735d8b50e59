"""The TensorRT static check passes the real tiny package and reports each rule's violation."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from fsexport.trt.static_check import check_model, check_onnx, check_package, has_errors

F, U8 = TensorProto.FLOAT, TensorProto.UINT8


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None,
           opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _resize_model(cast_first: bool, mode: str = "linear") -> onnx.ModelProto:
    sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 3, 8, 8])
    nodes = []
    src = "x"
    if cast_first:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=F))
        src = "xf"
    nodes.append(helper.make_node("Resize", [src, "", "", "sizes"], ["y0"], mode=mode))
    out_type = F
    if not cast_first:
        nodes.append(helper.make_node("Cast", ["y0"], ["y"], to=F))
    else:
        nodes[-1].output[0] = "y"
    return _model(nodes, [_vi("x", U8, [1, 3, 16, 16])], [_vi("y", out_type, [1, 3, 8, 8])],
                  [sizes])


def _lstm_model(**attrs) -> onnx.ModelProto:
    hidden, dirs = 4, 2
    w = helper.make_tensor("W", F, [dirs, 4 * hidden, 3], [0.1] * (dirs * 4 * hidden * 3))
    r = helper.make_tensor("R", F, [dirs, 4 * hidden, hidden], [0.1] * (dirs * 4 * hidden * hidden))
    inputs = ["x", "W", "R"]
    inits = [w, r]
    if attrs.pop("peepholes", False):
        inits.append(helper.make_tensor("P", F, [dirs, 3 * hidden], [0.0] * (dirs * 3 * hidden)))
        inputs = ["x", "W", "R", "", "", "", "", "P"]
    node = helper.make_node("LSTM", inputs, ["y"], hidden_size=hidden, direction="bidirectional",
                            **attrs)
    return _model([node], [_vi("x", F, [5, 1, 3])], [_vi("y", F, [5, dirs, 1, hidden])], inits)


def _messages(model: onnx.ModelProto) -> str:
    return "\n".join(str(f) for f in check_model(model, "t.onnx") if f.severity == "error")


def test_tiny_package_passes(built_tiny_package: Path) -> None:
    findings = check_package(built_tiny_package)
    assert not has_errors(findings), "\n".join(map(str, findings))
    assert {p.name for p in built_tiny_package.glob("*.onnx")} >= {"encoder.onnx", "head.fp16.onnx"}


def test_clean_hand_made_graphs_pass() -> None:
    assert _messages(_resize_model(cast_first=True)) == ""
    assert _messages(_lstm_model()) == ""


def test_resize_on_uint8_is_reported() -> None:
    text = _messages(_resize_model(cast_first=False))
    assert "Cast before Resize" in text
    assert "must go through a Cast" in text


def test_unsupported_resize_mode_is_reported() -> None:
    assert "Resize mode cubic" in _messages(_resize_model(cast_first=True, mode="cubic"))


@pytest.mark.parametrize("attrs, expected", [
    ({"clip": 3.0}, "clip"),
    ({"layout": 1}, "layout"),
    ({"input_forget": 1}, "input_forget"),
    ({"activations": ["Sigmoid", "Relu", "Tanh"] * 2}, "activations"),
    ({"peepholes": True}, "peephole"),
])
def test_lstm_constraints_are_reported(attrs: dict, expected: str) -> None:
    assert expected in _messages(_lstm_model(**attrs))


def test_uint8_inside_the_network_is_reported() -> None:
    nodes = [helper.make_node("Cast", ["x"], ["a"], to=F),
             helper.make_node("Cast", ["a"], ["b"], to=U8),
             helper.make_node("Cast", ["b"], ["y"], to=F)]
    text = _messages(_model(nodes, [_vi("x", F, [2])], [_vi("y", F, [2])]))
    assert "Cast to UINT8" in text and "uint8 inside the network" in text


def test_double_and_int8_tensors_are_reported() -> None:
    nodes = [helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["d"], ["y"], to=F)]
    text = _messages(_model(nodes, [_vi("x", F, [2])], [_vi("y", F, [2])]))
    assert "DOUBLE" in text
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    text = _messages(_model(nodes, [_vi("x", TensorProto.INT8, [2])],
                            [_vi("y", TensorProto.INT8, [2])]))
    assert "INT8" in text


def test_unsupported_ops_custom_domains_and_opsets_are_reported() -> None:
    unique = helper.make_node("Unique", ["x"], ["y"])
    assert "Unique is not supported" in _messages(
        _model([unique], [_vi("x", F, [4])], [_vi("y", F, [None])]))
    custom = helper.make_node("Fancy", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([custom], "g", [_vi("x", F, [4])], [_vi("y", F, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    assert "needs a TensorRT plugin" in _messages(model)
    relu = helper.make_node("Relu", ["x"], ["y"])
    assert "opset 8" in _messages(_model([relu], [_vi("x", F, [4])], [_vi("y", F, [4])], opset=8))


def test_check_onnx_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    onnx.save(_resize_model(cast_first=False), str(path))
    findings = check_onnx(path)
    assert has_errors(findings) and all(f.file == "bad.onnx" for f in findings)
    assert str(findings[0]).startswith("error: bad.onnx: ")
