"""A minimal device array: a pointer, a shape and a dtype, shared through __cuda_array_interface__.

Frames on the GPU travel between NVDEC, the batch assembler and the backends as these. Any
library that reads the CUDA array interface (CuPy, ONNX Runtime IO binding through the raw
pointer, TensorRT tensor addresses) can use one without a copy.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class DeviceArray:
    """A view of device memory; `owner` keeps the allocation alive as long as the view lives."""

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: Any, owner: Any = None,
                 strides: tuple[int, ...] | None = None, stream: int | None = None,
                 device_id: int = 0):
        self.ptr = int(ptr)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.owner = owner
        self.strides = None if strides is None else tuple(int(s) for s in strides)
        self.stream = stream
        self.device_id = device_id

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def contiguous_strides(self) -> tuple[int, ...]:
        strides, step = [], self.dtype.itemsize
        for dim in reversed(self.shape):
            strides.append(step)
            step *= dim
        return tuple(reversed(strides))

    @property
    def is_c_contiguous(self) -> bool:
        return self.strides is None or self.strides == self.contiguous_strides()

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        interface: dict[str, Any] = {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr, False),
            "version": 3,
            "strides": None if self.is_c_contiguous else self.strides,
        }
        if self.stream is not None:
            interface["stream"] = self.stream
        return interface

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> DeviceArray:
        """Leading-axis slices with step 1 only: enough to hand out the filled part of a batch."""
        if not isinstance(index, slice):
            raise TypeError("DeviceArray supports only slices of the first axis")
        start, stop, step = index.indices(self.shape[0])
        if step != 1:
            raise ValueError("DeviceArray slices must have step 1")
        stop = max(start, stop)
        row = (self.strides or self.contiguous_strides())[0]
        return DeviceArray(self.ptr + start * row, (stop - start, *self.shape[1:]), self.dtype,
                           owner=self, strides=self.strides, stream=self.stream,
                           device_id=self.device_id)

    def __repr__(self) -> str:
        return f"DeviceArray(ptr=0x{self.ptr:x}, shape={self.shape}, dtype={self.dtype})"


def interface_of(obj: Any) -> dict[str, Any]:
    """The CUDA array interface of obj; TypeError when it is not a device array."""
    try:
        interface = obj.__cuda_array_interface__
    except AttributeError:
        raise TypeError(f"{type(obj).__name__} does not expose __cuda_array_interface__") from None
    if interface.get("version", 0) >= 3 and interface.get("mask") is not None:
        raise TypeError("masked device arrays are not supported")
    return interface


def as_device_array(obj: Any, device_id: int = 0) -> DeviceArray:
    """Wrap anything with __cuda_array_interface__ without copying (obj stays the owner)."""
    if isinstance(obj, DeviceArray):
        return obj
    interface = interface_of(obj)
    ptr, _read_only = interface["data"]
    return DeviceArray(ptr, tuple(interface["shape"]), np.dtype(interface["typestr"]), owner=obj,
                       strides=interface.get("strides"), stream=interface.get("stream"),
                       device_id=device_id)


def is_device_array(obj: Any) -> bool:
    return hasattr(obj, "__cuda_array_interface__")
