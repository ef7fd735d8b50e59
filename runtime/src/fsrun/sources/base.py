"""What every video source yields: batches of RGB frames with container timestamps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import numpy as np

from fsrun.crop import Crop

__all__ = ["Crop", "VideoInfo", "FrameBatch", "FrameSelector", "VideoSource"]  # Crop: from crop.py


@dataclass(frozen=True)
class VideoInfo:
    path: str  # the file
    width: int  # displayed width in pixels, after crop is not applied
    height: int  # displayed height in pixels
    fps: float  # average frame rate as the container states it (timing uses timestamps)
    duration_s: float  # the length the header claims, in seconds (0 when it says nothing)
    codec: str  # FFmpeg codec name, e.g. h264, hevc, vp9, av1
    frame_count: int  # container's frame count, 0 when unknown
    clock_offset_s: float = 0.0  # the container's start time: the file's clock reads this at
    # the point players show as 0; sources subtract it, so every time fsrun gives (frames,
    # actions, --start/--end) is on the presented clock


@dataclass
class FrameBatch:
    """N sampled frames, cropped, RGB uint8 [N, H, W, 3], host (numpy) or device memory."""

    frames: Any  # np.ndarray on the host, or a device array with __cuda_array_interface__
    pts_ms: np.ndarray  # float64 [N]: presentation time of each frame in ms, from the container
    on_device: bool = False  # True when frames live in GPU memory

    def __post_init__(self) -> None:
        shape = tuple(self.frames.shape)
        if len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"frames must be [N, H, W, 3], got {shape}")
        if len(self.pts_ms) != shape[0]:
            raise ValueError(f"{len(self.pts_ms)} timestamps for {shape[0]} frames")

    def __len__(self) -> int:
        return int(self.frames.shape[0])


class FrameSelector(Protocol):
    """Decides from a frame's timestamp whether the model needs it (see sampling.py)."""

    def accept(self, pts_s: float) -> bool: ...


class VideoSource(Protocol):
    """One opened video. Constructed as Source(path, crop=..., device_id=...)."""

    info: VideoInfo

    def batches(self, selector: FrameSelector, batch_size: int) -> Iterator[FrameBatch]:
        """Decode in order, keep frames the selector accepts, crop, yield batches."""
        ...

    def frame_at(self, seconds: float) -> Any:
        """The whole upright RGB frame shown at `seconds` (the viewer's picture)."""
        ...

    def close(self) -> None: ...
