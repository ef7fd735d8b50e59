"""From per-frame positions to the points a device plays well.

Raw output is one point per sampled frame (30 a second of small jitter, which makes a stroker
buzz). The default keeps the turning points: peaks and valleys that differ from their neighbours
by at least `min_amplitude`, plus the first and last frame; RDP can add the points needed to
follow the curve between them. Range stretch, invert and a time offset come after.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from fsrun.defaults import DEFAULT_MIN_AMPLITUDE, DEFAULT_RDP_EPSILON
from fsrun.errors import UsageError
from fsrun.numbers import is_finite

# Largest --offset in ms (a day): far past any video, and small enough for every player.
MAX_OFFSET_MS = 86_400_000


@dataclass
class PostprocessOptions:
    raw: bool = False  # one point per sampled frame, no simplification
    min_amplitude: float = DEFAULT_MIN_AMPLITUDE  # positions (0-100) a peak must rise above
    # its valleys
    rdp_epsilon: float = DEFAULT_RDP_EPSILON  # positions; > 0 adds RDP points to the extremes
    stretch_percentile: float | None = None  # e.g. 5: map the 5th..95th percentile to 0..100
    invert: bool = False  # 100 - pos
    offset_ms: int = 0  # shift every action in time (negative = earlier); points before 0 drop

    def __post_init__(self) -> None:
        if not (is_finite(self.min_amplitude) and 0 <= self.min_amplitude <= 100
                and is_finite(self.rdp_epsilon) and 0 <= self.rdp_epsilon <= 100):
            raise UsageError("--min-amplitude and --rdp must be numbers from 0 to 100")
        if self.stretch_percentile is not None and not (
                is_finite(self.stretch_percentile) and 0 <= self.stretch_percentile < 50):
            raise UsageError("--stretch must be a percentile in [0, 50)")
        if not (is_finite(self.offset_ms) and abs(self.offset_ms) <= MAX_OFFSET_MS):
            raise UsageError(f"--offset must be a number of ms within +-{MAX_OFFSET_MS}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PostprocessOptions:
        """The post-processing options among a mapping's keys (a studio job's options, a
        script's metadata); every other key is ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


def stretch_range(pos: np.ndarray, percentile: float) -> np.ndarray:
    """Map the [p, 100-p] percentile range of the positions onto 0..100 (clipped)."""
    low, high = np.percentile(pos, [percentile, 100.0 - percentile])
    if high - low < 1e-6:
        return pos
    return np.clip((pos - low) * (100.0 / (high - low)), 0.0, 100.0)


def turning_points(pos: np.ndarray, min_amplitude: float) -> np.ndarray:
    """Indices of alternating peaks and valleys, each at least min_amplitude from the last.

    A zigzag with hysteresis: follow the running extreme in the current direction and confirm
    it once the signal has come back by min_amplitude, so jitter smaller than that is ignored.
    The first and last frames are always kept.
    """
    n = len(pos)
    if n <= 2:
        return np.arange(n)
    amplitude = max(float(min_amplitude), 1e-9)
    pos = np.asarray(pos, dtype=np.float64).tolist()  # plain floats: the loop runs 5x faster
    keep = [0]
    low = high = 0  # running extremes while the first direction is unknown
    direction = 0  # +1 rising towards a peak, -1 falling towards a valley, 0 not known yet
    extreme = 0  # index of the running extreme in the current direction
    for i in range(1, n):
        if direction == 0:
            low = i if pos[i] < pos[low] else low
            high = i if pos[i] > pos[high] else high
            if pos[i] - pos[low] >= amplitude:
                direction, extreme = 1, i
                keep.append(low)
            elif pos[high] - pos[i] >= amplitude:
                direction, extreme = -1, i
                keep.append(high)
        elif direction == 1:
            if pos[i] > pos[extreme]:
                extreme = i
            elif pos[extreme] - pos[i] >= amplitude:
                keep.append(extreme)
                direction, extreme = -1, i
        else:
            if pos[i] < pos[extreme]:
                extreme = i
            elif pos[i] - pos[extreme] >= amplitude:
                keep.append(extreme)
                direction, extreme = 1, i
    if direction != 0:
        keep.append(extreme)
    keep.append(n - 1)
    return np.unique(np.asarray(keep, dtype=np.int64))


LONG_SEGMENT = 256  # points: a segment this long is measured on its own, through slices


