"""`python -m benchmarks.experiments int8-layers`: the fp32 vs int8 error at every quantized tensor
(an experiment: marked `long`, run by CI in its own step)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from benchmarks.experiments.__main__ import main
from benchmarks.experiments.int8_layers import stage_of, summarize_stages

pytestmark = pytest.mark.long


def test_stage_names_of_timm_and_keras_graphs() -> None:
    assert stage_of("/blocks/blocks.3/blocks.3.2/conv_pwl/Conv_output_0") == "stage 3"
    assert stage_of("block4c_project_conv/Conv2D:0") == "stage 4"
    assert stage_of("stack_2_block1_sortcut_conv/Conv2D:0") == "stage 2"
    assert stage_of("/conv_head/Conv_output_0") == "conv_head"
    assert stage_of("/bn1/act/Mul_output_0") == "bn1"


def test_stage_summary_chains_entry_to_the_previous_exit() -> None:
    rows = [{"tensor": "/conv_stem/Conv_output_0", "position": 1, "stage": "conv_stem",
             "own_db": 40.0, "accumulated_db": 38.0},
            {"tensor": "a", "position": 5, "stage": "stage 0", "own_db": 30.0,
             "accumulated_db": 30.0},
            {"tensor": "b", "position": 9, "stage": "stage 0", "own_db": 25.0,
             "accumulated_db": 27.0}]
    stem, stage0 = summarize_stages(rows)
    assert (stem["entry_db"], stem["exit_db"]) == (38.0, 38.0)
    assert (stage0["entry_db"], stage0["exit_db"], stage0["tensors"]) == (38.0, 27.0, 2)
    assert (stage0["worst_own_db"], stage0["worst_own_tensor"]) == (25.0, "b")


def test_layer_errors_of_the_tiny_encoder(built_tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "layers"
    args = ["int8-layers", "--package", str(built_tiny_package), "--recipe", "minmax-all",
            "--frames", "2", "--clip-size", "96x72", "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "int8_layers.json").read_text())
    (pkg,) = data["packages"]
    tensors = pkg["tensors"]
    assert len(tensors) > 5 and pkg["frames"] == 2
    positions = [t["position"] for t in tensors]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {"Conv"} <= {t["op"] for t in tensors}  # minmax-all quantizes every conv
    assert all(math.isfinite(t["own_db"]) and math.isfinite(t["accumulated_db"])
               for t in tensors)
    assert 0.0 <= tensors[0]["depth"] < tensors[-1]["depth"] <= 1.0
    assert 0.5 < pkg["embedding"]["cosine_mean"] <= 1.0
    assert pkg["embedding"]["weights_rounded"] > 0
    assert 0.9 < pkg["embedding"]["weights_only_cosine"] <= 1.0 + 1e-9
    assert sum(s["tensors"] for s in pkg["stages"]) == len(tensors)
    text = (out / "int8_layers.md").read_text()
    assert f"| {built_tiny_package.name} | no |" in text and "int8_layers.png" in text
    assert (out / "int8_layers.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_recipe_is_one_line(built_tiny_package: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["int8-layers", "--package", str(built_tiny_package),
                                       "--recipe", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown int8 recipe 'nope'" in result.output


def test_weights_only_graph_rounds_each_weight_to_its_int8_step(built_tiny_package: Path,
                                                                tmp_path: Path) -> None:
    from onnx import numpy_helper

    from benchmarks.experiments.int8_layers import weights_only_graph
    from fsexport.quantize import get_recipe, quantize_encoder

    rng = np.random.default_rng(5)
    batches = [rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)]
    int8_path = tmp_path / "encoder.int8.onnx"
    quantize_encoder(built_tiny_package / "encoder.onnx", int8_path, batches, get_recipe("minmax-all"),
                     tmp_path, threads=1)
    rounded_path = tmp_path / "weights_only.onnx"
    replaced = weights_only_graph(tmp_path / "preprocessed.onnx", int8_path, rounded_path)
    original = {i.name: numpy_helper.to_array(i)
                for i in onnx.load(str(tmp_path / "preprocessed.onnx")).graph.initializer}
    rounded = {i.name: numpy_helper.to_array(i)
               for i in onnx.load(str(rounded_path)).graph.initializer}
    convs = [n for n in onnx.load(str(rounded_path)).graph.node if n.op_type == "Conv"]
    assert replaced >= len(convs) > 0
    changed = 0
    for conv in convs:  # per output channel: int8 symmetric, so within half a step of max|w| / 127
        w, r = original[conv.input[1]], rounded[conv.input[1]]
        step = np.abs(w).reshape(len(w), -1).max(1) / 127.0
        error = np.abs(r - w).reshape(len(w), -1).max(1)
        assert np.all(error <= step / 2 + 1e-6)
        changed += int(np.any(r != w))
    assert changed == len(convs)
