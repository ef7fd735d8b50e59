"""The float skip path (recipe float_skip): residual Adds read the previous Add's float output
while every convolution keeps reading int8, and the residual stream loses less to rounding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fsexport.quantize import get_recipe, quantize_encoder
from fsrun.backends import BackendOptions, create_backend

CHANNELS, BLOCKS = 8, 6


def residual_chain(path: Path, seed: int = 0) -> None:
    """A stem conv, then BLOCKS residual blocks h = conv1x1(h) + h: one stage's skip path."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (CHANNELS, 3, 3, 3)).astype(np.float32),
                                     "stem_w")]
    nodes = [helper.make_node("Conv", ["frames", "stem_w"], ["h0"], pads=[1, 1, 1, 1],
                              name="stem")]
    for k in range(1, BLOCKS + 1):
        weight = rng.normal(0, 0.25, (CHANNELS, CHANNELS, 1, 1)).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{k}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, CHANNELS).astype(np.float32), f"b{k}")]
        nodes += [helper.make_node("Conv", [f"h{k - 1}", f"w{k}", f"b{k}"], [f"c{k}"],
                                   name=f"conv{k}"),
                  helper.make_node("Add", [f"c{k}", f"h{k - 1}"], [f"h{k}"], name=f"add{k}")]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("frames", TensorProto.FLOAT,
                                                       ["N", 3, 12, 12])],
        [helper.make_tensor_value_info(f"h{BLOCKS}", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def _run(path: Path, frames: np.ndarray) -> np.ndarray:
    with create_backend("cpu", path, BackendOptions(threads=1)) as backend:
        return np.asarray(backend.run(frames))


def test_float_skip_path_rewires_add_to_add_and_keeps_convs_int8(tmp_path: Path) -> None:
    source = tmp_path / "chain.onnx"
    residual_chain(source)
    rng = np.random.default_rng(1)
    batches = [rng.normal(0, 1, (4, 3, 12, 12)).astype(np.float32) for _ in range(4)]
    held_out = rng.normal(0, 1, (16, 3, 12, 12)).astype(np.float32)
    want = _run(source, held_out)
    errors = {}
    for name in ("minmax-keep-se", "minmax-keep-se-float-skip"):
        target = tmp_path / f"{name}.onnx"
        work = tmp_path / name
        work.mkdir()
        info = quantize_encoder(source, target, batches, get_recipe(name), work, threads=1)
        model = onnx.load(str(target))
        producers = {o: n for n in model.graph.node for o in n.output}
        adds = [n for n in model.graph.node if n.op_type == "Add"]
        skips = [producers[n.input[1]] for n in adds]
        convs = [n for n in model.graph.node if n.op_type == "Conv" and n.name != "stem"]
        assert len(convs) == BLOCKS
        assert all(producers[c.input[0]].op_type == "DequantizeLinear" for c in convs)
        if get_recipe(name).float_skip:
            # The first block's skip comes from the stem conv and stays rounded; every later
            # block reads the previous Add's float output.
            assert info["float_skip_inputs"] == BLOCKS - 1
            assert [s.op_type for s in skips] == ["DequantizeLinear"] + ["Add"] * (BLOCKS - 1)
        else:
            assert info["float_skip_inputs"] == 0
            assert {s.op_type for s in skips} == {"DequantizeLinear"}
        got = _run(target, held_out)
        errors[name] = float(np.mean((got - want) ** 2))
    assert errors["minmax-keep-se-float-skip"] < 0.8 * errors["minmax-keep-se"]
