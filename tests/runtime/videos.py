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

from fsrun.groundtruth.synth.clips import CodecSpec, encode_video


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3]: a bright bar moving up and down over a dark gradient."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 2] = np.linspace(0, 80, width, dtype=np.uint8)[None, :]
    level = int((0.5 + 0.45 * np.sin(index * 0.2)) * (height - 8))
    image[level:level + 8, width // 4: 3 * width // 4] = (230, 200, 40)
    return image


# Container by file name, as FFmpeg would guess it.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
              ".webm": "webm"}


def write_frames(path: Path, images: list[np.ndarray], times_s: list[float] | np.ndarray,
                 rate: Fraction | str, codec: str = "libx264",
                 options: dict[str, str] | None = None) -> Path:
    """RGB frames at the given times through the project's one clip writer (encode_video)."""
    path = Path(path)
    settings = {"preset": "ultrafast"} if codec == "libx264" else {}
    settings.update(options or {})
    spec = CodecSpec(codec, CONTAINERS[path.suffix.lower()], path.suffix, settings)
    height, width = images[0].shape[:2]
    encode_video(path, spec, images, np.asarray(times_s, dtype=float), rate, width, height)
    return path


def write_cfr(path: Path, fps: Fraction | int | float | str, frames: int, width: int = 64,
              height: int = 48, codec: str = "libx264") -> Path:
    """Constant frame rate video; fps may be Fraction(30000, 1001)."""
    rate = Fraction(fps).limit_denominator(100000) if not isinstance(fps, Fraction) else fps
    images = [frame_image(i, width, height) for i in range(frames)]
    return write_frames(path, images, [float(i / rate) for i in range(frames)], rate, codec)


def write_vfr(path: Path, pts_ms: list[int], width: int = 64, height: int = 48,
              codec: str = "libx264") -> Path:
    """Variable frame rate: one frame at each given time (ms) in an MKV (time base 1/1000)."""
    images = [frame_image(i, width, height) for i in range(len(pts_ms))]
    return write_frames(Path(path), images, [t / 1000.0 for t in pts_ms], "vfr", codec)


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
