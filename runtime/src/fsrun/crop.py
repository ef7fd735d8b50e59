"""Crop specs from the command line (full | sbs-left | X,Y,W,H), resolved against a frame size.

The crop happens before the network: the encoder resizes whatever it gets, so cropping the left
eye of side-by-side VR footage doubles the detail the model sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fsrun.errors import UsageError


@dataclass(frozen=True)
class Crop:
    """A box in source pixels: x, y from the top-left corner, width, height."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if min(self.x, self.y) < 0 or min(self.width, self.height) < 1:
            raise ValueError(f"invalid crop box {self}")


@dataclass(frozen=True)
class CropSpec:
    """What the user asked for, before the video's size is known."""

    kind: str  # full, sbs-left, sbs-right or box
    box: Crop | None = None  # the explicit box when kind == "box"

    def resolve(self, width: int, height: int) -> Crop | None:
        """The box in source pixels for a frame of this size; None for the full frame."""
        return _RESOLVERS[self.kind](self, width, height)

    def __str__(self) -> str:
        if self.box is None:
            return self.kind
        return f"{self.box.x},{self.box.y},{self.box.width},{self.box.height}"


def _full(spec: CropSpec, width: int, height: int) -> Crop | None:
    return None


def _sbs_left(spec: CropSpec, width: int, height: int) -> Crop | None:
    return Crop(0, 0, max(1, width // 2), height)


def _sbs_right(spec: CropSpec, width: int, height: int) -> Crop | None:
    half = max(1, width // 2)
    return Crop(width - half, 0, half, height)


def _box(spec: CropSpec, width: int, height: int) -> Crop | None:
    box = spec.box
    assert box is not None
    if box.x + box.width > width or box.y + box.height > height:
        raise UsageError(f"crop {spec} does not fit in the {width}x{height} video")
    return box


_RESOLVERS: dict[str, Callable[[CropSpec, int, int], Crop | None]] = {
    "full": _full,
    "sbs-left": _sbs_left,
    "sbs-right": _sbs_right,
    "box": _box,
}


def parse_crop(text: str | CropSpec | Crop | None) -> CropSpec:
    """Parse `full`, `sbs-left`, `sbs-right` or `X,Y,W,H` (pixels); raises UsageError."""
    if text is None:
        return CropSpec("full")
    if isinstance(text, CropSpec):
        return text
    if isinstance(text, Crop):
        return CropSpec("box", text)
    value = text.strip().lower()
    if value in _RESOLVERS and value != "box":
        return CropSpec(value)
    parts = value.split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4:
        raise UsageError(f"invalid --crop {text!r}: use full, sbs-left, sbs-right or X,Y,W,H")
    try:
        return CropSpec("box", Crop(*numbers))
    except ValueError:
        raise UsageError(f"invalid --crop {text!r}: X and Y must be >= 0, W and H >= 1") from None


def resolve_upright(spec: CropSpec, width: int, height: int, turns: int) -> Crop | None:
    """The box in stored pixels for a crop the user gave on the upright picture (what players
    show), for a video stored `turns` quarter turns clockwise of upright (the source turns it
    back with np.rot90(k=turns)); width and height are the stored size. Errors quote the
    upright size."""
    turns %= 4
    shown = (height, width) if turns % 2 else (width, height)
    box = spec.resolve(*shown)
    if box is None or turns == 0:
        return box
    x, y, w, h = box.x, box.y, box.width, box.height
    # np.rot90(A, k)[i, j] names the stored pixel each shown pixel comes from.
    stored = {1: (width - y - h, x, h, w),
              2: (width - x - w, height - y - h, w, h),
              3: (y, height - x - w, h, w)}[turns]
    return Crop(*stored)


def apply_crop(frames: np.ndarray, crop: Crop | None) -> np.ndarray:
    """Crop host frames [..., H, W, 3] (a view, no copy)."""
    if crop is None:
        return frames
    return frames[..., crop.y:crop.y + crop.height, crop.x:crop.x + crop.width, :]