def rdp_points(t: np.ndarray, pos: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker over (time, position); distance measured in position units.

    Depth by depth: each long segment is measured on its own (slices, no copies of indices),
    the many short ones of a long video all at once (each is too small for numpy calls of its
    own). Either way a segment splits exactly as in the textbook algorithm: at the first point
    farthest from its chord, when that is beyond epsilon."""
    n = len(pos)
    if n <= 2 or epsilon <= 0:
        return np.arange(n)
    t, pos = np.asarray(t, dtype=np.float64), np.asarray(pos, dtype=np.float64)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    a, b = np.array([0]), np.array([n - 1])
    while len(a):
        inner = b - a - 1
        a, b, inner = a[inner > 0], b[inner > 0], inner[inner > 0]
        mid = np.zeros(len(a), dtype=np.int64)
        split = np.zeros(len(a), dtype=bool)
        long = inner >= LONG_SEGMENT
        for i in np.flatnonzero(long):
            first, last = int(a[i]), int(b[i])
            dist = _chord_distance(t[first + 1:last], pos[first + 1:last], t[first], t[last],
                                   pos[first], pos[last])
            worst = int(np.argmax(dist))
            split[i], mid[i] = dist[worst] > epsilon, first + 1 + worst
        short = ~long
        if short.any():
            split[short], mid[short] = _split_short(t, pos, a[short], b[short], epsilon)
        if not split.any():
            break
        keep[mid[split]] = True
        a, b = np.concatenate((a[split], mid[split])), np.concatenate((mid[split], b[split]))
    return np.flatnonzero(keep)


def _chord_distance(t_in: np.ndarray, pos_in: np.ndarray, t_a: Any, t_b: Any, pos_a: Any,
                    pos_b: Any) -> np.ndarray:
    """|pos - chord| for points between a and b: the chord is pos_a + frac * (pos_b - pos_a)
    with frac = (t - t_a) / (t_b - t_a), or flat when a and b share a time. Arrays or per-point
    repeats alike; the same float operations in the same order either way."""
    dist = t_in - t_a
    span = t_b - t_a
    if np.all(span > 0):
        dist /= span
    else:
        dist = np.where(span > 0, dist / np.where(span > 0, span, 1.0), 0.0)
    dist *= pos_b - pos_a
    dist += pos_a
    np.subtract(pos_in, dist, out=dist)
    return np.abs(dist, out=dist)


def _split_short(t: np.ndarray, pos: np.ndarray, a: np.ndarray, b: np.ndarray,
                 epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(splits, farthest point) of many short segments a[i]..b[i], measured at once."""
    inner = b - a - 1
    starts = np.concatenate(([0], np.cumsum(inner)[:-1]))
    k = np.arange(int(inner.sum())) + np.repeat(a + 1 - starts, inner)  # the inner points
    dist = _chord_distance(t[k], pos[k], np.repeat(t[a], inner), np.repeat(t[b], inner),
                           np.repeat(pos[a], inner), np.repeat(pos[b], inner))
    farthest = np.maximum.reduceat(dist, starts)
    split = farthest > epsilon
    mid = np.zeros(len(a), dtype=np.int64)
    # The first farthest point of each segment that splits (their distances are finite).
    at_max = np.flatnonzero((dist == np.repeat(farthest, inner)) & np.repeat(split, inner))
    if not len(at_max):
        return split, mid
    segment = np.searchsorted(starts, at_max, side="right") - 1
    first = np.concatenate(([True], segment[1:] != segment[:-1]))
    mid[segment[first]] = k[at_max[first]]
    return split, mid


def to_actions(pts_ms: np.ndarray, positions: np.ndarray,
               options: PostprocessOptions) -> list[dict[str, int]]:
    """Per-frame times (ms) and positions (0..1) -> sorted funscript actions, unique `at`."""
    t = np.asarray(pts_ms, dtype=np.float64)
    pos = np.clip(np.asarray(positions, dtype=np.float64) * 100.0, 0.0, 100.0)
    if options.stretch_percentile is not None and len(pos):
        pos = stretch_range(pos, options.stretch_percentile)
    if options.invert:
        pos = 100.0 - pos
    if options.raw:
        index = np.arange(len(pos))
    else:
        index = turning_points(np.round(pos), options.min_amplitude)
        if options.rdp_epsilon > 0:
            index = np.union1d(index, rdp_points(t, pos, options.rdp_epsilon))
    at = np.round(t[index]).astype(np.int64) + int(options.offset_ms)
    value = np.round(pos[index]).astype(np.int64)
    # Times never decrease: drop points shifted before the start, and all but the first of
    # frames that fall in the same millisecond.
    kept = (at >= 0) & np.concatenate(([True], at[1:] != at[:-1]))
    return [{"at": a, "pos": p} for a, p in zip(at[kept].tolist(), value[kept].tolist())]


def offset_notice(offset_ms: int, first_ms: float, last_ms: float, video_name: str,
                  video_end_ms: float | None = None) -> str | None:
    """What --offset does to frames first_ms..last_ms: None when every point stays inside the
    video, a notice when some move before 0 (dropped) or a second or more past video_end_ms
    (kept, though no player reaches them), UsageError when every point does (a script with
    nothing to play).
    """
    if offset_ms < 0 and first_ms + offset_ms < 0:
        if last_ms + offset_ms < 0:
            raise UsageError(f"--offset {offset_ms} ms moves every action before 0 "
                             f"({video_name} lasts {last_ms / 1000.0:.1f} s)")
        return (f"--offset {offset_ms} ms moves the first {(-offset_ms - first_ms) / 1000.0:.1f}"
                " s before 0: those points are dropped")
    if offset_ms > 0 and video_end_ms is not None:
        if first_ms + offset_ms >= video_end_ms:
            raise UsageError(f"--offset {offset_ms} ms moves every action past the end of "
                             f"{video_name} ({video_end_ms / 1000.0:.1f} s)")
        past = last_ms + offset_ms - video_end_ms
        if past >= 1000:
            return (f"--offset {offset_ms} ms moves the last {past / 1000.0:.1f} s past the end "
                    f"of {video_name}: no player reaches those points")
    return None
