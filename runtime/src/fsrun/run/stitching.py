"""Sliding windows over per-frame embeddings, and the weighted overlap that joins their outputs.

Windows of T frames start every S frames; the last one is aligned to the last frame instead of
running past it. Each frame's position is the weighted mean of every window's prediction for it.
Weights taper toward a window's edges (an LSTM sees least context there) but never reach zero,
so the first and last frames of the video, covered by one window only, still get a value.
A clip shorter than T is padded with its last embedding and the plan says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsrun.errors import UsageError

# Lowest weight, at a window's outermost frames, relative to 1 at its centre.
EDGE_WEIGHT = 0.05


@dataclass(frozen=True)
class WindowPlan:
    frames: int  # sampled frames in the clip (n)
    window: int  # frames per window (T)
    stride: int  # frames between window starts (S)
    starts: np.ndarray  # int64 [W]: first frame of each window
    padded: bool  # True when n < T: one window, padded with the last embedding

    @property
    def count(self) -> int:
        return int(len(self.starts))


def plan_windows(frames: int, window: int, stride: int) -> WindowPlan:
    """Window starts 0, S, 2S, ... and a last window ending exactly on the last frame."""
    if window < 1:
        raise UsageError(f"window must be >= 1, got {window}")
    if not 1 <= stride <= window:
        raise UsageError(f"--stride must be between 1 and the window length {window}, got {stride}")
    if frames < 1:
        raise UsageError("no frames to process (is --start past the end of the video?)")
    if frames <= window:
        return WindowPlan(frames, window, stride, np.zeros(1, dtype=np.int64), frames < window)
    last = frames - window
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, last)
    return WindowPlan(frames, window, stride, starts, False)


def taper_weights(window: int, edge: float = EDGE_WEIGHT) -> np.ndarray:
    """float64 [T]: a Hann bump lifted to `edge` at the ends, 1 in the middle."""
    i = np.arange(window, dtype=np.float64)
    hann = np.sin(np.pi * (i + 0.5) / window) ** 2
    return edge + (1.0 - edge) * hann


def gather_windows(embeddings: np.ndarray, plan: WindowPlan, first: int = 0,
                   count: int | None = None) -> np.ndarray:
    """float32 [B, T, D] for windows first..first+count of the plan (padded when n < T)."""
    stop = plan.count if count is None else min(plan.count, first + count)
    starts = plan.starts[first:stop]
    if plan.padded:
        pad = np.repeat(embeddings[-1:], plan.window - plan.frames, axis=0)
        return np.concatenate([embeddings[:plan.frames], pad])[None].astype(np.float32, copy=False)
    index = starts[:, None] + np.arange(plan.window)[None, :]
    return np.asarray(embeddings[index], dtype=np.float32)


class Stitcher:
    """Accumulates window predictions batch by batch; memory is two floats per frame."""

    def __init__(self, plan: WindowPlan):
        self.plan = plan
        self.weights = taper_weights(plan.window)
        self._sum = np.zeros(plan.frames, dtype=np.float64)
        self._weight = np.zeros(plan.frames, dtype=np.float64)
        self._next = 0  # index of the next window expected

    def add(self, predictions: np.ndarray) -> None:
        """predictions [B, T] for the next B windows of the plan, in order."""
        predictions = np.asarray(predictions, dtype=np.float64)
        if predictions.ndim != 2 or predictions.shape[1] != self.plan.window:
            raise ValueError(f"expected [B, {self.plan.window}] predictions, got {predictions.shape}")
        n = self.plan.frames
        for row in predictions:
            if self._next >= self.plan.count:
                raise ValueError("more window predictions than windows in the plan")
            start = int(self.plan.starts[self._next])
            stop = min(start + self.plan.window, n)
            self._sum[start:stop] += row[:stop - start] * self.weights[:stop - start]
            self._weight[start:stop] += self.weights[:stop - start]
            self._next += 1

    def result(self) -> np.ndarray:
        """float32 [n] positions in 0..1 (clipped: the head ends in a ReLU, not a sigmoid)."""
        if self._next != self.plan.count:
            raise ValueError(f"{self._next} of {self.plan.count} windows added")
        return np.clip(self._sum / self._weight, 0.0, 1.0).astype(np.float32)


def stitch(predictions: np.ndarray, plan: WindowPlan) -> np.ndarray:
    """All windows at once: predictions [W, T] -> positions [n]."""
    stitcher = Stitcher(plan)
    stitcher.add(predictions)
    return stitcher.result()
