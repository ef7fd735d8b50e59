"""fsrun --precision: auto picks int8 on the CPU when the package has it, int8 pairs with the fp32
head, a missing precision is a one-line error, and the precision reaches the report, the
funscript metadata and the embedding cache key."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fsrun import cli
from fsrun.files.funscript import read_funscript
from fsrun.run.pipeline import process_video
from tests.split_options import split

from .recording import RecordingFactory
from .videos import write_cfr


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cfr(tmp_path_factory.mktemp("precision") / "clip.mp4", 30, 90)


def _run(video: Path, package: Path, tmp_path: Path, precision: str, **kwargs: Any) -> Any:
    factory = RecordingFactory()
    result = process_video(*split(video=video, model=package, backend="cpu",
                                  precision=precision, output=tmp_path / f"{precision}.fs",
                                  force=True, quiet=True, backend_factory=factory,
                                  cache_dir=tmp_path / "cache", **kwargs))
    return result, factory.started


@pytest.mark.parametrize("precision", ["int8", "auto"])
def test_int8_encoder_pairs_with_the_fp32_head(video: Path, demo_int8_package: Path,
                                               tmp_path: Path, precision: str) -> None:
    result, graphs = _run(video, demo_int8_package, tmp_path, precision)
    assert graphs == ["head.onnx", "encoder.int8.onnx"]
    assert result.report["precision"] == "int8"
    metadata = read_funscript(result.output)["metadata"]
    assert metadata["options"]["precision"] == "int8"


def test_auto_without_int8_and_explicit_fp32_run_the_fp32_encoder(
        video: Path, demo_package: Path, demo_int8_package: Path, tmp_path: Path) -> None:
    for package, precision in ((demo_package, "auto"), (demo_int8_package, "fp32")):
        result, graphs = _run(video, package, tmp_path, precision)
        assert graphs == ["head.onnx", "encoder.onnx"]
        assert result.report["precision"] == "fp32"


def test_precision_is_part_of_the_cache_key(video: Path, demo_int8_package: Path,
                                            tmp_path: Path) -> None:
    first, graphs = _run(video, demo_int8_package, tmp_path, "int8")
    assert "encoder.int8.onnx" in graphs and not first.report["cache_hit"]
    again, graphs = _run(video, demo_int8_package, tmp_path, "int8")
    assert again.report["cache_hit"] and graphs == ["head.onnx"]
    fp32, graphs = _run(video, demo_int8_package, tmp_path, "fp32")
    assert not fp32.report["cache_hit"] and "encoder.onnx" in graphs
    folders = list((tmp_path / "cache" / "embeddings").iterdir())
    keys = {json.loads((f / "state.json").read_text())["key"]["precision"] for f in folders}
    assert len(folders) == 2 and keys == {"int8", "fp32"}


def test_int8_from_a_package_without_it_is_a_one_line_error(video: Path, demo_package: Path,
                                                            tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    code = cli.main([str(video), "--model", str(demo_package), "--precision", "int8",
                     "--backend", "cpu", "-o", str(tmp_path / "o.funscript")])
    err = capsys.readouterr().err.strip()
    assert code == 4
    assert len(err.splitlines()) == 1 and "has no int8" in err and "fsexport quantize" in err
    assert not (tmp_path / "o.funscript").exists()
