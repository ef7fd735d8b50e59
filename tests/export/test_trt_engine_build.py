"""Engine building against a recording stand-in for the TensorRT 10 / 11 Python APIs.

The stand-in has the enums each major version really has (11 has no BuilderFlag.FP16), so the
test fails if the builder asks TensorRT 11 for a precision flag or parses the wrong ONNX file.
"""
from __future__ import annotations

import enum
import shutil
import sys
import types
from pathlib import Path

import pytest

from fsexport.trt import engine_build
from fsrun.backends.trt_naming import engine_filename, timing_cache_filename
from fsrun.errors import MissingDependencyError, ModelError

GPU = "NVIDIA H100 80GB HBM3"


def fake_tensorrt(version: str, calls: list) -> types.ModuleType:
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     {"STRONGLY_TYPED": 0})
    flags = {"TF32": 0} if major >= 11 else {"FP16": 0, "TF32": 1, "STRONGLY_TYPED_X": 2}
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", flags)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})

    class Logger:
        WARNING = 2

        def __init__(self, level: int):
            pass

    class Cache:
        def serialize(self) -> bytes:
            return b"timing"

    class Config:
        def __init__(self) -> None:
            self.flags: list = []
            self.profiles: list = []

        def set_memory_pool_limit(self, pool: object, size: int) -> None:
            calls.append(("workspace", size))

        def set_flag(self, flag: object) -> None:
            calls.append(("flag", flag.name))

        def add_optimization_profile(self, profile: object) -> None:
            calls.append(("profile", profile.shapes))

        def create_timing_cache(self, data: bytes) -> Cache:
            calls.append(("timing-cache-in", data))
            return Cache()

        def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> None:
            pass

    class Profile:
        def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
            self.shapes = (name, low, opt, high)

    class Builder:
        def __init__(self, logger: Logger):
            pass

        def create_network(self, flags: int) -> object:
            calls.append(("network-flags", flags))
            return object()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: object, config: Config) -> bytes:
            return b"engine-bytes"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: object, logger: Logger):
            pass

        def parse_from_file(self, path: str) -> bool:
            calls.append(("parse", Path(path).name))
            return True

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    return trt


@pytest.fixture
def package(built_tiny_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "tiny.fsmodel"
    shutil.copytree(built_tiny_package, copy)
    monkeypatch.setattr(engine_build, "gpu_name", lambda device_id=0: GPU)
    return copy


def _use(monkeypatch: pytest.MonkeyPatch, version: str) -> list:
    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, calls))
    return calls


@pytest.mark.parametrize("version, network_flags", [("10.7.0.23", 1), ("11.1.0", 0)])
def test_fp16_engines_come_from_the_fp16_onnx(package: Path, monkeypatch: pytest.MonkeyPatch,
                                              version: str, network_flags: int) -> None:
    calls = _use(monkeypatch, version)
    paths = engine_build.build_engines(package, precisions=("fp16",), max_batch=8,
                                       max_frame=(720, 1280))
    assert [p.name for p in paths] == [engine_filename(g, GPU, version, "fp16")
                                       for g in ("encoder", "head")]
    assert all(p.read_bytes() == b"engine-bytes" for p in paths)
    assert [c[1] for c in calls if c[0] == "parse"] == ["encoder.fp16.onnx", "head.fp16.onnx"]
    assert {c[1] for c in calls if c[0] == "network-flags"} == {network_flags}
    assert not [c for c in calls if c[0] == "flag"]  # strongly typed: no precision flags
    profiles = [c[1] for c in calls if c[0] == "profile"]
    assert profiles[0] == ("frames", (1, 16, 16, 3), (4, 720, 1280, 3), (8, 720, 1280, 3))
    assert profiles[1][0] == "embeddings" and profiles[1][3] == (8, 60, 256)
    cache = package / "engines" / timing_cache_filename(GPU, version)
    assert cache.read_bytes() == b"timing"
    assert not list((package / "engines").glob(".*.tmp"))


def test_trt10_without_fp16_graphs_uses_the_fp16_builder_flag(
        package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = engine_build.precision_plan("10.7.0", "fp16", has_fp16_graph=False)
    assert plan == engine_build.PrecisionPlan("fp32", (), ("FP16",))
    with pytest.raises(ModelError, match="no fp16 graphs"):
        engine_build.precision_plan("11.0.1", "fp16", has_fp16_graph=False)
    with pytest.raises(MissingDependencyError):
        engine_build.precision_plan("8.6.1", "fp32", has_fp16_graph=True)
    assert engine_build.precision_plan("12.0", "fp32", True).network_flags == ()  # 11 rules


def test_existing_engines_are_kept_unless_forced(package: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _use(monkeypatch, "10.7.0")
    engine_build.build_engines(package, precisions=("fp32",), graphs=("head",))
    assert [c[1] for c in calls if c[0] == "parse"] == ["head.onnx"]
    calls.clear()
    engine_build.build_engines(package, precisions=("fp32",), graphs=("head",))
    assert not [c for c in calls if c[0] == "parse"]
    engine_build.build_engines(package, precisions=("fp32",), graphs=("head",), force=True)
    assert [c[1] for c in calls if c[0] == "parse"] == ["head.onnx"]
    assert ("timing-cache-in", b"timing") in calls  # the second build reuses the timing cache


def test_build_engines_without_tensorrt_names_the_extra(package: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError) as info:
        engine_build.build_engines(package)
    assert info.value.extra == "fsexport[tensorrt]"
