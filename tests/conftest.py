"""Shared fixtures: a tiny model package built once per session, isolated user folders."""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

from tests.seeds import register_all

register_all()  # every package's seed ranges, before any test module takes a seed


@functools.lru_cache(maxsize=1)
def _cuda_available() -> bool:
    """True when a CUDA device answers; any import or driver failure means no."""
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415

        err, count = cudart.cudaGetDeviceCount()
        return int(err) == 0 and count > 0
    except Exception:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """needs_cuda tests skip without a GPU, or fail loudly with FAIL_WITHOUT_CUDA=1."""
    if "needs_cuda" not in item.keywords or _cuda_available():
        return
    if os.environ.get("FAIL_WITHOUT_CUDA") == "1":
        pytest.fail("FAIL_WITHOUT_CUDA=1 but no CUDA device is available")
    pytest.skip("needs an NVIDIA GPU (set FAIL_WITHOUT_CUDA=1 to fail instead)")


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the real ~/.config/fsrun and ~/.cache/fsrun."""
    root = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("FSRUN_CONFIG_DIR", str(root / "config"))
    monkeypatch.setenv("FSRUN_CACHE_DIR", str(root / "cache"))
    monkeypatch.delenv("FSRUN_MODEL", raising=False)


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundled demo package (trained; tiny-x2 @64, fp32 encoder and head), so
    runtime tests need neither torch nor fsexport. Tests that need what `fsexport build` writes
    (model.onnx, fp16 graphs, parity; random weights) use built_tiny_package."""
    from fsrun.config import demo_model_dir  # noqa: PLC0415

    target = tmp_path_factory.mktemp("packages") / "demo.fsmodel"
    shutil.copytree(demo_model_dir(), target)
    return target


@pytest.fixture(scope="session")
def built_tiny_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny (test_efficientnet @64) package with random weights from `fsexport build` (needs
    torch), built once per session."""
    from fsexport.build import BuildConfig, build_package  # noqa: PLC0415

    out = tmp_path_factory.mktemp("packages")
    result = build_package(BuildConfig(variant="tiny", output=out, set_default=False))
    return result.path


def _with_int8(package: Path, target: Path) -> Path:
    """A copy of package with encoder.int8.onnx, calibrated on two short synthetic clips."""
    from fsexport.calibration import CalibrationConfig, SynthClips  # noqa: PLC0415
    from fsexport.quantize import QuantizeConfig, quantize_package  # noqa: PLC0415

    shutil.copytree(package, target)
    calibration = CalibrationConfig(frames=16, synth=SynthClips(count=2, seconds=2.5,
                                                                size=(96, 72)))
    quantize_package(target, QuantizeConfig(calibration=calibration), log=lambda _: None)
    return target


@pytest.fixture(scope="session")
def demo_int8_package(demo_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo package with an int8 encoder (trained weights: a meaningful drift)."""
    return _with_int8(demo_package, tmp_path_factory.mktemp("int8") / "demo8.fsmodel")


@pytest.fixture(scope="session")
def built_tiny_int8_package(built_tiny_package: Path,
                            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built tiny package (with model.onnx, for the baseline) and an int8 encoder."""
    return _with_int8(built_tiny_package, tmp_path_factory.mktemp("int8") / "tiny8.fsmodel")
