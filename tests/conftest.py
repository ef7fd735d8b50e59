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


@pytest.fixture(scope="session")
def axis_packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(stroke-only package, stroke+roll package): the tiny variant, the same encoder and LSTMs,
    the two-axis head's stroke outputs the one-axis head's Dense rows (its roll rows others)."""
    import torch  # noqa: PLC0415

    from fsexport.build import BuildConfig, build_package_from_model  # noqa: PLC0415
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415

    variant = get_variant("tiny")
    one = create_model(variant, seed=3)
    two = create_model(variant, seed=4, axes=2)
    state = {k: v for k, v in one.state_dict().items() if not k.startswith("head.fc.")}
    two.load_state_dict(state, strict=False)
    with torch.no_grad():
        fc1, fc2 = one.head.fc, two.head.fc
        fc2.weight[0::2] = fc1.weight  # output w * C + c: c = 0 is the stroke
        fc2.bias[0::2] = fc1.bias
        fc2.bias[1::2] = 0.5  # the roll inside its range, so it moves
    two.axis_names = ("stroke", "roll")
    out = tmp_path_factory.mktemp("axis-packages")
    paths = []
    for model, name in ((one, "one.fsmodel"), (two, "two.fsmodel")):
        config = BuildConfig(variant="tiny", output=out, name=name, set_default=False,
                             fp16=False, composite=False)
        paths.append(build_package_from_model(model, variant, config, trained=False,
                                              log=lambda _: None).path)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def roll_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s clip with a tilting target and its stroke and roll truth."""
    folder = tmp_path_factory.mktemp("roll-clip")
    from fsrun.groundtruth.seeds import seed  # noqa: PLC0415
    from fsrun.groundtruth.synth.cli import write_clips  # noqa: PLC0415

    [clip] = write_clips(folder, 1, 4.0, ["30"], ["h264"], seed("tests-studio", 500), (96, 72),
                         axes=("stroke", "roll"))
    return clip.video
