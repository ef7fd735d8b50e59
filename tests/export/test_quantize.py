"""`fsexport quantize`: the int8 encoder keeps the fp32 contract, is really int8 where the recipe
says so, records its drift, and is verified by fsrun like every other file of the package."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from fsexport.cli import main as fsexport_main
from fsexport.int8_graph import ALWAYS_FLOAT, layer_groups
from fsexport.quantize import DEFAULT_RECIPE, RECIPES, cosine_similarity
from fsrun.backends import BackendOptions, create_backend
from fsrun.errors import ModelError
from fsrun.model.package import load_package


def _graph(package: Path, name: str) -> onnx.ModelProto:
    return onnx.load(str(package / name))


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def test_int8_contract_uint8_input_dynamic_axes_and_float_preprocessing(
        built_tiny_int8_package: Path) -> None:
    model = _graph(built_tiny_int8_package, "encoder.int8.onnx")
    (frames,) = model.graph.input
    assert frames.name == "frames"
    assert frames.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = frames.type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:3]] == ["N", "H", "W"] and dims[3].dim_value == 3
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    producers = _producers(model)
    consumers = [n for n in model.graph.node if "frames" in n.input]
    assert [n.op_type for n in consumers] == ["Cast"]  # uint8 goes straight into a Cast
    (resize,) = [n for n in model.graph.node if n.op_type == "Resize"]
    assert producers[resize.input[0]].op_type != "DequantizeLinear"  # resized in float
    assert not any(n.op_type == "QuantizeLinear" and resize.output[0] in n.input
                   for n in model.graph.node)
    # The stem conv and the Dense(256) keep float weights; the rest of the convs are int8.
    initializers = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    for kept in (convs[0], gemm):
        assert initializers[kept.input[1]].data_type == onnx.TensorProto.FLOAT
    int8_weights = [c for c in convs[1:] if c.input[1] in producers
                    and producers[c.input[1]].op_type == "DequantizeLinear"
                    and initializers[producers[c.input[1]].input[0]].data_type
                    == onnx.TensorProto.INT8]
    groups = layer_groups(_graph(built_tiny_int8_package, "encoder.onnx"))
    se_convs = sum(1 for name in groups["se"] if name.endswith("Conv"))
    assert len(int8_weights) == len(convs) - 1 - se_convs > 0
    # Squeeze-excite gates stay in float; SiLU activations are quantized unless the recipe keeps
    # them (the default quantizes them: faster end to end at the same ground-truth r).
    quantized = {i for n in model.graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    sigmoids = {n.name: n.output[0] for n in model.graph.node if n.op_type == "Sigmoid"}
    se = {name for name in groups["se"] if name in sigmoids}  # with the SiLU inside each block
    silu = {name for name in groups["silu"] if name in sigmoids} - se
    assert silu and se
    assert not any(sigmoids[name] in quantized for name in se)
    silu_in_float = "silu" in RECIPES[DEFAULT_RECIPE].keep_float
    assert all((sigmoids[name] in quantized) != silu_in_float for name in silu)


def test_int8_runs_any_batch_and_frame_size_close_to_fp32(built_tiny_int8_package: Path) -> None:
    package = load_package(built_tiny_int8_package)
    rng = np.random.default_rng(3)
    with create_backend("cpu", package.graph("encoder", "fp32"), BackendOptions()) as fp32, \
            create_backend("cpu", package.graph("encoder", "int8"), BackendOptions()) as int8:
        for n, h, w in ((1, 64, 64), (3, 77, 101), (2, 48, 64)):
            frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
            got, want = int8.run(frames), fp32.run(frames)
            assert got.shape == want.shape == (n, package.meta.embedding_dim)
            assert np.isfinite(got).all()
            assert cosine_similarity(want, got).min() > 0.9  # random frames: outside calibration


def test_meta_records_precision_source_sha_and_drift(built_tiny_int8_package: Path) -> None:
    meta = json.loads((built_tiny_int8_package / "meta.json").read_text())
    record = meta["quantization"]["int8"]
    assert record["precision"] == "int8" and record["recipe"] == DEFAULT_RECIPE
    assert record["sha256"] == meta["files"]["encoder.int8.onnx"]
    assert "synthetic clips" in record["calibration"]["source"]
    assert record["calibration"]["frames"] == 16
    assert record["calibration"]["resize_paths"]["source"] > 0
    assert record["calibration"]["resize_paths"]["graph"] > 0
    assert set(record["kept_float"]) == {*ALWAYS_FLOAT, *RECIPES[DEFAULT_RECIPE].keep_float}
    assert record["recipe_settings"]["float_skip"] == RECIPES[DEFAULT_RECIPE].float_skip
    assert record["float_skip_inputs"] == 0  # the tiny encoder has no residual blocks
    drift = record["drift_vs_fp32"]
    cosine = drift["embedding_cosine_source"]
    assert 0.9 < cosine["min"] <= cosine["mean"] <= 1.0
    assert cosine["frames"] >= 100  # every sampled frame of both clips, not the 16 calibrated
    assert 0.0 < drift["position_max_abs_diff"] < 0.2
    assert drift["embedding_cosine_graph"]["frames"] > 0


def test_fsrun_verifies_the_int8_file(built_tiny_int8_package: Path, tmp_path: Path) -> None:
    copy = tmp_path / "damaged.fsmodel"
    shutil.copytree(built_tiny_int8_package, copy)
    data = bytearray((copy / "encoder.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "encoder.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="encoder.int8.onnx is damaged"):
        load_package(copy)


def test_layer_groups_of_the_tiny_encoder(built_tiny_package: Path) -> None:
    groups = layer_groups(_graph(built_tiny_package, "encoder.onnx"))
    assert groups["stem"] == ["/conv_stem/Conv"]
    assert groups["dense"] == ["/fc/Gemm"]
    assert {"/Cast", "/Resize"} <= set(groups["preprocess"])
    assert all("/se/" in name for name in groups["se"]) and len(groups["se"]) == 14
    assert {n.rsplit("/", 1)[-1] for n in groups["silu"]} == {"Sigmoid", "Mul"}


def test_quantize_command_refuses_to_replace_and_names_bad_recipes(built_tiny_int8_package: Path,
                                                                  tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(fsexport_main, ["quantize", str(built_tiny_int8_package)])
    assert result.exit_code == 5 and "--force" in result.output
    result = runner.invoke(fsexport_main, ["quantize", str(built_tiny_int8_package), "--force",
                                           "--recipe", "nope"])
    assert result.exit_code == 2 and "minmax" in result.output
    result = runner.invoke(fsexport_main, ["quantize", str(tmp_path / "none.fsmodel")])
    assert result.exit_code == 4 and "not found" in result.output


def _random_batches(package: Path, seed: int) -> list[np.ndarray]:
    size = load_package(package).meta.input_size
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8) for _ in range(3)]


def _cached_value(value: Any) -> float:
    """A range end from ORT's calibration-cache JSON: a number or a serialized array."""
    value = value["data"] if isinstance(value, dict) else value
    return float(np.asarray(value).reshape(-1)[0])


