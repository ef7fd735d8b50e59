"""Crop decoded frames and pack them into one [N, H, W, 3] batch with device-to-device copies.

A decoded RGB frame is a pitched 2-D block on the GPU. Cropping it is only an offset into that
block plus a narrower row width, so crop and batch assembly are a single cudaMemcpy2DAsync per
frame on the shared stream; no pixel ever goes through host memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fsrun.gpu.cuda_runtime import CudaRuntime, empty
from fsrun.gpu.device_array import DeviceArray, interface_of
from fsrun.crop import Crop

CHANNELS = 3  # interleaved RGB


@dataclass(frozen=True)
class CopyRegion:
    src: int  # device address of the crop's top-left pixel
    src_pitch: int  # bytes between rows of the source frame
    width_bytes: int  # bytes per cropped row
    height: int  # rows to copy


def frame_geometry(interface: dict[str, Any]) -> tuple[int, int, int]:
    """(height, width, row pitch in bytes) of an interleaved uint8 RGB frame [H, W, 3]."""
    shape = tuple(interface["shape"])
    if len(shape) != 3 or shape[2] != CHANNELS:
        raise ValueError(f"expected an RGB frame [H, W, 3], got shape {shape}")
    if np.dtype(interface["typestr"]) != np.uint8:
        raise ValueError(f"expected uint8 frames, got {interface['typestr']}")
    height, width = int(shape[0]), int(shape[1])
    strides = interface.get("strides")
    if strides is None:
        return height, width, width * CHANNELS
    pitch, pixel, channel = (int(s) for s in strides)
    if channel != 1 or pixel != CHANNELS or pitch < width * CHANNELS:
        raise ValueError(f"expected interleaved RGB rows, got strides {tuple(strides)}")
    return height, width, pitch


def crop_region(interface: dict[str, Any], crop: Crop | None) -> CopyRegion:
    """Where the cropped rows of a frame start and how wide they are."""
    height, width, pitch = frame_geometry(interface)
    base, _ = interface["data"]
    if crop is None:
        return CopyRegion(int(base), pitch, width * CHANNELS, height)
    if crop.x + crop.width > width or crop.y + crop.height > height:
        raise ValueError(f"crop {crop} does not fit in a {width}x{height} frame")
    start = int(base) + crop.y * pitch + crop.x * CHANNELS
    return CopyRegion(start, pitch, crop.width * CHANNELS, crop.height)


def output_size(frame_height: int, frame_width: int, crop: Crop | None) -> tuple[int, int]:
    """(H, W) of a frame after the crop."""
    return (frame_height, frame_width) if crop is None else (crop.height, crop.width)


class BatchAssembler:
    """Collects cropped frames into a fresh device batch; take() hands it over.

    Each batch gets its own allocation: a batch handed to the pipeline may still be queued for
    inference while the next one fills, so buffers are never reused under a consumer.
    """

    def __init__(self, runtime: CudaRuntime, height: int, width: int, capacity: int,
                 crop: Crop | None = None):
        if capacity < 1:
            raise ValueError(f"batch capacity must be >= 1, got {capacity}")
        self.runtime = runtime
        self.crop = crop
        self.height, self.width = output_size(height, width, crop)
        self.capacity = capacity
        self._buffer: DeviceArray | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._count >= self.capacity

    def add(self, frame: Any) -> None:
        """Copy one decoded frame (anything with __cuda_array_interface__) into the next slot."""
        if self.full:
            raise RuntimeError("batch is full; call take() first")
        if self._buffer is None:
            self._buffer = empty(self.runtime, (self.capacity, self.height, self.width, CHANNELS),
                                 np.uint8)
        region = crop_region(interface_of(frame), self.crop)
        if region.width_bytes != self.width * CHANNELS or region.height != self.height:
            raise ValueError("frame size changed mid-stream; cannot batch frames of two sizes")
        row_bytes = self.width * CHANNELS
        dst = self._buffer.ptr + self._count * self.height * row_bytes
        self.runtime.copy_2d(dst, row_bytes, region.src, region.src_pitch, region.width_bytes,
                             region.height)
        self._count += 1

    def take(self) -> DeviceArray:
        """The filled part of the batch [n, H, W, 3]; the next add() starts a new allocation."""
        if self._buffer is None or self._count == 0:
            raise RuntimeError("no frames to take")
        batch = self._buffer[: self._count]
        self._buffer, self._count = None, 0
        return batch
