"""fsexport build on the tiny variant: meta.json, parity, composite == split, bad inputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from fsexport.build import BuildConfig, build_package
from fsexport.cli import main as fsexport_main
from fsexport.model import create_model
from fsexport.parity import FP32_TOLERANCE, SPLIT_TOLERANCE
from fsexport.variants import get_variant
from fsrun.config import get_default_model
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package, sha256_file
from tests.runtime.videos import write_cfr


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = _session(path)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_meta_lists_every_file_with_its_sha256(built_tiny_package: Path) -> None:
    meta = json.loads((built_tiny_package / "meta.json").read_text())
    expected_files = {"encoder.onnx", "head.onnx", "model.onnx",
                      "encoder.fp16.onnx", "head.fp16.onnx", "model.fp16.onnx"}
    assert set(meta["files"]) == expected_files
    for name, digest in meta["files"].items():
        assert sha256_file(built_tiny_package / name) == digest
    assert meta["format_version"] == 1
    assert (meta["variant"], meta["backbone"], meta["input_size"]) == ("tiny", "test_efficientnet", 64)
    assert (meta["window"], meta["fps"], meta["embedding_dim"]) == (60, 30.0, 256)
    assert meta["trained"] is False
    assert {"torch", "timm", "onnx", "onnxruntime", "fsexport"} <= set(meta["exporter"])
    load_package(built_tiny_package)  # verifies hashes through the runtime's own loader


def test_parity_is_recorded_within_tolerance(built_tiny_package: Path) -> None:
    parity = json.loads((built_tiny_package / "meta.json").read_text())["parity"]
    for name in ("encoder.onnx", "head.onnx", "model.onnx"):
        assert parity["max_abs_diff"][name] <= FP32_TOLERANCE
    for name in ("encoder.fp16.onnx", "head.fp16.onnx", "model.fp16.onnx"):
        diff = parity["max_abs_diff"][name]
        assert diff is None or diff < 0.05, f"{name}: fp16 diff {diff}"
    assert parity["composite_vs_split"] <= SPLIT_TOLERANCE


def test_graph_contracts(built_tiny_package: Path) -> None:
    """uint8 [N, H, W, 3] with dynamic N, H, W in; float32 out; fp16 keeps the same IO."""
    for name, in_type, out_type in [("encoder.onnx", "uint8", "float32"),
                                    ("encoder.fp16.onnx", "uint8", "float32"),
                                    ("head.onnx", "float32", "float32"),
                                    ("head.fp16.onnx", "float32", "float32"),
                                    ("model.onnx", "uint8", "float32")]:
        session = _session(built_tiny_package / name)
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        assert inp.type == f"tensor({in_type.replace('float32', 'float')})", name
        assert out.type == f"tensor({out_type.replace('float32', 'float')})", name
    encoder = built_tiny_package / "encoder.onnx"
    for shape in [(1, 241, 317, 3), (5, 64, 64, 3), (2, 1080 // 8, 1920 // 8, 3)]:
        x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        assert _run(encoder, x).shape == (shape[0], 256)
    model = onnx.load(str(built_tiny_package / "encoder.onnx"))
    ops = [node.op_type for node in model.graph.node]
    assert ops.index("Cast") < ops.index("Resize"), "uint8 must be cast before the resize"


def test_composite_equals_head_of_encoder_on_fresh_input(built_tiny_package: Path) -> None:
    frames = np.random.default_rng(7).integers(0, 256, (2, 60, 45, 81, 3), dtype=np.uint8)
    embeddings = _run(built_tiny_package / "encoder.onnx", frames.reshape(120, 45, 81, 3))
    split = _run(built_tiny_package / "head.onnx", embeddings.reshape(2, 60, -1))
    composite = _run(built_tiny_package / "model.onnx", frames)
    assert composite.shape == (2, 60)
    np.testing.assert_allclose(composite, split, atol=SPLIT_TOLERANCE, rtol=0)


def test_flatten_is_channels_last_like_keras() -> None:
    model = create_model(get_variant("tiny"))
    frames = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        maps = model.encoder.backbone.forward_features(model.encoder.preprocess(frames))[0]
        flat = model.encoder.features(frames)[0]
    c, h, w = maps.shape
    for y, x, ch in [(0, 0, 1), (1, 0, 5), (h - 1, w - 1, c - 1), (0, 1, 0)]:
        assert flat[(y * w + x) * c + ch] == maps[ch, y, x]


def test_trained_checkpoint_is_what_the_graphs_compute(tmp_path: Path) -> None:
    variant = get_variant("tiny")
    trained = create_model(variant, seed=123)
    with torch.no_grad():
        trained.head.fc.bias.fill_(0.5)  # nonzero positions through the final ReLU
    checkpoint = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(checkpoint))
    # What `fsexport train` writes beside a checkpoint: the maker's folders, a NaN metric.
    (tmp_path / "weights.json").write_text(json.dumps(
        {"epochs": 3, "options": {"data": "/home/maker/private/clips", "name": "checkpoint"},
         "frame_stage": {"val_place_error": float("nan")}}))
    result = build_package(BuildConfig(variant="tiny", output=tmp_path, checkpoint=checkpoint,
                                       fp16=False, set_default=False), log=lambda _: None)
    assert result.meta.trained is True
    assert result.meta.provenance["checkpoint"]["sha256"] == sha256_file(checkpoint)
    text = (result.path / "meta.json").read_text()
    assert "/home/maker" not in text and "private" not in text
    meta = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in meta.json"))
    assert meta["provenance"]["training"]["options"]["data"] == "clips"
    assert meta["provenance"]["training"]["frame_stage"]["val_place_error"] is None
    frames = np.random.default_rng(1).integers(0, 256, (1, 60, 70, 90, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = trained(torch.from_numpy(frames)).numpy()
    actual = _run(result.path / "model.onnx", frames)
    assert float(expected.max()) > 0.1
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


def test_torch_checkpoint_loads_weights_only_and_refuses_pickled_objects(tmp_path: Path) -> None:
    state = create_model(get_variant("tiny"), seed=5).state_dict()
    good = tmp_path / "good.pt"
    torch.save(state, good)
    build_package(BuildConfig(variant="tiny", output=tmp_path, name="good.fsmodel", checkpoint=good,
                              fp16=False, set_default=False), log=lambda _: None)
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": state, "payload": Path("/etc")}, evil)  # an arbitrary object
    runner = CliRunner()
    out = runner.invoke(fsexport_main, ["build", "--variant", "tiny", "-o", str(tmp_path),
                                        "--checkpoint", str(evil), "--no-default", "--no-fp16"])
    assert out.exit_code == 4
    assert "not a loadable weights-only checkpoint" in out.output


def test_mismatched_checkpoint_names_the_keys(tmp_path: Path) -> None:
    state = create_model(get_variant("tiny")).state_dict()
    del state["head.fc.weight"]
    state["head.extra.weight"] = torch.zeros(3)
    state["encoder.fc.bias"] = torch.zeros(7)
    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(bad))
    out = CliRunner().invoke(fsexport_main, ["build", "--variant", "tiny", "-o", str(tmp_path),
                                             "--checkpoint", str(bad), "--no-default"])
    assert out.exit_code == 4
    message = out.output.strip().splitlines()[-1]
    assert "missing keys: head.fc.weight" in message
    assert "unexpected keys: head.extra.weight" in message
    assert "encoder.fc.bias (7,) != (256,)" in message
    assert not (tmp_path / "tiny.fsmodel").exists()


def test_unknown_variant_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fsexport.cli", "build", "--variant", "effv9",
                           "-o", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("fsexport: error: unknown variant 'effv9'; valid variants: "
                                   "tiny, effv2s, effv2m, effv2l, tiny-x2, mnv3s")
    assert "Traceback" not in proc.stderr


def test_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    target = tmp_path / "tiny.fsmodel"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    args = ["build", "--variant", "tiny", "-o", str(tmp_path), "--no-fp16"]
    out = CliRunner().invoke(fsexport_main, args)
    assert out.exit_code == 5 and "use --force" in out.output
    assert (target / "mine.txt").read_text() == "keep me"
    out = CliRunner().invoke(fsexport_main, args + ["--force"])
    assert out.exit_code == 0, out.output
    assert not (target / "mine.txt").exists()
    assert load_package(target).meta.variant == "tiny"
    assert get_default_model() == target.resolve()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "tiny.fsmodel"]
    assert leftovers == []


def test_no_default_leaves_the_default_alone(tmp_path: Path) -> None:
    out = CliRunner().invoke(fsexport_main, ["build", "--variant", "tiny", "-o", str(tmp_path),
                                             "--no-fp16", "--no-default", "--window", "30",
                                             "--fps", "24", "--no-composite"])
    assert out.exit_code == 0, out.output
    assert get_default_model() is None
    meta = load_package(tmp_path / "tiny.fsmodel").meta
    assert (meta.window, meta.fps) == (30, 24.0)
    assert sorted(meta.files) == ["encoder.onnx", "head.onnx"]  # --no-composite: no model.onnx
    assert not (tmp_path / "tiny.fsmodel" / "model.onnx").exists()
    assert _session(tmp_path / "tiny.fsmodel" / "head.onnx").get_outputs()[0].shape[1] == 30


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["effv2s", "effv2m", "effv2l"])
def test_real_variants_build_and_match(variant: str, tmp_path: Path) -> None:
    result = build_package(BuildConfig(variant=variant, output=tmp_path, set_default=False))
    parity = result.meta.parity["max_abs_diff"]
    assert all(parity[n] <= FP32_TOLERANCE for n in ("encoder.onnx", "head.onnx", "model.onnx"))
    assert result.meta.input_size == get_variant(variant).input_size


def test_variant_backbone_args_reach_timm(tmp_path: Path) -> None:
    # tiny-x2 is test_efficientnet with every channel count doubled (timm channel_multiplier)
    base, wide = create_model(get_variant("tiny")), create_model(get_variant("tiny-x2"))
    assert wide.encoder.backbone.num_features == 2 * base.encoder.backbone.num_features == 512
    assert wide.encoder.fc.in_features == 2 * base.encoder.fc.in_features
    result = build_package(BuildConfig(variant="tiny-x2", output=tmp_path, fp16=False,
                                       set_default=False, composite=False), log=lambda _: None)
    assert load_package(result.path).meta.variant == "tiny-x2"


def test_build_int8_end_to_end_on_the_tiny_variant(tmp_path: Path, capsys) -> None:
    """`fsexport build --int8` as README shows it, then fsrun on the int8 encoder; --output
    that ends in .fsmodel names the package itself."""
    from fsrun.cli import main as fsrun_main  # noqa: PLC0415

    target = tmp_path / "out" / "t.fsmodel"
    out = CliRunner().invoke(fsexport_main, ["build", "--variant", "tiny", "--output", str(target),
                                             "--int8", "--no-default", "--no-fp16",
                                             "--no-composite"])
    assert out.exit_code == 0, out.output
    assert "drift   int8 vs fp32 on" in out.output and "positions differ by" in out.output
    assert sorted(p.name for p in target.iterdir()) == [
        "encoder.int8.onnx", "encoder.onnx", "head.onnx", "meta.json"]
    meta = load_package(target).meta
    assert meta.quantization["int8"]["sha256"] == meta.files["encoder.int8.onnx"]
    video = write_cfr(tmp_path / "clip.mp4", 30, 40)
    capsys.readouterr()
    assert fsrun_main([str(video), "--model", str(target), "--precision", "int8", "--no-cache",
                       "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["precision"] == "int8" and report["frames"] == 40
    assert read_funscript(video.with_suffix(".funscript"))["actions"]
