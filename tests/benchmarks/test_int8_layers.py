"""`python -m benchmarks int8-layers`: the fp32 vs int8 error at every quantized tensor."""
from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from benchmarks.__main__ import main
from benchmarks.int8_layers import stage_of, summarize_stages


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


def test_layer_errors_of_the_tiny_encoder(tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "layers"
    args = ["int8-layers", "--package", str(tiny_package), "--recipe", "minmax-all",
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
    assert sum(s["tensors"] for s in pkg["stages"]) == len(tensors)
    text = (out / "int8_layers.md").read_text()
    assert f"| {tiny_package.name} | no |" in text and "int8_layers.png" in text
    assert (out / "int8_layers.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_recipe_is_one_line(tiny_package: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["int8-layers", "--package", str(tiny_package),
                                       "--recipe", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown int8 recipe 'nope'" in result.output
