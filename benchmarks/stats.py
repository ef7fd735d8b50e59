"""Timing helpers: repeated measurements summarized as median and spread."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median, quartiles, extremes and count of a list of measurements (seconds or rates)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {"median": float(np.median(values)), "p25": float(np.percentile(values, 25)),
            "p75": float(np.percentile(values, 75)), "min": float(values.min()),
            "max": float(values.max()), "n": int(values.size)}


def repeat_timed(work: Callable[[], Any], repeats: int, warmup: int,
                 sync: Callable[[], None] | None = None) -> list[float]:
    """Wall seconds of `work` over `repeats` runs after `warmup` untimed ones.

    `sync` waits for queued device work before each clock read, so a GPU call that returns
    early is not mistaken for a fast one.
    """
    for _ in range(warmup):
        work()
    if sync is not None:
        sync()
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return times


class StageClock:
    """Accumulates wall time per named stage (decode, resize, encode, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = work()
        self.add(stage, time.perf_counter() - start)
        return result
