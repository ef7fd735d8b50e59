"""Inference backends, chosen from a table and imported lazily (GPU libraries are optional)."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fsrun.backends.base import Backend, BackendOptions, TensorSpec
from fsrun.errors import MissingDependencyError, UsageError

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
# "auto" tries these in order. ORT's TensorRT EP caches its engines, so it beats plain CUDA
# after the first run; native engines need `fsexport trt` first, so they are asked for by name.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
# What --precision auto tries per backend, the first the package has wins: fp16 only pays off on
# a GPU; the int8 encoder (ONNX Runtime static quantization, `fsexport quantize`) is built for
# CPU int8 kernels.
AUTO_PRECISIONS: dict[str, tuple[str, ...]] = {
    "cpu": ("int8", "fp32"),
    "cuda": ("fp16", "fp32"),
    "tensorrt": ("fp16", "fp32"),
    "trt-native": ("fp16", "fp32"),
}
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "fp16", "int8")
BACKEND_CHOICES: tuple[str, ...] = ("auto", *BACKENDS)

__all__ = ["BACKENDS", "AUTO_ORDER", "AUTO_PRECISIONS", "BACKEND_CHOICES", "PRECISION_CHOICES",
           "Backend", "BackendOptions", "TensorSpec", "load_backend_class",
           "is_backend_available", "resolve_backend_name", "create_backend"]


def _module(name: str) -> Any:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(BACKEND_CHOICES)}") from None
    module_name = target.split(":")[0]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(f"{name} backend ({exc.name or exc})", EXTRAS[name]) from None


def load_backend_class(name: str) -> type:
    return getattr(_module(name), BACKENDS[name].split(":")[1])


def is_backend_available(name: str) -> bool:
    """Cheap check through the module's is_available(); False on any failure."""
    try:
        module = _module(name)
        check = getattr(module, "is_available", None)
        return bool(check()) if check is not None else True
    except Exception:  # noqa: BLE001 - a failed probe only means: not this backend
        return False


def resolve_backend_name(name: str) -> str:
    """The concrete backend for a name; "auto" picks the first available in AUTO_ORDER."""
    if name != "auto":
        _module(name)
        return name
    for candidate in AUTO_ORDER:
        if is_backend_available(candidate):
            return candidate
    return "cpu"


def create_backend(name: str, onnx_path: Path | str, options: BackendOptions | None = None) -> Any:
    """Instantiate a backend for one ONNX graph. "auto" falls back along AUTO_ORDER when a
    candidate that looked available still fails to start (driver missing, out of memory)."""
    options = options or BackendOptions()
    if name != "auto":
        return load_backend_class(name)(Path(onnx_path), options)
    from fsrun.plan import backend_candidates, first_that_starts  # noqa: PLC0415 - plan imports us

    def start(candidate: str) -> Any:
        return load_backend_class(candidate)(Path(onnx_path), options)

    backend, _, _ = first_that_starts(backend_candidates("auto"), start)
    return backend
