"""GPU-path logic that runs without a GPU: imports, missing-library errors, crop arithmetic,
engine naming, codec support rules, packet feeding and TensorRT profiles."""
from __future__ import annotations

import ctypes
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fsrun.backends.base import BackendOptions
from fsrun.backends.trt_naming import (
    engine_filename,
    find_engine,
    gpu_slug,
    list_engines,
    parse_engine_filename,
    timing_cache_filename,
    trt_tag,
)
from fsrun.backends.trt_profiles import (
    ProfileLimits,
    batch_slices,
    check_item_shape,
    input_profile,
    ort_shape_option,
)
from fsrun.errors import InputError, MissingDependencyError
from fsrun.gpu import BatchAssembler, DeviceArray, crop_region
from fsrun.crop import Crop
from fsrun.sources.nvdec_source import codec_support

GPU_MODULES = [
    "fsrun.gpu", "fsrun.gpu.batch", "fsrun.gpu.cuda_runtime", "fsrun.gpu.device_array",
    "fsrun.sources.nvdec_source", "fsrun.backends.ort_cuda", "fsrun.backends.ort_tensorrt",
    "fsrun.backends.trt_native", "fsrun.backends.trt_naming", "fsrun.backends.trt_profiles",
]
BLOCKED = ["cupy", "cuda", "PyNvVideoCodec", "tensorrt", "torch"]


def test_gpu_modules_import_without_their_libraries() -> None:
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}: sys.modules[name] = None\n"
        f"import importlib\nfor m in {GPU_MODULES!r}: importlib.import_module(m)\n"
        "import fsrun.sources.nvdec_source as n, fsrun.backends.trt_native as t\n"
        "assert not n.is_available() and not t.is_available()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_nvdec_without_pynvvideocodec_names_the_gpu_extra(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from fsrun.sources.nvdec_source import NvdecSource, supports

    _block(monkeypatch, "PyNvVideoCodec")
    with pytest.raises(MissingDependencyError) as info:
        NvdecSource(tmp_path / "clip.mp4")
    assert info.value.extra == "fsrun[gpu]"
    ok, reason = supports(tmp_path / "clip.mp4")
    assert not ok and "PyNvVideoCodec" in reason


def test_trt_native_without_tensorrt_names_the_tensorrt_extra(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from fsrun.backends.trt_native import TrtNativeBackend

    _block(monkeypatch, "tensorrt")
    with pytest.raises(MissingDependencyError) as info:
        TrtNativeBackend(tmp_path / "encoder.onnx", BackendOptions())
    assert info.value.extra == "fsrun[tensorrt]"


def test_cuda_runtime_without_cupy_or_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsrun.gpu import cuda_runtime

    _block(monkeypatch, "cupy", "cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart")
    monkeypatch.setattr(cuda_runtime, "_cache", {})
    with pytest.raises(MissingDependencyError) as info:
        cuda_runtime.get_runtime(0)
    assert info.value.extra == "fsrun[gpu]"


@pytest.mark.parametrize("module, cls, extra", [
    ("fsrun.backends.ort_cuda", "OrtCudaBackend", "fsrun[gpu]"),
    ("fsrun.backends.ort_tensorrt", "OrtTensorrtBackend", "fsrun[tensorrt]"),
])
def test_ort_gpu_backends_without_their_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 module: str, cls: str, extra: str) -> None:
    import importlib

    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    backend_cls = getattr(importlib.import_module(module), cls)
    options = BackendOptions(cache_dir=tmp_path, window=60, embedding_dim=256)
    with pytest.raises(MissingDependencyError) as info:
        backend_cls(tmp_path / "encoder.onnx", options)
    assert info.value.extra == extra


class HostRuntime:
    """CudaRuntime stand-in over host memory: the same pointer arithmetic, memmove for copies."""

    name, device_id, stream_handle = "host", 0, 0

    def __init__(self) -> None:
        self.copies = 0

    def alloc(self, nbytes: int) -> tuple[int, object]:
        buffer = np.zeros(nbytes, np.uint8)
        return buffer.ctypes.data, buffer

    def copy_2d(self, dst: int, dst_pitch: int, src: int, src_pitch: int, width_bytes: int,
                height: int) -> None:
        self.copies += 1
        for row in range(height):
            ctypes.memmove(dst + row * dst_pitch, src + row * src_pitch, width_bytes)


