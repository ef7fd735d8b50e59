"""Small test videos written with PyAV, with frame timestamps the tests can check.

Each frame shows a bar whose height follows a sine, so the content moves, plus noise-free
colour so every codec handles it. Timestamps are read back from the file with PyAV (what
ffprobe would report), never computed from index / fps.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3]: a bright bar moving up and down over a dark gradient."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 2] = np.linspace(0, 80, width, dtype=np.uint8)[None, :]
    level = int((0.5 + 0.45 * np.sin(index * 0.2)) * (height - 8))
    image[level:level + 8, width // 4: 3 * width // 4] = (230, 200, 40)
    return image


def write_cfr(path: Path, fps: Fraction | int | float | str, frames: int, width: int = 64,
              height: int = 48, codec: str = "libx264") -> Path:
    """Constant frame rate video; fps may be Fraction(30000, 1001)."""
    rate = Fraction(fps).limit_denominator(100000) if not isinstance(fps, Fraction) else fps
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_vfr(path: Path, pts_ms: list[int], width: int = 64, height: int = 48,
              codec: str = "libx264") -> Path:
    """Variable frame rate: one frame at each given time (ms) in an MKV (time base 1/1000)."""
    with av.open(str(path), mode="w", format="matroska") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for i, t in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            frame.pts = int(t)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_timestamps_s(path: Path) -> list[float]:
    """Presentation times (s) of every frame, in decode output order, as stored in the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(f.pts * f.time_base) for f in container.decode(stream)]


def duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1_000_000
