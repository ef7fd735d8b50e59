"""Synthetic test clips for benchmarks: textured background, slow pan, one moving block.

Rendering is a few array copies per frame, so a 1080p clip costs little more than its H.264
encode. Clips are reused when a file with the same parameters exists (the name encodes them).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ClipParams:
    width: int = 1280  # frame width in pixels (even)
    height: int = 720  # frame height in pixels (even)
    fps: int = 30  # constant frame rate
    seconds: float = 10.0  # clip length
    codec: str = "libx264"  # FFmpeg encoder
    preset: str = "veryfast"  # x264 preset; decode cost depends on it (B-frames, CABAC)
    crf: int = 23  # x264 quality; 23 is FFmpeg's default
    seed: int = 0  # draws the texture

    @property
    def frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def file_name(self) -> str:
        return (f"bench_{self.width}x{self.height}_{self.fps}fps_{self.frames}f_{self.codec}"
                f"_{self.preset}_crf{self.crf}_s{self.seed}.mp4")

    def describe(self) -> dict:
        return {"width": self.width, "height": self.height, "fps": self.fps,
                "seconds": self.seconds, "frames": self.frames, "codec": self.codec,
                "preset": self.preset, "crf": self.crf, "pix_fmt": "yuv420p"}


# FFmpeg encoder -> its options for a clip: constant quality, speed over size.
ENCODER_OPTIONS: dict[str, Callable[[ClipParams], dict[str, str]]] = {
    "libx264": lambda p: {"preset": p.preset, "crf": str(p.crf)},
    "libx265": lambda p: {"preset": p.preset, "crf": str(p.crf), "x265-params": "log-level=error"},
    # libvpx's quality scale runs to 63; b=0 makes crf the only rate control.
    "libvpx-vp9": lambda p: {"crf": str(p.crf + 10), "b": "0", "deadline": "realtime",
                             "cpu-used": "8", "row-mt": "1"},
}


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour noise: a coarse random grid upsampled, plus fine grain."""
    coarse = rng.integers(0, 256, size=(height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    smooth = top * (1 - fy) + bottom * fy
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def render(params: ClipParams, index: int, texture: np.ndarray) -> np.ndarray:
    """Frame `index`: the background panned slowly, a bright block moving up and down."""
    t = index / params.fps
    pad_y = texture.shape[0] - params.height
    pad_x = texture.shape[1] - params.width
    oy = int((pad_y / 2) * (1 + np.sin(2 * np.pi * t / 7.0)))
    ox = int((pad_x / 2) * (1 + np.sin(2 * np.pi * t / 11.0)))
    frame = texture[oy:oy + params.height, ox:ox + params.width].copy()
    side = max(8, params.height // 6)
    position = 0.5 + 0.45 * np.sin(2 * np.pi * t * 1.3)
    cy = int((1 - position) * (params.height - side))
    cx = (params.width - side) // 2
    frame[cy:cy + side, cx:cx + side] = (250, 60, 40)
    return frame


def make_clip(params: ClipParams, folder: Path) -> Path:
    """Encode the clip into folder (reused if it exists); written to a temp name, then moved."""
    from fsrun.groundtruth.synth.clips import CodecSpec, encode_video  # noqa: PLC0415 - imports PyAV

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / params.file_name
    if path.is_file():
        return path
    rng = np.random.default_rng(params.seed)
    texture = _texture(rng, params.height + params.height // 8, params.width + params.width // 8)
    options = ENCODER_OPTIONS.get(params.codec, ENCODER_OPTIONS["libx264"])(params)
    frames = (render(params, i, texture) for i in range(params.frames))
    rate = Fraction(params.fps)
    encode_video(path, CodecSpec(params.codec, "mp4", ".mp4", options), frames,
                 np.arange(params.frames) / float(rate), rate, params.width, params.height)
    return path
