"""The timestamp sampler: which frames a model at 30 fps sees, for any source frame rate."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from fsrun.errors import UsageError
from fsrun.run.sampling import TimeRange, TimestampSampler, sample_timestamps


def nearest_frame_reference(pts: list[float], fps: float) -> list[float]:
    """Offline definition: for each tick t0 + k/fps, the nearest frame; each frame at most once."""
    times = np.asarray(pts)
    # Ticks up to half a frame interval past the last frame: later ones belong to frames the
    # video does not have.
    ticks = np.arange(times[0], times[-1] + (times[-1] - times[-2]) / 2 - 1e-9, 1.0 / fps)
    picks = sorted({int(np.argmin(np.abs(times - t))) for t in ticks})
    return [pts[i] for i in picks]


def cfr(fps: Fraction | float, seconds: float) -> list[float]:
    period = 1 / Fraction(fps).limit_denominator(100000)
    count = int(seconds * float(fps))
    return [float(i * period) for i in range(count)]


@pytest.mark.parametrize("source_fps, expected_fraction", [
    (60, 0.5), (120, 0.25), (50, 0.6), (Fraction(60000, 1001), 30 / (60000 / 1001)),
    (30, 1.0), (Fraction(30000, 1001), 1.0), (25, 1.0), (24, 1.0),
])
def test_cfr_matches_nearest_frame_definition(source_fps: Fraction | float,
                                              expected_fraction: float) -> None:
    pts = cfr(source_fps, 20.0)
    taken = sample_timestamps(pts, 30.0)
    assert taken == nearest_frame_reference(pts, 30.0)
    assert len(taken) == pytest.approx(expected_fraction * len(pts), abs=2)


def test_60fps_takes_every_other_frame_exactly() -> None:
    pts = cfr(60, 5.0)
    assert sample_timestamps(pts, 30.0) == pts[::2]


def test_slower_sources_are_never_duplicated() -> None:
    for fps in (24, 25, Fraction(30000, 1001)):
        pts = cfr(fps, 60.0)  # long enough for 29.97 to drift a whole frame against 30
        assert sample_timestamps(pts, 30.0) == pts


def test_variable_frame_rate_follows_timestamps() -> None:
    # 60 fps, then 24 fps, then a 400 ms gap (dropped frames), then 30 fps.
    pts = [i / 60 for i in range(30)]
    pts += [0.5 + i / 24 for i in range(24)]
    pts += [1.9 + i / 30 for i in range(30)]
    taken = sample_timestamps(pts, 30.0)
    assert taken == nearest_frame_reference(pts, 30.0)
    assert taken[:15] == pts[0:30:2]
    assert set(pts[30:54]) <= set(taken)  # 24 fps part: every frame
    assert set(pts[54:]) <= set(taken)  # frames after the gap: every one
    assert np.all(np.diff(taken) > 0)


def test_random_jitter_stays_on_the_tick_grid() -> None:
    rng = np.random.default_rng(1)
    pts = np.cumsum(rng.uniform(0.010, 0.025, size=2000)).tolist()
    taken = np.asarray(sample_timestamps(pts, 30.0))
    assert np.all(np.diff(taken) > 0)
    # One frame per tick on average, and each within one source gap of its tick.
    span = taken[-1] - taken[0]
    assert len(taken) == pytest.approx(span * 30 + 1, rel=0.02)
    ticks = taken[0] + np.round((taken - taken[0]) * 30) / 30
    assert np.max(np.abs(taken - ticks)) <= 0.025


def test_start_and_end() -> None:
    pts = cfr(30, 10.0)
    taken = sample_timestamps(pts, 30.0, TimeRange(start_s=2.0, end_s=4.0))
    assert taken[0] == pytest.approx(2.0)
    assert taken[-1] < 4.0
    assert len(taken) == 60
    sampler = TimestampSampler(30.0, TimeRange(0.0, 4.0))
    assert not sampler.past_end(3.99) and sampler.past_end(4.0)


def test_invalid_ranges_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        TimeRange(start_s=-1)
    with pytest.raises(UsageError):
        TimeRange(start_s=5, end_s=5)
    with pytest.raises(UsageError):
        TimestampSampler(0.0)


def test_repeated_timestamps_are_taken_once() -> None:
    sampler = TimestampSampler(30.0)
    assert sampler.accept(0.0)
    assert not sampler.accept(0.0)
    assert sampler.accept(1 / 30)


@pytest.mark.parametrize("source_fps", [60, 24, Fraction(30000, 1001), 50])
def test_resume_after_gives_the_same_frames(source_fps: Fraction | float) -> None:
    pts = cfr(source_fps, 8.0)
    full = sample_timestamps(pts, 30.0)
    cut = 37
    sampler = TimestampSampler(30.0)
    sampler.resume_after(full[0], full[cut - 1], cut)
    # The source seeks to a keyframe before the last cached frame and replays from there.
    replay = [t for t in pts if t >= full[cut - 1] - 0.5]
    rest = [t for t in replay if sampler.accept(t)]
    assert full[:cut] + rest == full
    assert sampler.accepted == len(full)
