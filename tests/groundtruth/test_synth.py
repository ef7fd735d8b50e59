"""Synthetic clips: known tracks, every codec and rate, timestamps that match the truth."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from fsrun.synth.cli import write_clips
from fsrun.synth.encode import CODECS, ClipSpec, parse_fps, write_clip
from fsrun.synth.render import make_scene, render_frame, target_center_y
from fsrun.synth.tracks import TRACK_KINDS, make_track


@pytest.mark.parametrize("kind", list(TRACK_KINDS))
def test_tracks_stay_in_range_move_and_repeat_by_seed(kind: str) -> None:
    a = make_track(kind, 8.0, np.random.default_rng(5))
    b = make_track(kind, 8.0, np.random.default_rng(5))
    c = make_track(kind, 8.0, np.random.default_rng(6))
    assert a.positions.min() >= 0.0 and a.positions.max() <= 1.0
    assert np.ptp(a.positions) > 0.3, "a track must move"
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)
    assert abs(a.duration_s - 8.0) < 0.01


def _target_row(scene, position: float) -> float:
    """Row of the target's centre, from the difference against a frame without it moved away."""
    scene.noise_sigma = 0.0
    scene.distractors = []
    rng = np.random.default_rng(0)
    here = render_frame(scene, 1.0, position, rng).astype(float)
    away = render_frame(scene, 1.0, 1.0 - position, rng).astype(float)
    changed = np.abs(here - away).sum(axis=2)
    rows = np.nonzero(changed.max(axis=1) > 30)[0]
    # Both discs differ from each other; the one at `position` is on its own side of the middle.
    middle = scene.height / 2
    mine = rows[rows < middle] if target_center_y(position, scene.height) < middle else rows[rows > middle]
    return float(mine.mean())


def test_position_100_is_the_top_of_the_frame() -> None:
    scene = make_scene(np.random.default_rng(1), 96, 72, 3.0)
    top, bottom = _target_row(scene, 1.0), _target_row(scene, 0.0)
    assert top < bottom
    assert abs(top - target_center_y(1.0, 72)) < 3
    assert abs(bottom - target_center_y(0.0, 72)) < 3


def test_parse_fps_keeps_ntsc_rates_exact() -> None:
    assert parse_fps("29.97") * 1001 == 30000
    assert parse_fps("25") == 25
    assert parse_fps("vfr") == "vfr"
    with pytest.raises(ValueError):
        parse_fps("fast")


def _decoded_times(path: Path) -> tuple[np.ndarray, int, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [frame.time for frame in container.decode(stream)]
        return np.array(times), stream.codec_context.width, stream.codec_context.name


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("fps", ["24", "29.97", "60", "vfr"])
def test_clip_timestamps_match_the_truth(tmp_path: Path, codec: str, fps: str) -> None:
    clip = write_clip(ClipSpec(seconds=2.0, fps=fps, codec=codec, width=64, height=48, seed=3),
                      tmp_path)
    times, width, _ = _decoded_times(clip.video)
    assert width == 64
    assert len(times) == len(clip.times_s)
    assert np.max(np.abs(times - clip.times_s)) < 0.001
    doc = json.loads(clip.truth.read_text())
    at = [a["at"] for a in doc["actions"]]
    assert at == sorted(set(at)) and all(isinstance(a["pos"], int) for a in doc["actions"])
    truth = np.interp(times * 1000, at, [a["pos"] for a in doc["actions"]])
    np.testing.assert_allclose(truth, 100 * clip.positions, atol=0.6)
    intervals = np.diff(times)
    if fps == "vfr":
        assert intervals.max() - intervals.min() > 0.015, "a VFR clip must change its rate"
    else:
        assert np.ptp(intervals) < 0.0015


def test_side_by_side_clip_is_twice_as_wide(tmp_path: Path) -> None:
    clip = write_clip(ClipSpec(seconds=1.0, width=64, height=48, layout="sbs", seed=2), tmp_path)
    _, width, _ = _decoded_times(clip.video)
    assert width == 128


def test_write_clips_cycles_rates_and_leaves_no_temp_files(tmp_path: Path) -> None:
    clips = write_clips(tmp_path, 4, 1.0, ["24", "60"], ["h264", "vp9"], 10, (32, 24))
    assert [c.video.stem.split("_")[-3] for c in clips] == ["24", "60", "24", "60"]
    assert len(list(tmp_path.glob("*.truth.funscript"))) == 4
    assert all(c.truth == c.video.with_suffix(".truth.funscript") for c in clips)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".part", ".tmp"))]


def test_synth_command_writes_pairs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fsrun.synth.cli import synth_command

    result = CliRunner().invoke(synth_command, [str(tmp_path), "--count", "2", "--seconds", "1",
                                                "--size", "32x24", "--codec", "h264,av1"])
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.truth.funscript"))) == 2
    assert not [p for p in tmp_path.glob("*.funscript") if not p.name.endswith(".truth.funscript")]
    bad = CliRunner().invoke(synth_command, [str(tmp_path), "--codec", "mpeg2"])
    assert bad.exit_code != 0


def test_synth_output_never_collides_with_fsrun_output(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """fsrun on a synth folder writes its own VIDEO.funscript beside the truth; a second synth
    into that folder is refused with nothing changed, and --force replaces only synth's files."""
    from fsrun.cli import main

    synth = ["synth", str(tmp_path), "--count", "2", "--seconds", "2", "--size", "32x24"]
    assert main(synth) == 0
    videos = sorted(tmp_path.glob("*.mp4"))
    assert main([str(videos[0]), "-q"]) == 0
    predicted = videos[0].with_suffix(".funscript")
    assert json.loads(predicted.read_text())["metadata"]["generator"]["name"] == "fsrun"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    capsys.readouterr()
    assert main(synth) == 5
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exists" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    assert main([*synth, "--force"]) == 0
    assert predicted.read_bytes() == before[predicted.name]  # fsrun's own output untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
