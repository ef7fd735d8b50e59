"""CUDA memory, streams and copies through CuPy when it is installed, else cuda-python.

One non-blocking stream per device is shared by NVDEC, the batch assembler and the backends, so
decode, crop copies and inference are ordered on the GPU without host synchronization. Both
libraries are imported only when a runtime is first asked for.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

import numpy as np

from fsrun.errors import MissingDependencyError, UsageError
from fsrun.gpu.device_array import DeviceArray

GPU_EXTRA = "fsrun[gpu]"


class CudaRuntime(Protocol):
    name: str  # "cupy" or "cuda-python"
    device_id: int  # CUDA ordinal this runtime allocates on
    stream_handle: int  # cudaStream_t of the shared stream, as an integer

    def alloc(self, nbytes: int) -> tuple[int, Any]: ...

    def copy_2d(self, dst: int, dst_pitch: int, src: int, src_pitch: int, width_bytes: int,
                height: int) -> None: ...

    def copy_to_host(self, dst: np.ndarray, src: int) -> None: ...

    def copy_from_host(self, dst: int, src: np.ndarray) -> None: ...

    def synchronize(self) -> None: ...

    def synchronize_stream(self, handle: int) -> None: ...

    def device_name(self) -> str: ...

    def compute_capability(self) -> tuple[int, int]: ...


class CupyRuntime:
    name = "cupy"

    def __init__(self, device_id: int):
        import cupy  # noqa: PLC0415

        self._cupy = cupy
        self._rt = cupy.cuda.runtime
        self.device_id = device_id
        self._device = cupy.cuda.Device(device_id)
        with self._device:
            self._stream = cupy.cuda.Stream(non_blocking=True)
        self.stream_handle = int(self._stream.ptr)

    def alloc(self, nbytes: int) -> tuple[int, Any]:
        with self._device, self._stream:
            memory = self._cupy.cuda.alloc(max(1, nbytes))  # pooled, freed when dropped
        return int(memory.ptr), memory

    def copy_2d(self, dst: int, dst_pitch: int, src: int, src_pitch: int, width_bytes: int,
                height: int) -> None:
        self._rt.memcpy2DAsync(dst, dst_pitch, src, src_pitch, width_bytes, height,
                               self._rt.memcpyDeviceToDevice, self.stream_handle)

    def copy_to_host(self, dst: np.ndarray, src: int) -> None:
        self._rt.memcpyAsync(dst.ctypes.data, src, dst.nbytes, self._rt.memcpyDeviceToHost,
                             self.stream_handle)
        self._stream.synchronize()

    def copy_from_host(self, dst: int, src: np.ndarray) -> None:
        src = np.ascontiguousarray(src)
        self._rt.memcpyAsync(dst, src.ctypes.data, src.nbytes, self._rt.memcpyHostToDevice,
                             self.stream_handle)
        self._stream.synchronize()  # src is pageable host memory owned by the caller

    def synchronize(self) -> None:
        self._stream.synchronize()

    def synchronize_stream(self, handle: int) -> None:
        self._rt.streamSynchronize(handle)

    def device_name(self) -> str:
        name = self._rt.getDeviceProperties(self.device_id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def compute_capability(self) -> tuple[int, int]:
        props = self._rt.getDeviceProperties(self.device_id)
        return int(props["major"]), int(props["minor"])


def import_cudart() -> Any:
    """cuda-python's runtime module (cuda.bindings.runtime since 12.6, cuda.cudart before)."""
    try:
        from cuda.bindings import runtime  # noqa: PLC0415

        return runtime
    except ImportError:
        from cuda import cudart  # noqa: PLC0415

        return cudart


class _CudaPythonAllocation:
    """Stream-ordered allocation freed on the same stream when the last view is dropped."""

    def __init__(self, cudart: Any, ptr: Any, stream: Any):
        self._cudart, self.ptr, self._stream = cudart, ptr, stream

    def __del__(self) -> None:
        try:
            self._cudart.cudaFreeAsync(self.ptr, self._stream)
        except Exception:  # interpreter shutdown: the driver frees everything anyway
            pass


