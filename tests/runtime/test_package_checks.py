"""The package as fsrun reads it: meta.json strict and portable, graph headers read without ONNX
Runtime agreeing with what ONNX Runtime sees, and the model hash covering meta.json."""
from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from fsrun.config import demo_model_dir
from fsrun.model.onnx_header import OnnxHeaderError, read_header
from fsrun.model.package import load_package

ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16"}


def test_bundled_meta_is_strict_json_without_the_makers_folders() -> None:
    text = (demo_model_dir() / "meta.json").read_text(encoding="utf-8")
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert '"/' not in text, "an absolute path in the bundled meta.json"


@pytest.mark.parametrize("graph", ["encoder.onnx", "head.onnx"])
def test_header_matches_onnx_runtime(graph: str) -> None:
    path = demo_model_dir() / graph
    header = read_header(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    seen = [(t.name, ORT_TYPES[t.type], tuple(t.shape)) for t in session.get_inputs()]
    assert [(d.name, d.dtype, d.shape) for d in header.inputs] == seen
    seen = [(t.name, ORT_TYPES[t.type], tuple(t.shape)) for t in session.get_outputs()]
    assert [(d.name, d.dtype, d.shape) for d in header.outputs] == seen


def test_header_of_something_else_is_an_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((demo_model_dir() / "head.onnx").read_bytes()[:5000])
    with pytest.raises(OnnxHeaderError):
        read_header(cut)
    text = tmp_path / "text.onnx"
    text.write_text("not a model at all\n")
    with pytest.raises(OnnxHeaderError):
        read_header(text)


def test_model_hash_covers_meta_json(demo_package: Path, tmp_path: Path) -> None:
    import shutil  # noqa: PLC0415

    copy = tmp_path / "copy.fsmodel"
    shutil.copytree(demo_package, copy)
    assert load_package(copy).model_hash == load_package(demo_package).model_hash
    meta = json.loads((copy / "meta.json").read_text())
    meta["provenance"]["note"] = "edited"
    (copy / "meta.json").write_text(json.dumps(meta))
    assert load_package(copy).model_hash != load_package(demo_package).model_hash
