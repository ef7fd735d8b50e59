"""Device-memory helpers for the GPU path: shared stream, allocation, crop + batch by D2D copy.

Nothing here imports CuPy or cuda-python until a runtime is asked for (get_runtime).
"""
from __future__ import annotations

import importlib.util

from fsrun.gpu.batch import BatchAssembler, CopyRegion, crop_region, frame_geometry
from fsrun.gpu.cuda_runtime import (
    GPU_EXTRA,
    RUNTIMES,
    CudaRuntime,
    empty,
    get_runtime,
    to_device,
    to_host,
)
from fsrun.gpu.device_array import DeviceArray, as_device_array, interface_of, is_device_array

# Module names whose presence makes a runtime importable (checked without importing them).
_RUNTIME_MODULES = {"cupy": ("cupy",), "cuda-python": ("cuda.bindings", "cuda.cudart")}


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_available() -> bool:
    """True when CuPy or cuda-python is installed (cheap: nothing is imported or initialized)."""
    return any(_module_exists(m) for names in _RUNTIME_MODULES.values() for m in names)


def device_count() -> int:
    """CUDA devices visible to this process; 0 when the library or the driver is missing."""
    if not is_available():
        return 0
    try:
        from fsrun.gpu.cuda_runtime import import_cudart  # noqa: PLC0415

        err, count = import_cudart().cudaGetDeviceCount()
        return int(count) if int(err) == 0 else 0
    except Exception:
        pass
    try:
        import cupy  # noqa: PLC0415

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


__all__ = [
    "BatchAssembler", "CopyRegion", "CudaRuntime", "DeviceArray", "GPU_EXTRA", "RUNTIMES",
    "as_device_array", "crop_region", "device_count", "empty", "frame_geometry", "get_runtime",
    "interface_of", "is_available", "is_device_array", "to_device", "to_host",
]
