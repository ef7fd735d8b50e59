"""ONNX Runtime on the TensorRT execution provider, with an engine cache and a timing cache.

The first run on a GPU builds TensorRT engines (minutes for the large backbones) and stores them
in the cache folder; later runs load them in seconds. Optimization profiles cover the batch and
frame sizes fsrun uses, so a new frame size does not trigger a rebuild. IO binding and device
input work as in the CUDA backend, which also takes any node TensorRT cannot run.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from fsrun.backends.base import BackendOptions
from fsrun.backends.ort_cuda import CUDA_PROVIDER, OrtCudaBackend, cuda_provider_options
from fsrun.backends.trt_naming import graph_of_onnx
from fsrun.backends.trt_profiles import (
    InputProfile,
    ProfileLimits,
    batch_slices,
    check_item_shape,
    input_profile,
    ort_shape_option,
)
from fsrun.config import cache_dir
from fsrun.errors import ModelError

TENSORRT_PROVIDER = "TensorrtExecutionProvider"
TENSORRT_EXTRA = "fsrun[tensorrt]"
WORKSPACE_BYTES = 4 << 30  # scratch memory TensorRT may use while choosing kernels


def is_available() -> bool:
    """Cheap check: onnxruntime lists the TensorRT provider (onnxruntime-gpu built with it)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime  # noqa: PLC0415

    return TENSORRT_PROVIDER in onnxruntime.get_available_providers()


def engine_cache_dir(options: BackendOptions) -> Path:
    return Path(options.cache_dir) if options.cache_dir else cache_dir() / "engines"


def tensorrt_provider_options(device_id: int, precision: str, cache: Path, profile: InputProfile,
                              stream_handle: int | None) -> dict[str, str]:
    """TensorRT provider settings: caches, precision, and the profile of the graph's input."""
    options = {
        "device_id": str(device_id),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": "True" if precision == "fp16" else "False",
        "trt_max_workspace_size": str(WORKSPACE_BYTES),
        "trt_profile_min_shapes": ort_shape_option(profile, "min"),
        "trt_profile_opt_shapes": ort_shape_option(profile, "opt"),
        "trt_profile_max_shapes": ort_shape_option(profile, "max"),
    }
    if stream_handle is not None:
        options["has_user_compute_stream"] = "True"
        options["user_compute_stream"] = str(int(stream_handle))
    return options


def graph_profile(onnx_path: Path, options: BackendOptions,
                  limits: ProfileLimits | None = None) -> InputProfile:
    """The input profile of a package graph, from the window and embedding size in options
    (BackendOptions.for_package fills them from the loaded package's meta.json)."""
    if options.window is None or options.embedding_dim is None:
        raise ModelError(f"{Path(onnx_path).name}: the tensorrt backend needs the package's "
                         "window and embedding size (BackendOptions.for_package)")
    try:
        return input_profile(graph_of_onnx(onnx_path), options.window, options.embedding_dim,
                             limits)
    except ValueError as exc:
        raise ModelError(f"{Path(onnx_path).name}: {exc}") from None


class OrtTensorrtBackend(OrtCudaBackend):
    name = "tensorrt"
    provider = TENSORRT_PROVIDER
    missing_library = ("onnxruntime-gpu with the TensorRT provider", TENSORRT_EXTRA)

    def __init__(self, onnx_path: Path, options: BackendOptions):
        self.profile = graph_profile(onnx_path, options)
        self.cache = engine_cache_dir(options)
        self.cache.mkdir(parents=True, exist_ok=True)
        super().__init__(onnx_path, options)

    def providers(self, stream_handle: int | None) -> list[Any]:
        trt = tensorrt_provider_options(self.device_id, self.options.precision, self.cache,
                                        self.profile, stream_handle)
        return [(TENSORRT_PROVIDER, trt),
                (CUDA_PROVIDER, cuda_provider_options(self.device_id, stream_handle))]

    def run(self, batch: Any) -> np.ndarray:
        shape = tuple(int(s) for s in batch.shape)
        check_item_shape(self.profile, shape)
        parts = [super(OrtTensorrtBackend, self).run(batch[part])
                 for part in batch_slices(shape[0], self.profile.max[0])]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