def _calibrated_ranges(package: Path, batches: list[np.ndarray], recipes: tuple[str, ...],
                       work: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """recipe -> tensor -> (low, high), as each recipe's calibration pass saves them."""
    from fsexport.quantize import _calibrate, get_recipe

    input_name = _graph(package, "encoder.onnx").graph.input[0].name
    ranges = {}
    for name in recipes:
        cache = work / f"{name}.json"
        _calibrate(package / "encoder.onnx", input_name, batches, get_recipe(name), cache, work,
                   threads=1)
        ranges[name] = {k: (_cached_value(v["lowest"]), _cached_value(v["highest"]))
                        for k, v in json.loads(cache.read_text())["data"].items()}
    return ranges


def test_moving_average_calibration_is_the_mean_of_the_batch_ranges(built_tiny_package: Path,
                                                                    tmp_path: Path) -> None:
    batches = _random_batches(built_tiny_package, 3)
    with create_backend("cpu", built_tiny_package / "encoder.onnx", BackendOptions(threads=1)) as backend:
        highs = [float(backend.run(b).max()) for b in batches]  # embeddings: ReLU, so low 0
    ranges = _calibrated_ranges(built_tiny_package, batches, ("minmax-keep-se", "minmax-avg-keep-se"),
                                tmp_path)
    assert ranges["minmax-keep-se"]["embeddings"][1] == pytest.approx(max(highs), rel=1e-5)
    assert ranges["minmax-avg-keep-se"]["embeddings"][1] == pytest.approx(np.mean(highs), rel=1e-5)


def test_mse_calibration_narrows_minmax_ranges_and_quantizes(built_tiny_package: Path,
                                                             tmp_path: Path) -> None:
    from fsexport.quantize import get_recipe, quantize_encoder

    encoder = built_tiny_package / "encoder.onnx"
    batches = _random_batches(built_tiny_package, 4)
    ranges = _calibrated_ranges(built_tiny_package, batches, ("minmax-keep-se", "mse-keep-se"), tmp_path)
    assert ranges["mse-keep-se"].keys() == ranges["minmax-keep-se"].keys()
    narrowed = 0
    for tensor, (low, high) in ranges["mse-keep-se"].items():
        full_low, full_high = ranges["minmax-keep-se"][tensor]
        assert min(full_low, 0.0) - 1e-6 <= low <= 0.0 <= high <= max(full_high, 0.0) + 1e-6
        narrowed += high < 0.999 * full_high
    assert narrowed > 0  # some tail was worth clipping
    target = tmp_path / "encoder.int8.onnx"
    quantize_encoder(encoder, target, batches, get_recipe("mse-keep-se"), tmp_path, threads=1)
    with create_backend("cpu", target, BackendOptions(threads=1)) as int8, \
            create_backend("cpu", encoder, BackendOptions(threads=1)) as fp32:
        cosine = cosine_similarity(fp32.run(batches[0]), int8.run(batches[0]))
    assert np.all(cosine > 0.5)