class PitchedFrame:
    """An RGB frame stored with padded rows, as NVDEC surfaces are."""

    def __init__(self, rgb: np.ndarray, pad: int = 40):
        h, w, _ = rgb.shape
        self.storage = np.zeros((h, w * 3 + pad), np.uint8)
        self.storage[:, : w * 3] = rgb.reshape(h, w * 3)
        self.__cuda_array_interface__ = {
            "shape": (h, w, 3), "typestr": "|u1", "version": 3,
            "data": (self.storage.ctypes.data, False), "strides": (w * 3 + pad, 3, 1)}


def _read(array: DeviceArray) -> np.ndarray:
    return np.frombuffer(ctypes.string_at(array.ptr, array.nbytes), np.uint8).reshape(array.shape)


@pytest.mark.parametrize("crop", [None, Crop(5, 3, 20, 30), Crop(32, 0, 32, 48)])
def test_batch_assembler_crops_pitched_frames_exactly(crop: Crop | None) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    runtime = HostRuntime()
    assembler = BatchAssembler(runtime, 48, 64, capacity=3, crop=crop)
    batches = []
    for rgb in frames:
        assembler.add(PitchedFrame(rgb))
        if assembler.full:
            batches.append(_read(assembler.take()))
    batches.append(_read(assembler.take()))
    got = np.concatenate(batches)
    want = np.stack(frames)
    if crop is not None:
        want = want[:, crop.y:crop.y + crop.height, crop.x:crop.x + crop.width]
    assert [len(b) for b in batches] == [3, 2]
    np.testing.assert_array_equal(got, want)
    assert runtime.copies == 5  # one 2-D copy per frame, crop included


def test_crop_region_rejects_boxes_outside_and_planar_layouts() -> None:
    frame = PitchedFrame(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="does not fit"):
        crop_region(frame.__cuda_array_interface__, Crop(40, 0, 30, 10))
    planar = dict(frame.__cuda_array_interface__, strides=(1, 48 * 64, 48 * 64 * 64))
    with pytest.raises(ValueError, match="interleaved"):
        crop_region(planar, None)


def test_device_array_slices_share_memory_and_keep_the_owner() -> None:
    owner = np.arange(4 * 2 * 3, dtype=np.uint8)
    array = DeviceArray(owner.ctypes.data, (4, 2, 3), np.uint8, owner=owner)
    part = array[1:3]
    assert part.shape == (2, 2, 3) and part.ptr == owner.ctypes.data + 6
    assert part.__cuda_array_interface__["strides"] is None
    np.testing.assert_array_equal(_read(part).ravel(), owner[6:18])


def test_engine_names_round_trip_and_lookup(tmp_path: Path) -> None:
    assert gpu_slug(b"NVIDIA H100 80GB HBM3\0\0junk") == "nvidia-h100-80gb-hbm3"
    assert gpu_slug("NVIDIA GeForce RTX 4090") == "nvidia-geforce-rtx-4090"
    assert trt_tag("10.7.0.23") == "10.7" and trt_tag("11.1") == "11.1"
    name = engine_filename("encoder", "NVIDIA H100 80GB HBM3", "10.7.0.23", "fp16")
    assert name == "encoder.nvidia-h100-80gb-hbm3.trt10.7.fp16.engine"
    parsed = parse_engine_filename(name)
    assert (parsed.graph, parsed.gpu, parsed.trt, parsed.precision) == (
        "encoder", "nvidia-h100-80gb-hbm3", "10.7", "fp16")
    assert parse_engine_filename("timing.nvidia-h100.trt10.7.cache") is None
    assert timing_cache_filename("NVIDIA H100", "10.7.1") == "timing.nvidia-h100.trt10.7.cache"
    (tmp_path / "engines").mkdir()
    (tmp_path / "engines" / name).write_bytes(b"x")
    assert find_engine(tmp_path, "encoder", "NVIDIA H100 80GB HBM3", "10.7.9", "fp16") is not None
    assert find_engine(tmp_path, "encoder", "NVIDIA H100 80GB HBM3", "10.8.0", "fp16") is None
    assert find_engine(tmp_path, "encoder", "NVIDIA H100 80GB HBM3", "10.7.0", "fp32") is None
    assert [e.graph for e in list_engines(tmp_path)] == ["encoder"]
    with pytest.raises(ValueError):
        engine_filename("encoder", "gpu", "10.7", "int8")


