"""GPU checks: NVDEC against PyAV, ORT CUDA and native TensorRT against ORT CPU.

They skip without an NVIDIA GPU and fail with FAIL_WITHOUT_CUDA=1 (see tests/conftest.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsrun.backends.base import BackendOptions
from fsrun.crop import Crop

pytestmark = pytest.mark.needs_cuda


class EveryFrame:
    def accept(self, pts_s: float) -> bool:
        return True


def _clip(path: Path) -> Path:
    from tests.runtime.videos import write_frames  # noqa: PLC0415

    base = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return write_frames(path, [np.roll(base, i, axis=1) for i in range(40)],
                        [i / 30 for i in range(40)], 30, options={"bf": "2", "g": "8", "crf": "10"})


def _host(batch) -> np.ndarray:
    from fsrun.gpu import as_device_array, get_runtime, to_host

    return to_host(get_runtime(0), as_device_array(batch.frames))


@pytest.mark.parametrize("crop", [None, Crop(8, 4, 32, 40)])
def test_nvdec_matches_pyav(tmp_path: Path, crop: Crop | None) -> None:
    from fsrun.sources.nvdec_source import NvdecSource
    from fsrun.sources.pyav_source import PyAvSource

    clip = _clip(tmp_path / "clip.mp4")
    with PyAvSource(clip, crop=crop) as cpu:
        cpu_batches = list(cpu.batches(EveryFrame(), 16))
    with NvdecSource(clip, crop=crop) as gpu:
        gpu_batches = list(gpu.batches(EveryFrame(), 16))
    assert all(b.on_device for b in gpu_batches)
    cpu_frames = np.concatenate([b.frames for b in cpu_batches]).astype(np.int16)
    gpu_frames = np.concatenate([_host(b) for b in gpu_batches]).astype(np.int16)
    np.testing.assert_array_equal(np.concatenate([b.pts_ms for b in gpu_batches]),
                                  np.concatenate([b.pts_ms for b in cpu_batches]))
    assert gpu_frames.shape == cpu_frames.shape
    assert np.abs(gpu_frames - cpu_frames).mean() < 3.0  # YUV->RGB kernels differ slightly


def _frames(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)


def test_ort_cuda_encoder_matches_cpu(demo_package: Path) -> None:
    from fsrun.backends.ort_cpu import OrtCpuBackend
    from fsrun.backends.ort_cuda import OrtCudaBackend

    onnx_path = demo_package / "encoder.onnx"
    frames = _frames()
    expected = OrtCpuBackend(onnx_path, BackendOptions()).run(frames)
    with OrtCudaBackend(onnx_path, BackendOptions()) as backend:
        np.testing.assert_allclose(backend.run(frames), expected, atol=2e-3, rtol=2e-3)


def test_ort_cuda_takes_device_input_without_host_copies(demo_package: Path) -> None:
    from fsrun.backends.ort_cuda import OrtCudaBackend
    from fsrun.gpu import get_runtime, to_device

    frames = _frames()
    device = to_device(get_runtime(0), frames)
    with OrtCudaBackend(demo_package / "encoder.onnx", BackendOptions()) as backend:
        from_device = backend.run(device)
        from_host = backend.run(frames)
    np.testing.assert_allclose(from_device, from_host, atol=1e-5)


@pytest.mark.needs_trt
def test_trt_native_matches_ort_cpu(demo_package: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    import shutil

    from fsexport.trt import build_engines
    from fsrun.backends.ort_cpu import OrtCpuBackend
    from fsrun.backends.trt_native import TrtNativeBackend

    package = tmp_path / "tiny.fsmodel"
    shutil.copytree(demo_package, package)
    build_engines(package, precisions=("fp32",), max_batch=8, max_frame=(96, 128))
    frames = _frames(10)  # larger than max_batch: split into two runs
    expected = OrtCpuBackend(package / "encoder.onnx", BackendOptions()).run(frames)
    with TrtNativeBackend(package / "encoder.onnx", BackendOptions(precision="fp32")) as backend:
        np.testing.assert_allclose(backend.run(frames), expected, atol=5e-3, rtol=5e-3)
