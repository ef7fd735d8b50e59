"""Postprocessing: raw points, peaks and valleys, RDP, stretch, invert, offset."""
from __future__ import annotations

import numpy as np
import pytest

from fsrun.errors import UsageError
from fsrun.run.postprocess import PostprocessOptions, rdp_points, to_actions, turning_points


def strokes(n: int = 300, jitter: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) * (1000 / 30)
    pos = 0.5 + 0.4 * np.sin(2 * np.pi * t / 1000)  # one stroke a second, 10..90
    pos = pos + np.random.default_rng(seed).uniform(-jitter, jitter, n)
    return t, pos


def test_raw_keeps_every_frame_at_its_timestamp() -> None:
    t, pos = strokes()
    actions = to_actions(t + 0.4, pos, PostprocessOptions(raw=True))
    assert [a["at"] for a in actions] == [int(round(x + 0.4)) for x in t]
    assert [a["pos"] for a in actions] == [int(round(100 * p)) for p in pos]


def test_peaks_and_valleys_ignore_jitter() -> None:
    t, pos = strokes(jitter=0.03)
    actions = to_actions(t, pos, PostprocessOptions(rdp_epsilon=0.0))
    values = [a["pos"] for a in actions]
    # 10 strokes: about 20 extremes plus the ends, not 300 points of jitter.
    assert 19 <= len(actions) <= 24
    inner = values[1:-1]
    assert all(v >= 80 or v <= 20 for v in inner)
    assert all((a - b) * (b - c) < 0 for a, b, c in zip(inner, inner[1:], inner[2:]))


def test_default_follows_curved_strokes_with_few_points() -> None:
    t, pos = strokes(jitter=0.03)
    actions = to_actions(t, pos, PostprocessOptions())
    at = np.array([a["at"] for a in actions], float)
    written = np.interp(t, at, [a["pos"] for a in actions])
    clean = 100 * strokes()[1]
    # within jitter (3) + RDP epsilon (4) + rounding of the clean sine, with a third of the points
    assert np.abs(written - clean).max() <= 8.0
    assert len(actions) <= len(t) // 3
    peaks_only = to_actions(t, pos, PostprocessOptions(rdp_epsilon=0.0))
    straight = np.interp(t, [a["at"] for a in peaks_only], [a["pos"] for a in peaks_only])
    assert np.abs(straight - clean).max() > 8.0  # what the RDP points are for


def test_turning_points_respect_min_amplitude() -> None:
    pos = np.array([50, 55, 48, 53, 80, 78, 82, 40, 45, 42, 90.0])
    assert turning_points(pos, 10).tolist() == [0, 2, 6, 7, 10]
    assert turning_points(pos, 100).tolist() == [0, 10]


def test_rdp_keeps_corners_and_drops_straight_runs() -> None:
    t = np.arange(21, dtype=float)
    pos = np.concatenate([np.linspace(0, 100, 11), np.linspace(100, 0, 11)[1:]])
    assert rdp_points(t, pos, 1.0).tolist() == [0, 10, 20]
    assert len(rdp_points(t, pos + np.r_[np.zeros(5), 30, np.zeros(15)], 1.0)) > 3


def test_stretch_invert_and_offset() -> None:
    t, pos = strokes()
    narrow = 0.45 + (pos - 0.5) * 0.2  # 37..53
    raw = to_actions(t, narrow, PostprocessOptions(raw=True, stretch_percentile=0))
    assert min(a["pos"] for a in raw) == 0 and max(a["pos"] for a in raw) == 100
    inverted = to_actions(t, pos, PostprocessOptions(raw=True, invert=True))
    assert [a["pos"] for a in inverted] == [100 - int(round(100 * p)) for p in pos]
    shifted = to_actions(t, pos, PostprocessOptions(raw=True, offset_ms=-100))
    assert shifted[0]["at"] == int(round(t[3])) - 100  # points before 0 dropped
    assert all(a["at"] >= 0 for a in shifted)


def test_same_millisecond_is_written_once() -> None:
    actions = to_actions(np.array([0.0, 0.2, 0.4, 1.0]), np.array([0.1, 0.5, 0.9, 0.3]),
                         PostprocessOptions(raw=True))
    assert [a["at"] for a in actions] == [0, 1]


def test_bad_options() -> None:
    with pytest.raises(UsageError):
        PostprocessOptions(min_amplitude=-1)
    with pytest.raises(UsageError):
        PostprocessOptions(stretch_percentile=60)


def _rdp_one_segment_at_a_time(t: np.ndarray, pos: np.ndarray, epsilon: float) -> np.ndarray:
    """The textbook Ramer-Douglas-Peucker: the reference the level-at-a-time one must equal."""
    keep = np.zeros(len(pos), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pos) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        span = t[b] - t[a]
        seg = np.arange(a + 1, b)
        frac = (t[seg] - t[a]) / span if span > 0 else np.zeros(len(seg))
        dist = np.abs(pos[seg] - (pos[a] + frac * (pos[b] - pos[a])))
        worst = int(np.argmax(dist))
        if dist[worst] > epsilon:
            keep[a + 1 + worst] = True
            stack.extend([(a, a + 1 + worst), (a + 1 + worst, b)])
    return np.flatnonzero(keep)


@pytest.mark.parametrize("case", range(6))
def test_rdp_equals_the_textbook_algorithm(case: int) -> None:
    rng = np.random.default_rng(case)
    n = int(rng.integers(3, 3000))
    t = np.cumsum(rng.choice([0.0, 33.3, 33.4, 100.0], n, p=[0.05, 0.45, 0.45, 0.05]))
    pos = np.round(np.clip(50 + np.cumsum(rng.normal(0, 6, n)), 0, 100)) if case % 2 else \
        np.clip(50 + 45 * np.sin(np.arange(n) / rng.uniform(3, 40)), 0, 100)
    for epsilon in (0.5, 4.0, 20.0):
        assert rdp_points(t, pos, epsilon).tolist() == \
            _rdp_one_segment_at_a_time(t, pos, epsilon).tolist()
