"""fsexport import: Keras (.h5/.keras) and seed-contract ONNX fixtures against TensorFlow's outputs.

The fixtures (tests/export/keras_fixtures/, made by make_fixtures.py with TensorFlow) are small
models of the creator's structure with random weights, their tf2onnx conversions, and Keras'
own outputs on seeded frames (NAME.reference.npz). TensorFlow is not needed here.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from fsexport.cli import main as fsexport_main
from fsexport.importers.config import ImportConfig
from fsexport.importers.doors import import_model
from fsexport.importers.keras_reference import BATCHES, frames_sha256, seeded_frames
from fsexport.parity import FP32_TOLERANCE, SPLIT_TOLERANCE, allowed_diff
from fsrun.model.package import load_package, sha256_file

FIXTURES = Path(__file__).parent / "keras_fixtures"
KERAS_CASES = ["kecam_s_like.h5", "keras_app.h5", "kecam_dense64_deep.h5"]
ONNX_CASES = ["kecam_s_like.onnx", "keras_app.onnx", "kecam_dense64_deep.onnx"]


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _import(source: Path, out: Path, **options) -> Path:
    config = ImportConfig(source=source, output=out, set_default=False, **options)
    return import_model(config, log=lambda _: None).path


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture imported once; fp16 graphs only where the test looks at them."""
    out = tmp_path_factory.mktemp("imported")
    with_fp16 = {"kecam_s_like.h5", "kecam_s_like.onnx", "kecam_dense64_deep.onnx"}
    return {name: _import(FIXTURES / name, out, name=f"{name.replace('.', '_')}.fsmodel",
                          fp16=name in with_fp16)
            for name in KERAS_CASES + ONNX_CASES}


