"""Agreement between a predicted funscript and the truth: Pearson r, error, and time lag.

Both tracks are put on the truth's timestamps by linear interpolation (funscript players
interpolate the same way), over the time span both cover. The lag is the shift of the
prediction that correlates best with the truth: a stitching or timestamp bug shows up there
even when r stays high.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsrun.errors import InputError
from fsrun.files.funscript import read_actions

HALF_MS = 0.5  # rounding of a time to whole milliseconds


@dataclass(frozen=True)
class Agreement:
    pearson_r: float  # correlation of predicted and true positions at common times
    mean_abs_error: float  # in funscript units (0-100)
    lag_ms: float  # shift that maximizes r; positive: the prediction is late
    points: int  # number of truth points compared

    def summary(self) -> str:
        return (f"Pearson r {self.pearson_r:.3f}, mean abs error {self.mean_abs_error:.1f} pos, "
                f"lag {self.lag_ms:+.0f} ms over {self.points} points")


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is constant (no motion to agree on)."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denom) if denom > 0 else 0.0


def _r_at_lag(pred_ms: np.ndarray, pred_pos: np.ndarray, truth_ms: np.ndarray,
              truth_pos: np.ndarray, lag_ms: float) -> tuple[float, np.ndarray]:
    """r between truth and the prediction read lag_ms later, over the span both cover."""
    shifted = truth_ms + lag_ms
    # Funscript times are whole milliseconds: a truth point within rounding of the prediction's
    # first or last frame is at that frame (np.interp holds the end value for it).
    inside = (shifted >= pred_ms[0] - HALF_MS) & (shifted <= pred_ms[-1] + HALF_MS)
    if inside.sum() < 3:
        return 0.0, inside
    return pearson_r(np.interp(shifted[inside], pred_ms, pred_pos), truth_pos[inside]), inside


def compare(pred_ms: np.ndarray, pred_pos: np.ndarray, truth_ms: np.ndarray,
            truth_pos: np.ndarray, max_lag_ms: float = 500.0, lag_step_ms: float = 1.0) -> Agreement:
    """Agreement of a prediction with the truth (times in ms, positions 0-100)."""
    pred_ms, pred_pos = np.asarray(pred_ms, float), np.asarray(pred_pos, float)
    truth_ms, truth_pos = np.asarray(truth_ms, float), np.asarray(truth_pos, float)
    r, inside = _r_at_lag(pred_ms, pred_pos, truth_ms, truth_pos, 0.0)
    if inside.sum() < 3:
        raise InputError("prediction and truth share fewer than 3 points in time")
    error = float(np.mean(np.abs(np.interp(truth_ms[inside], pred_ms, pred_pos)
                                 - truth_pos[inside])))
    lags = np.arange(-max_lag_ms, max_lag_ms + lag_step_ms / 2, lag_step_ms)
    scores = np.array([_r_at_lag(pred_ms, pred_pos, truth_ms, truth_pos, lag)[0] for lag in lags])
    best = float(lags[int(np.argmax(scores))])
    return Agreement(pearson_r=r, mean_abs_error=error, lag_ms=best, points=int(inside.sum()))


def compare_files(predicted: Path | str, truth: Path | str, **options: float) -> Agreement:
    """Agreement of two funscript files."""
    return compare(*read_actions(predicted), *read_actions(truth), **options)
