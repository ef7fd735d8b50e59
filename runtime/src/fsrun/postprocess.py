"""From per-frame positions to the points a device plays well.

Raw output is one point per sampled frame (30 a second of small jitter, which makes a stroker
buzz). The default keeps the turning points: peaks and valleys that differ from their neighbours
by at least `min_amplitude`, plus the first and last frame; RDP can add the points needed to
follow the curve between them. Range stretch, invert and a time offset come after.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fsrun.errors import UsageError


# Defaults chosen against synthetic ground truth (benchmarks/results/*/stride_accuracy.md):
# peaks and valleys alone draw straight strokes through curved motion (demo model: written r
# 0.946 against 0.999 per frame); adding Ramer-Douglas-Peucker points at 4 positions keeps
# r 0.997 with about 5 actions a second, where 1-2 cost 7-10 a second for +0.002.
DEFAULT_RDP_EPSILON = 4.0


@dataclass
class PostprocessOptions:
    raw: bool = False  # one point per sampled frame, no simplification
    min_amplitude: float = 10.0  # positions (0-100) a peak must rise above its valleys
    rdp_epsilon: float = DEFAULT_RDP_EPSILON  # positions; > 0 adds RDP points to the extremes
    stretch_percentile: float | None = None  # e.g. 5: map the 5th..95th percentile to 0..100
    invert: bool = False  # 100 - pos
    offset_ms: int = 0  # shift every action in time (negative = earlier); points before 0 drop

    def __post_init__(self) -> None:
        if self.min_amplitude < 0 or self.rdp_epsilon < 0:
            raise UsageError("--min-amplitude and --rdp must be >= 0")
        if self.stretch_percentile is not None and not 0 <= self.stretch_percentile < 50:
            raise UsageError("--stretch must be a percentile in [0, 50)")

    def as_dict(self) -> dict:
        return asdict(self)


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


def rdp_points(t: np.ndarray, pos: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker over (time, position); distance measured in position units."""
    n = len(pos)
    if n <= 2 or epsilon <= 0:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        span = t[b] - t[a]
        seg = np.arange(a + 1, b)
        frac = (t[seg] - t[a]) / span if span > 0 else np.zeros(len(seg))
        line = pos[a] + frac * (pos[b] - pos[a])
        dist = np.abs(pos[seg] - line)  # vertical distance: how far the stroke strays
        worst = int(np.argmax(dist))
        if dist[worst] > epsilon:
            mid = a + 1 + worst
            keep[mid] = True
            stack.extend([(a, mid), (mid, b)])
    return np.flatnonzero(keep)


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
    actions: list[dict[str, int]] = []
    last_at = None
    for i in index:
        at = int(round(t[i])) + int(options.offset_ms)
        if at < 0 or at == last_at:
            continue  # shifted before the start, or two frames in the same millisecond
        actions.append({"at": at, "pos": int(round(pos[i]))})
        last_at = at
    return actions


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
