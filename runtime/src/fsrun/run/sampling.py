"""Choose the frames the model sees, by container timestamp, at the model's frame rate.

Targets are t0 + k / fps (k = 0, 1, ...) where t0 is the first frame in range. A frame is taken
when it is the nearest frame to the next target: frames arrive in order, so "nearest" is judged
against the next frame expected one observed frame interval later. No frame is taken twice and
no frame is duplicated, so a 60 fps video feeds a 30 fps model every other frame, a 24 or 29.97
fps video feeds every frame, and a variable-frame-rate video gets the frame closest to each tick.

The sampler's whole state after taking a frame is (t0, that frame's time), which is what lets an
interrupted run resume exactly where it stopped (see `resume_after`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fsrun.errors import UsageError
from fsrun.numbers import is_finite

# Timestamps within this many seconds count as equal (PTS * time_base rounding).
_EPS = 1e-6


@dataclass
class TimeRange:
    start_s: float = 0.0  # first time to consider, seconds from the start of the video
    end_s: float | None = None  # stop before this time; None runs to the end

    def __post_init__(self) -> None:
        for name, value in (("--start", self.start_s), ("--end", self.end_s)):
            if value is not None and not is_finite(value):
                raise UsageError(f"{name} must be a finite number of seconds, got {value!r}")
        if self.start_s < 0:
            raise UsageError(f"--start must be >= 0, got {self.start_s}")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise UsageError(f"--end ({self.end_s}) must be after --start ({self.start_s})")


class TimestampSampler:
    """FrameSelector: accept(pts_s) says whether the model needs the frame at that time."""

    def __init__(self, fps: float, time_range: TimeRange | None = None):
        if fps <= 0:
            raise UsageError(f"model fps must be positive, got {fps}")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self.range = time_range or TimeRange()
        self.t0: float | None = None  # time of the first accepted frame
        self._k = 0  # index of the next target time
        self._previous: float | None = None  # time of the last frame seen, taken or not
        self.accepted = 0  # frames taken so far

    def target(self, k: int) -> float:
        assert self.t0 is not None
        return self.t0 + k * self.period

    def past_end(self, pts_s: float) -> bool:
        """True once frames are at or after --end, so the source can stop decoding."""
        return self.range.end_s is not None and pts_s >= self.range.end_s - _EPS

    def accept(self, pts_s: float) -> bool:
        if pts_s < self.range.start_s - _EPS or self.past_end(pts_s):
            self._previous = pts_s
            return False
        if self._previous is not None and pts_s <= self._previous + _EPS:
            return False  # a repeated or out-of-order timestamp: never the same time twice
        if self.t0 is None:
            self.t0 = pts_s
            self._take(pts_s)
            return True
        # The next frame is expected one observed interval later; this one is nearer to the
        # target when the target lies before the midpoint between the two.
        interval = pts_s - self._previous if self._previous is not None else self.period
        take = self.target(self._k) < pts_s + interval / 2 - _EPS
        if take:
            self._take(pts_s)
        else:
            self._previous = pts_s
        return take

    def _take(self, pts_s: float) -> None:
        self._previous = pts_s
        self.accepted += 1
        self._k = self._first_target_after(pts_s)

    def _first_target_after(self, pts_s: float) -> int:
        """Smallest k whose target is at or past the midpoint to the next model tick.

        Targets before that belong to this frame (or to frames already passed), so they are
        skipped; this depends only on t0 and pts_s, which makes resuming exact.
        """
        assert self.t0 is not None
        limit = pts_s + self.period / 2 - self.t0
        return max(self._k, math.ceil(limit / self.period - 1e-9))

    def resume_after(self, t0: float, last_pts_s: float, accepted: int) -> None:
        """Restore the state after `accepted` frames were taken, the last at last_pts_s.

        The source must then deliver only frames after last_pts_s.
        """
        self.t0 = t0
        self._k = 0
        self._previous = last_pts_s
        self.accepted = accepted
        self._k = self._first_target_after(last_pts_s)


def sample_timestamps(pts_s: list[float], fps: float, time_range: TimeRange | None = None) -> list[float]:
    """The timestamps a TimestampSampler takes from a list of frame times (in decode order)."""
    sampler = TimestampSampler(fps, time_range)
    return [t for t in pts_s if sampler.accept(t)]


def coverage(pts_ms: np.ndarray, duration_s: float, start_s: float, end_s: float | None,
             slack_s: float, window_s: float, video_name: str) -> tuple[list[int], str | None]:
    """([first, last] frame time in ms, a notice when the frames stop short of the length the
    header claims (or of --end) by more than slack_s, else None).

    A cut-off download decodes cleanly up to where it stops in every container; only this
    comparison notices what is missing. slack_s is what a complete file still leaves between
    its last sampled frame and its end (that frame's own interval, the sampling step, one
    interval to spare); a late first frame is told only past one window."""
    first_ms, last_ms = float(pts_ms[0]), float(pts_ms[-1])
    covered = [int(round(first_ms)), int(round(last_ms))]
    if duration_s <= 0:
        return covered, None  # the container does not say: nothing to compare with
    high = duration_s if end_s is None else min(end_s, duration_s)
    if high - last_ms / 1000.0 > slack_s:
        claim = ("its header claims" if end_s is None or end_s >= duration_s
                 else f"asked for (--end; its header claims {duration_s:.1f} s)")
        return covered, (f"{video_name}: cut off? frames stop at {last_ms / 1000.0:.1f} s of "
                         f"the {high:.1f} s {claim}")
    if first_ms / 1000.0 - start_s > window_s:
        return covered, (f"{video_name}: frames start at {first_ms / 1000.0:.1f} s, not at "
                         f"{start_s:.1f} s; the file may be damaged at its start")
    return covered, None
