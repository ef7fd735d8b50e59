"""Inference backends, chosen from a table and imported lazily (GPU libraries are optional)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fsrun.backends.base import Backend, BackendOptions, TensorSpec
from fsrun.tables import import_entry

# Backend name -> "module:Class". Each class is constructed as Cls(onnx_path, options).
BACKENDS: dict[str, str] = {
    "cpu": "fsrun.backends.ort_cpu:OrtCpuBackend",
    "cuda": "fsrun.backends.ort_cuda:OrtCudaBackend",
    "tensorrt": "fsrun.backends.ort_tensorrt:OrtTensorrtBackend",
    "trt-native": "fsrun.backends.trt_native:TrtNativeBackend",
}
# The pip extra that brings each backend's library, for error messages.
EXTRAS: dict[str, str] = {
    "cpu": "fsrun",
    "cuda": "fsrun[gpu]",
    "tensorrt": "fsrun[tensorrt]",
    "trt-native": "fsrun[tensorrt]",
}
# What --backend and --precision accept; "auto" is resolved by the run plan (fsrun/run/plan.py), the
# one place every "auto" rule lives.
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "fp16", "int8")
BACKEND_CHOICES: tuple[str, ...] = ("auto", *BACKENDS)

__all__ = ["BACKENDS", "BACKEND_CHOICES", "PRECISION_CHOICES", "Backend", "BackendOptions",
           "TensorSpec", "load_backend_class", "is_backend_available", "check_backend",
           "create_backend"]


def _module(name: str) -> Any:
    return import_entry(BACKENDS, name, "backend", BACKEND_CHOICES, EXTRAS.get(name, ""))[0]


def load_backend_class(name: str) -> type:
    module, attribute = import_entry(BACKENDS, name, "backend", BACKEND_CHOICES,
                                     EXTRAS.get(name, ""))
    return getattr(module, attribute)


def is_backend_available(name: str) -> bool:
    """Cheap check through the module's is_available(); False on any failure."""
    try:
        module = _module(name)
        check = getattr(module, "is_available", None)
        return bool(check()) if check is not None else True
    except Exception:  # noqa: BLE001 - a failed probe only means: not this backend
        return False


def check_backend(name: str) -> str:
    """name, once its module imports: UsageError for an unknown name ("auto" included: the
    run plan resolves it), MissingDependencyError naming the extra for a missing library."""
    _module(name)
    return name


def create_backend(name: str, onnx_path: Path | str, options: BackendOptions | None = None) -> Any:
    """Instantiate the named backend for one ONNX graph."""
    return load_backend_class(name)(Path(onnx_path), options or BackendOptions())