class CudaPythonRuntime:
    name = "cuda-python"

    def __init__(self, device_id: int):
        self._rt = import_cudart()
        self.device_id = device_id
        self._check(self._rt.cudaSetDevice(device_id))
        self._stream = self._check(
            self._rt.cudaStreamCreateWithFlags(self._rt.cudaStreamNonBlocking))
        self.stream_handle = int(self._stream)

    def _check(self, result: Any) -> Any:
        """cuda-python returns (err, *values); raise on err, return the value(s)."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, text = self._rt.cudaGetErrorString(err)
            text = text.decode() if isinstance(text, bytes) else text
            raise RuntimeError(f"CUDA error {int(err)}: {text}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def alloc(self, nbytes: int) -> tuple[int, Any]:
        self._check(self._rt.cudaSetDevice(self.device_id))
        ptr = self._check(self._rt.cudaMallocAsync(max(1, nbytes), self._stream))
        return int(ptr), _CudaPythonAllocation(self._rt, ptr, self._stream)

    def copy_2d(self, dst: int, dst_pitch: int, src: int, src_pitch: int, width_bytes: int,
                height: int) -> None:
        self._check(self._rt.cudaMemcpy2DAsync(
            dst, dst_pitch, src, src_pitch, width_bytes, height,
            self._rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, self._stream))

    def copy_to_host(self, dst: np.ndarray, src: int) -> None:
        self._check(self._rt.cudaMemcpyAsync(
            dst.ctypes.data, src, dst.nbytes, self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
            self._stream))
        self.synchronize()

    def copy_from_host(self, dst: int, src: np.ndarray) -> None:
        src = np.ascontiguousarray(src)
        self._check(self._rt.cudaMemcpyAsync(
            dst, src.ctypes.data, src.nbytes, self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            self._stream))
        self.synchronize()  # src is pageable host memory owned by the caller

    def synchronize(self) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._stream))

    def synchronize_stream(self, handle: int) -> None:
        self._check(self._rt.cudaStreamSynchronize(handle))

    def device_name(self) -> str:
        props = self._check(self._rt.cudaGetDeviceProperties(self.device_id))
        name = props.name
        return name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)

    def compute_capability(self) -> tuple[int, int]:
        props = self._check(self._rt.cudaGetDeviceProperties(self.device_id))
        return int(props.major), int(props.minor)


# Preference order: CuPy first (pooled allocations), cuda-python otherwise.
RUNTIMES: dict[str, Callable[[int], CudaRuntime]] = {
    "cupy": CupyRuntime,
    "cuda-python": CudaPythonRuntime,
}

_cache: dict[int, CudaRuntime] = {}
_lock = threading.Lock()


def get_runtime(device_id: int = 0) -> CudaRuntime:
    """The process-wide runtime (and shared stream) for a device."""
    with _lock:
        if device_id in _cache:
            return _cache[device_id]
        for factory in RUNTIMES.values():
            try:
                runtime = factory(device_id)
            except ImportError:
                continue
            except RuntimeError as exc:  # library present, but no driver or no such device
                raise UsageError(f"CUDA device {device_id} is not usable: {exc}") from None
            _cache[device_id] = runtime
            return runtime
    raise MissingDependencyError("cuda-python (or CuPy)", GPU_EXTRA)


def empty(runtime: CudaRuntime, shape: tuple[int, ...], dtype: Any) -> DeviceArray:
    """An uninitialized C-contiguous device array on the runtime's device."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    ptr, owner = runtime.alloc(nbytes)
    return DeviceArray(ptr, shape, dtype, owner=owner, stream=runtime.stream_handle,
                       device_id=runtime.device_id)


def to_device(runtime: CudaRuntime, array: np.ndarray) -> DeviceArray:
    array = np.ascontiguousarray(array)
    out = empty(runtime, array.shape, array.dtype)
    runtime.copy_from_host(out.ptr, array)
    return out


def to_host(runtime: CudaRuntime, array: DeviceArray) -> np.ndarray:
    if not array.is_c_contiguous:
        raise ValueError("to_host needs a C-contiguous device array")
    out = np.empty(array.shape, array.dtype)
    runtime.copy_to_host(out, array.ptr)
    return out
