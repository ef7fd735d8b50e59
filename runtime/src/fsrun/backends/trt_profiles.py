"""TensorRT optimization profiles (min / opt / max input shapes) for the graphs of a package.

TensorRT plans kernels for a range of shapes fixed at build time. The encoder takes any batch
and frame size, the head a batch of windows of fixed length. fsexport (native engines) and the
ONNX Runtime TensorRT provider use the same ranges, from the same table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fsrun.errors import InputError

MIN_FRAME = (16, 16)  # smallest frame (H, W) an engine accepts


@dataclass(frozen=True)
class ProfileLimits:
    max_batch: int = 32  # most frames (encoder) or windows (head) in one run
    opt_batch: int = 16  # batch TensorRT tunes kernels for
    max_frame: tuple[int, int] = (1080, 1920)  # largest (H, W) after crop
    opt_frame: tuple[int, int] = (1080, 1920)  # (H, W) TensorRT tunes kernels for

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= opt_batch <= max_batch, got {self.opt_batch}, "
                             f"{self.max_batch}")
        for axis in (0, 1):
            if not MIN_FRAME[axis] <= self.opt_frame[axis] <= self.max_frame[axis]:
                raise ValueError(f"need {MIN_FRAME} <= opt_frame <= max_frame, got "
                                 f"{self.opt_frame}, {self.max_frame}")


@dataclass(frozen=True)
class InputProfile:
    name: str  # graph input name
    min: tuple[int, ...]  # smallest shape
    opt: tuple[int, ...]  # shape kernels are tuned for
    max: tuple[int, ...]  # largest shape

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


def _encoder(limits: ProfileLimits, window: int, embedding_dim: int) -> InputProfile:
    (oh, ow), (mh, mw) = limits.opt_frame, limits.max_frame
    return InputProfile("frames", (1, *MIN_FRAME, 3), (limits.opt_batch, oh, ow, 3),
                        (limits.max_batch, mh, mw, 3))


def _head(limits: ProfileLimits, window: int, embedding_dim: int) -> InputProfile:
    return InputProfile("embeddings", (1, window, embedding_dim),
                        (limits.opt_batch, window, embedding_dim),
                        (limits.max_batch, window, embedding_dim))


def _model(limits: ProfileLimits, window: int, embedding_dim: int) -> InputProfile:
    # One composite batch holds `window` frames per item: keep it to one item at the largest size.
    (oh, ow), (mh, mw) = limits.opt_frame, limits.max_frame
    return InputProfile("frames", (1, window, *MIN_FRAME, 3), (1, window, oh, ow, 3),
                        (max(1, limits.max_batch // window), window, mh, mw, 3))


PROFILES: dict[str, Callable[[ProfileLimits, int, int], InputProfile]] = {
    "encoder": _encoder,
    "head": _head,
    "model": _model,
}


def input_profile(graph: str, window: int, embedding_dim: int,
                  limits: ProfileLimits | None = None) -> InputProfile:
    """The profile of a graph's one input; window and embedding_dim come from meta.json."""
    try:
        make = PROFILES[graph]
    except KeyError:
        raise ValueError(f"no TensorRT profile for graph {graph!r}") from None
    return make(limits or ProfileLimits(), window, embedding_dim)


def ort_shape_option(profile: InputProfile, which: str) -> str:
    """ONNX Runtime TensorRT provider syntax: 'frames:1x16x16x3'."""
    dims = getattr(profile, which)
    return f"{profile.name}:{'x'.join(str(d) for d in dims)}"


def batch_slices(batch_size: int, max_batch: int) -> list[slice]:
    """Split a batch larger than the profile allows into runs of at most max_batch items."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return [slice(start, min(start + max_batch, batch_size))
            for start in range(0, batch_size, max_batch)]


def check_item_shape(profile: InputProfile, shape: tuple[int, ...]) -> None:
    """Raise InputError when anything but the batch axis is outside the profile."""
    if len(shape) != len(profile.min):
        raise InputError(f"{profile.name}: expected {len(profile.min)} dimensions, got {shape}")
    for axis in range(1, len(shape)):
        if not profile.min[axis] <= shape[axis] <= profile.max[axis]:
            raise InputError(
                f"{profile.name} shape {shape} is outside the TensorRT profile "
                f"{profile.min[1:]}..{profile.max[1:]} (per item); crop the video or rebuild the "
                f"engines with a larger --max-frame")
