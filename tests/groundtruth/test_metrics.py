"""Agreement metrics catch flipped axes and time shifts, not only missing files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fsrun.errors import InputError
from fsrun.groundtruth.metrics import compare, compare_files, pearson_r

T = np.arange(0, 10_000, 33.0)
POS = 50 + 40 * np.sin(2 * np.pi * T / 1300.0) * np.cos(2 * np.pi * T / 4100.0)


def test_identical_tracks_agree() -> None:
    a = compare(T, POS, T, POS)
    assert a.pearson_r == pytest.approx(1.0)
    assert a.mean_abs_error == pytest.approx(0.0)
    assert a.lag_ms == 0


def test_flipped_axis_is_negative() -> None:
    assert compare(T, 100 - POS, T, POS).pearson_r == pytest.approx(-1.0)


@pytest.mark.parametrize("shift_ms", [-120.0, 40.0, 250.0])
def test_time_shift_shows_as_lag(shift_ms: float) -> None:
    late = compare(T + shift_ms, POS, T, POS)
    assert late.lag_ms == pytest.approx(shift_ms, abs=1.0)
    assert late.pearson_r < 0.999


def test_constant_prediction_has_no_correlation() -> None:
    assert pearson_r(np.full(10, 3.0), np.arange(10.0)) == 0.0


def test_files_and_bad_input(tmp_path: Path) -> None:
    def write(name: str, pos: np.ndarray) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps({"actions": [{"at": int(t), "pos": int(round(p))}
                                                for t, p in zip(T, pos)]}))
        return path

    assert compare_files(write("a.funscript", POS), write("b.funscript", POS)).pearson_r > 0.99
    (tmp_path / "bad.funscript").write_text("{")
    with pytest.raises(InputError):
        compare_files(tmp_path / "bad.funscript", tmp_path / "a.funscript")
    with pytest.raises(InputError):
        compare(T + 1e6, POS, T, POS)


def test_points_at_whole_milliseconds_count_like_the_frames_they_round() -> None:
    """A prediction at frame times (33.333 ms apart) and the same track written at whole
    milliseconds compare over the same truth points (the truth is written in whole ms too)."""
    frames = np.arange(300) * (1000.0 / 30.0)
    truth_ms = np.round(frames)
    raw = compare(frames, POS[:300], truth_ms, POS[:300])
    written = compare(np.round(frames), POS[:300], truth_ms, POS[:300])
    assert raw.points == written.points == 300