def test_trt_native_names_the_missing_engine_and_the_fix(tmp_path: Path) -> None:
    from fsrun.backends.trt_native import missing_engine_message

    (tmp_path / "engines").mkdir()
    (tmp_path / "engines" / engine_filename("encoder", "NVIDIA A10", "10.3", "fp16")).touch()
    text = missing_engine_message(tmp_path, "encoder", "NVIDIA H100", "10.7.0", "fp16")
    assert "fsexport trt" in text and "encoder/nvidia-a10/trt10.3/fp16" in text


@pytest.mark.parametrize("codec, pix_fmt, cc, ok", [
    ("av1", "yuv420p", (9, 0), False),  # H100/H200: no AV1 NVDEC
    ("av1", "yuv420p", (8, 0), False),  # A100
    ("av1", "yuv420p", (8, 9), True),  # Ada (L4, RTX 4090)
    ("h264", "yuv420p", (9, 0), True),
    ("h264", "yuv420p10le", (9, 0), False),  # High 10 H.264 has no NVDEC
    ("hevc", "yuv420p10le", (9, 0), True),
    ("prores", "yuv422p10le", (9, 0), False),
])
def test_codec_support_rules(codec: str, pix_fmt: str, cc: tuple[int, int], ok: bool) -> None:
    supported, reason = codec_support(codec, pix_fmt, cc, "NVIDIA H100")
    assert supported is ok
    assert (reason == "") is ok
    if not ok:
        assert "PyAV" in reason


def _h264_clip(path: Path, frames: int = 24) -> Path:
    from tests.runtime.videos import write_frames  # noqa: PLC0415

    images = [np.full((48, 64, 3), i * 8, np.uint8) for i in range(frames)]
    return write_frames(path, images, [i / 30 for i in range(frames)], 30,
                        options={"bf": "2", "g": "8"})  # B-frames: decode order != display


def test_packet_feeder_gives_annexb_packets_with_container_pts(tmp_path: Path) -> None:
    import av

    from fsrun.sources.nvdec_source import _PacketFeeder

    clip = _h264_clip(tmp_path / "clip.mp4")
    fake_nvc = types.SimpleNamespace(PacketData=types.SimpleNamespace)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        heads, pts = [], []
        for packet in _PacketFeeder(fake_nvc, container, stream, "h264").packets():
            heads.append(ctypes.string_at(packet.bsl_data, 4))  # read while the buffer is held
            pts.append(packet.pts)
    with av.open(str(clip)) as container:
        frame_pts = sorted(f.pts for f in container.decode(video=0))
    assert all(h == b"\x00\x00\x00\x01" for h in heads)  # avcC converted to start codes
    assert sorted(pts) == frame_pts
    assert pts != sorted(pts)  # decode order kept; the decoder reorders


def test_profiles_and_batch_splitting() -> None:
    limits = ProfileLimits(max_batch=8, opt_batch=4, max_frame=(720, 1280), opt_frame=(480, 640))
    encoder = input_profile("encoder", 60, 256, limits)
    assert encoder.min == (1, 16, 16, 3) and encoder.max == (8, 720, 1280, 3)
    assert ort_shape_option(encoder, "opt") == "frames:4x480x640x3"
    head = input_profile("head", 60, 256, limits)
    assert head.max == (8, 60, 256)
    assert [(s.start, s.stop) for s in batch_slices(19, 8)] == [(0, 8), (8, 16), (16, 19)]
    check_item_shape(encoder, (50, 720, 1280, 3))  # batch beyond max is split, not refused
    with pytest.raises(InputError, match="max-frame"):
        check_item_shape(encoder, (1, 1080, 1920, 3))
    with pytest.raises(ValueError):
        input_profile("decoder", 60, 256)


def test_tensorrt_provider_options_follow_precision_and_profile(tmp_path: Path) -> None:
    from fsrun.backends.ort_tensorrt import tensorrt_provider_options

    profile = input_profile("head", 60, 256)
    fp16 = tensorrt_provider_options(0, "fp16", tmp_path, profile, stream_handle=1234)
    fp32 = tensorrt_provider_options(1, "fp32", tmp_path, profile, stream_handle=None)
    assert fp16["trt_fp16_enable"] == "True" and fp32["trt_fp16_enable"] == "False"
    assert fp16["trt_engine_cache_enable"] == "True"
    assert fp16["trt_engine_cache_path"] == str(tmp_path)
    assert fp16["trt_profile_max_shapes"] == "embeddings:32x60x256"
    assert fp16["user_compute_stream"] == "1234" and "user_compute_stream" not in fp32
    assert fp32["device_id"] == "1"