def _reference(source: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{source.split('.')[0]}.reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("source", KERAS_CASES + ONNX_CASES)
def test_package_matches_keras_on_tensorflow(source: str, packages: dict[str, Path]) -> None:
    """Each graph of the package against Keras' outputs at two batch sizes (fp32 <= 1e-4)."""
    package = packages[source]
    meta = load_package(package).meta
    reference = _reference(source)
    name = source.split(".")[0]
    for batch in BATCHES:
        frames = seeded_frames(name, batch, meta.window, meta.input_size)
        assert frames_sha256(frames) == str(reference[f"frames_sha256_b{batch}"]), \
            "regenerated frames differ from the ones the reference was computed on"
        positions, embeddings = reference[f"positions_b{batch}"], reference[f"embeddings_b{batch}"]
        assert positions.shape == (batch, meta.window) and float(positions.std()) > 1e-3
        got = {"model": _run(package / "model.onnx", frames),
               "encoder": _run(package / "encoder.onnx", frames.reshape(-1, *frames.shape[2:])),
               "head": _run(package / "head.onnx", embeddings.reshape(batch, meta.window, -1))}
        expected = {"model": positions, "encoder": embeddings, "head": positions}
        for kind, value in got.items():
            diff = float(np.abs(value - expected[kind]).max())
            scale = float(np.abs(expected[kind]).max())
            assert diff <= allowed_diff(FP32_TOLERANCE, scale), f"{kind} b{batch}: {diff:.2e}"


@pytest.mark.parametrize("source", KERAS_CASES + ONNX_CASES)
def test_meta_names_the_door_the_source_and_the_mapping(source: str,
                                                        packages: dict[str, Path]) -> None:
    meta = load_package(packages[source]).meta
    provenance = meta.provenance
    door = "import-onnx" if source.endswith(".onnx") else "import-keras"
    assert provenance["door"] == door and meta.variant == f"imported-{door.split('-')[1]}"
    assert provenance["source"] == {**provenance["source"], "file": source,
                                    "sha256": sha256_file(FIXTURES / source)}
    if door == "import-keras":
        backbone = provenance["mapping"]["backbone"]
        expected = "keras-applications" if source.startswith("keras_app") else "keras-cv-attention-models"
        assert backbone["layer_names"] == expected and backbone["tensors"] > 50
        assert any("LSTM" in line for line in provenance["mapping"]["layers"])
    else:
        assert provenance["mapping"]["split_at"].endswith("Relu:0")
    assert meta.parity["composite_vs_split"] <= SPLIT_TOLERANCE
    assert all(v <= FP32_TOLERANCE for k, v in meta.parity["max_abs_diff"].items() if "fp16" not in k)


def test_heads_with_other_widths_and_more_layers(packages: dict[str, Path]) -> None:
    """Dense(32/48/64), 12-24 LSTM units, three LSTMs and an extra Dense: all read from the file."""
    layers = load_package(packages["kecam_dense64_deep.h5"]).meta.provenance["mapping"]["layers"]
    assert [line.split(": ")[1] for line in layers[1:]] == [
        "Dense(64, relu)", "Bidirectional(LSTM(24, return_sequences=True))",
        "Bidirectional(LSTM(16, return_sequences=True))",
        "Bidirectional(LSTM(16, return_sequences=False))", "Dense(64, relu)", "Dense(60, relu)"]
    widths = {s: load_package(packages[s]).meta.embedding_dim for s in KERAS_CASES}
    assert widths == {"kecam_s_like.h5": 32, "keras_app.h5": 48, "kecam_dense64_deep.h5": 64}
    assert load_package(packages["keras_app.h5"]).meta.window == 20


def test_keras_zip_format_maps_like_h5() -> None:
    """A .keras file (weights by class-named groups and position) maps to the same model."""
    from fsexport.importers.keras_file import KerasFile
    from fsexport.importers.keras_model import read_keras_model

    models = {}
    for suffix in ("h5", "keras"):
        with KerasFile(FIXTURES / f"kecam_s_like.{suffix}") as kfile:
            models[suffix] = read_keras_model(kfile, 30.0).model
    h5_state, zip_state = (m.state_dict() for m in models.values())
    assert h5_state.keys() == zip_state.keys()
    assert all(torch.equal(h5_state[k], zip_state[k]) for k in h5_state)
    reference = _reference("kecam_s_like.keras")
    frames = seeded_frames("kecam_s_like", 2, 60, 48)
    with torch.no_grad():
        positions = models["keras"](torch.from_numpy(frames)).numpy()
    assert np.abs(positions - reference["positions_b2"]).max() <= FP32_TOLERANCE


def test_fp16_graphs_run_and_their_drift_is_recorded(packages: dict[str, Path]) -> None:
    for source in ("kecam_s_like.h5", "kecam_s_like.onnx"):
        parity = load_package(packages[source]).meta.parity
        for kind in ("encoder", "head", "model"):
            diff = parity["max_abs_diff"][f"{kind}.fp16.onnx"]
            assert diff is not None and 0 < diff < 0.05, (source, kind, diff)
    # A head written with Loops (TensorFlow's LSTM with recurrent dropout) stays float32, said so.
    loop = load_package(packages["kecam_dense64_deep.onnx"]).meta.parity
    # float32 as it is: the same as the original up to batching's rounding (one window at a
    # time in the original, two in one call of the head), far below fp16's drift
    assert "Loop" in loop["notes"]["head.fp16.onnx"] and loop["max_abs_diff"]["head.fp16.onnx"] < 1e-6


def test_onnx_graphs_keep_the_package_contract(packages: dict[str, Path]) -> None:
    package = packages["kecam_dense64_deep.onnx"]
    for name, in_type in [("encoder.onnx", "uint8"), ("model.onnx", "uint8"), ("head.onnx", "float")]:
        session = ort.InferenceSession(str(package / name), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == f"tensor({in_type})"
        assert session.get_outputs()[0].type == "tensor(float)"
    x = np.random.default_rng(0).integers(0, 256, (3, 45, 71, 3), dtype=np.uint8)
    assert _run(package / "encoder.onnx", x).shape == (3, 64)


def test_onnx_exported_from_pytorch_imports_too(tmp_path: Path) -> None:
    """A seed-contract graph from torch.onnx (reshape by the frames' shape, ONNX LSTM ops)."""
    from fsexport.model import create_model
    from fsexport.variants import get_variant

    model = create_model(get_variant("tiny").with_overrides(window=12), seed=3)
    with torch.no_grad():
        model.head.fc.bias.fill_(0.5)
    source = tmp_path / "torch_seed.onnx"
    example = torch.rand(1, 12, 64, 64, 3) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy exporter and tracer notices
        torch.onnx.export(model, (example,), str(source), input_names=["input"],
                          output_names=["out"], dynamic_axes={"input": {0: "B"}, "out": {0: "B"}},
                          opset_version=17, dynamo=False)
    package = _import(source, tmp_path, fp16=False)
    frames = np.random.default_rng(5).integers(0, 256, (2, 12, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model(torch.from_numpy(frames)).numpy()
        embeddings = model.encoder(torch.from_numpy(frames.reshape(24, 64, 64, 3))).numpy()
    assert np.abs(_run(package / "model.onnx", frames) - expected).max() <= FP32_TOLERANCE
    assert np.abs(_run(package / "encoder.onnx", frames.reshape(24, 64, 64, 3))
                  - embeddings).max() <= FP32_TOLERANCE
    assert load_package(package).meta.embedding_dim == 256


def test_split_at_overrides_and_bad_names_are_one_line_errors(packages: dict[str, Path],
                                                             tmp_path: Path) -> None:
    source = FIXTURES / "kecam_s_like.onnx"
    found = load_package(packages["kecam_s_like.onnx"]).meta.provenance["mapping"]["split_at"]
    before = found.replace("/Relu:0", "/BiasAdd:0")  # Dense before its ReLU: also a cut
    path = _import(source, tmp_path, fp16=False, split_at=before)
    meta = load_package(path).meta
    assert meta.provenance["mapping"] == {**meta.provenance["mapping"], "split_at": before,
                                          "split": "--split-at"}
    runner = CliRunner()
    for name, fragment in [("no_such_tensor", "no such tensor"),
                           ("model_1/time_distributed/Reshape:0", "not 2-D")]:
        out = runner.invoke(fsexport_main, ["import", str(source), "-o", str(tmp_path), "--force",
                                            "--no-default", "--split-at", name])
        assert out.exit_code == 4, out.output
        error = out.output.strip().splitlines()[-1]  # after the "read" progress line
        assert error.startswith("fsexport: error: ") and fragment in error, out.output


def _edited_copy(tmp_path: Path, source: str, edit) -> Path:
    """A copy of a fixture whose model_config was changed by edit(config)."""
    target = tmp_path / source
    shutil.copy(FIXTURES / source, target)
    with h5py.File(target, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return target


def _layer(config: dict, class_name: str, index: int = 0) -> dict:
    return [layer for layer in config["config"]["layers"] if layer["class_name"] == class_name][index]


def _backbone_layers(config: dict) -> list[dict]:
    per_frame = _layer(config, "TimeDistributed")["config"]["layer"]["config"]["layers"]
    return [layer for layer in per_frame if layer["class_name"] == "Functional"][0]["config"]["layers"]


def _set_recurrent_activation(config: dict) -> None:
    _layer(config, "Bidirectional", 1)["config"]["layer"]["config"]["recurrent_activation"] = "hard_sigmoid"


def _set_output_width(config: dict) -> None:
    layers = config["config"]["layers"]
    layers[-1]["config"]["units"] = 30


def _unknown_backbone_layer(config: dict) -> None:
    layer = [entry for entry in _backbone_layers(config) if entry["class_name"] == "Activation"][3]
    layer["class_name"] = "LayerNormalization"


REFUSED = [
    ("gru_head.h5", None, "'bidirectional_8' (Bidirectional(GRU)): GRU is not supported"),
    ("kecam_s_like.h5", _set_recurrent_activation, "'bidirectional_1' (Bidirectional(LSTM)): "
                                                   "recurrent_activation 'hard_sigmoid'"),
    ("kecam_s_like.h5", _set_output_width, "'dense_1' (Dense): kernel (32, 60) does not take"),
    ("keras_app.h5", _unknown_backbone_layer, "(LayerNormalization) in backbone 'efficientnetv2-b0': "
                                              "does not fit an EfficientNetV2 block"),
]


@pytest.mark.parametrize("source, edit, fragment", REFUSED)
def test_unfit_layer_is_named_in_one_line(source: str, edit, fragment: str, tmp_path: Path) -> None:
    path = FIXTURES / source if edit is None else _edited_copy(tmp_path, source, edit)
    out = CliRunner().invoke(fsexport_main, ["import", str(path), "-o", str(tmp_path), "--no-default"])
    assert out.exit_code == 4, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("read"), out.output  # progress, then the error
    assert lines[1].startswith("fsexport: error: ") and fragment in lines[1], lines[1]
    assert not list(tmp_path.glob("*.fsmodel"))


def _truncated(tmp_path: Path, source: str) -> Path:
    data = (FIXTURES / source).read_bytes()
    target = tmp_path / f"cut_{source}"
    target.write_bytes(data[: len(data) // 3])
    return target


def _weights_only(tmp_path: Path, source: str) -> Path:
    target = tmp_path / "weights_only.h5"
    shutil.copy(FIXTURES / source, target)
    with h5py.File(target, "r+") as f:
        del f.attrs["model_config"]
    return target


BAD_FILES = [
    (lambda t: _truncated(t, "kecam_s_like.h5"), 4, "not a readable Keras model file"),
    (lambda t: _truncated(t, "kecam_s_like.keras"), 4, "not a readable Keras model file"),
    (lambda t: _truncated(t, "kecam_s_like.onnx"), 4, "not a valid ONNX model"),
    (lambda t: _weights_only(t, "kecam_s_like.h5"), 4, "no model_config"),
    (lambda t: (t / "noise.h5").write_bytes(os.urandom(4096)) and t / "noise.h5", 4,
     "not a Keras model file"),
    (lambda t: (t / "notes.txt").write_text("x") and t / "notes.txt", 2, "unknown model file type"),
    (lambda t: t / "missing.h5", 2, "file not found"),
]


@pytest.mark.parametrize("make, code, fragment", BAD_FILES)
def test_wrong_or_truncated_files_are_one_line_errors(make, code: int, fragment: str,
                                                      tmp_path: Path) -> None:
    path = make(tmp_path)
    out = CliRunner().invoke(fsexport_main, ["import", str(path), "-o", str(tmp_path), "--no-default"])
    assert out.exit_code == code, out.output
    error = [line for line in out.output.splitlines() if line.startswith("fsexport: error:")]
    assert len(error) == 1 and fragment in error[0], out.output
    assert "Traceback" not in out.output


def test_onnx_outside_the_seed_contract_is_refused(tmp_path: Path, built_tiny_package: Path) -> None:
    """A package's own composite takes uint8: not the seed contract's float32 frames."""
    out = CliRunner().invoke(fsexport_main, ["import", str(built_tiny_package / "model.onnx"),
                                             "-o", str(tmp_path), "--no-default"])
    assert out.exit_code == 4 and "seed contract" in out.output


def test_existing_package_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "keras_app.fsmodel").mkdir()
    out = CliRunner().invoke(fsexport_main, ["import", str(FIXTURES / "keras_app.h5"),
                                             "-o", str(tmp_path), "--no-default"])
    assert out.exit_code == 5 and "--force" in out.output and "read" not in out.output


def _tf_python() -> str | None:
    """An interpreter with TensorFlow: $FSEXPORT_TF_PYTHON, or this one if it has it."""
    if os.environ.get("FSEXPORT_TF_PYTHON"):
        return os.environ["FSEXPORT_TF_PYTHON"]
    return "" if importlib.util.find_spec("tensorflow") is not None else None


@pytest.mark.skipif(_tf_python() is None, reason="needs TensorFlow (fsexport[keras-fixtures]) "
                                                 "here or in $FSEXPORT_TF_PYTHON")
def test_check_keras_runs_the_original_live(tmp_path: Path) -> None:
    path = _import(FIXTURES / "kecam_dense64_deep.h5", tmp_path, fp16=False, check_keras=True,
                   tf_python=_tf_python() or None)
    result = load_package(path).meta.provenance["parity_vs_keras"]
    assert set(result) == {f"batch_{b}" for b in BATCHES}
    for row in result.values():
        assert row["max_abs_diff"] <= allowed_diff(FP32_TOLERANCE, row["output_scale"])


@pytest.mark.skipif(_tf_python() is not None, reason="TensorFlow is installed here")
def test_check_keras_without_tensorflow_names_the_extra(tmp_path: Path) -> None:
    out = CliRunner().invoke(fsexport_main, ["import", str(FIXTURES / "keras_app.h5"), "-o",
                                             str(tmp_path), "--no-default", "--check-keras"])
    assert out.exit_code == 6 and "fsexport[keras-fixtures]" in out.output
