"""Activation ranges that minimize the expected uint8 quantization error of each tensor.

MinMax keeps every calibration value inside the range, so one rare extreme widens the step of
every other value; percentile and entropy clip by a fixed share or a distribution distance. This
picks, per tensor, the [low, high] that minimizes the mean squared error of the quantized values
on the calibration histogram: rounding inside the range (step^2 / 12 a value) plus clipping
outside it, both computed from cumulative sums so that every candidate pair costs O(1).
"""
from __future__ import annotations

import numpy as np

LEVELS = 255  # uint8 steps between the range's ends
CANDIDATES = 128  # fractions of the observed extremes tried on each side


def clipping_costs(centres: np.ndarray, counts: np.ndarray, bounds: np.ndarray,
                   above: bool) -> np.ndarray:
    """Sum of count * (x - bound)^2 over the values beyond each bound (above it, or below it);
    centres ascending."""
    moments = [np.concatenate([[0.0], np.cumsum(counts * centres ** k)]) for k in range(3)]
    if above:
        index = np.searchsorted(centres, bounds, side="right")
        s0, s1, s2 = (m[-1] - m[index] for m in moments)
    else:
        index = np.searchsorted(centres, bounds, side="left")
        s0, s1, s2 = (m[index] for m in moments)
    return np.maximum(s2 - 2.0 * bounds * s1 + bounds * bounds * s0, 0.0)


def mse_range(counts: np.ndarray, edges: np.ndarray, low: float, high: float,
              candidates: int = CANDIDATES) -> tuple[float, float]:
    """The [low', high'] (low <= low' <= 0 <= high' <= high) with the least expected squared
    error when values distributed as the histogram are quantized to LEVELS + 1 levels."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low <= 0.0 or counts.sum() == 0:
        return low, high
    centres = 0.5 * (edges[:-1] + edges[1:]).astype(np.float64)
    counts = counts.astype(np.float64)
    fractions = np.linspace(1.0 / candidates, 1.0, candidates)
    highs = high * fractions if high > 0 else np.zeros(1)
    lows = low * fractions if low < 0 else np.zeros(1)
    clip_high = clipping_costs(centres, counts, highs, above=True)  # [H]
    clip_low = clipping_costs(centres, counts, lows, above=False)  # [L]
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    inside_high = cum[np.searchsorted(centres, highs, side="right")]  # values <= high
    inside_low = cum[np.searchsorted(centres, lows, side="left")]  # values < low
    inside = inside_high[None, :] - inside_low[:, None]  # [L, H]
    step = (highs[None, :] - lows[:, None]) / LEVELS
    cost = clip_low[:, None] + clip_high[None, :] + inside * step * step / 12.0
    best_low, best_high = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return float(lows[best_low]), float(highs[best_high])
