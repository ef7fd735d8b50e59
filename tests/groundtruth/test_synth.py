"""Synthetic clips: known tracks, every codec and rate, timestamps that match the truth."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from fsrun.groundtruth.synth.cli import write_clips
from fsrun.groundtruth.synth.clips import CODECS, ClipSpec, parse_fps, write_clip
from fsrun.groundtruth.synth.render import make_scene, render_frame, target_center_y
from fsrun.groundtruth.synth.tracks import TRACK_KINDS, make_track


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
    scene.look.noise_sigma = 0.0
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

    from fsrun.groundtruth.synth.cli import synth_command

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


def test_classic_family_draws_what_it_drew_before_families_existed() -> None:
    """Existing seeds reproduce: per-frame means recorded from the renderer before the
    randomized family was added (same draws from the seed, same pixels)."""
    from fsrun.groundtruth.synth.clips import frame_times
    from fsrun.groundtruth.synth.families import FAMILIES

    family = FAMILIES["classic"]
    rng = np.random.default_rng(3)
    track = make_track("mixed", 2.5, rng)
    scene = family.make_scene(rng, 64, 48, 2.0, "flat")
    times = frame_times(parse_fps("30"), 2.0, rng)
    frames = list(family.render_frames(scene, track, times, np.random.default_rng(4)))
    np.testing.assert_allclose([frames[i].mean() for i in (0, 20, 59)],
                               [96.545, 91.025, 100.518], atol=0.01)
    np.testing.assert_allclose(track.at(times[[0, 20, 59]]), [0.5235, 0.6812, 0.1443], atol=1e-4)


def _randomized_scene(seed: int, width: int = 96, height: int = 72):
    from fsrun.groundtruth.synth.randomized import make_scene as make_random_scene

    return make_random_scene(np.random.default_rng(seed), width, height, 4.0)


def test_randomized_family_varies_target_background_and_camera() -> None:
    scenes = [_randomized_scene(seed) for seed in range(40)]
    from fsrun.groundtruth.synth.randomized import BACKGROUND_KINDS, TARGET_KINDS

    assert {s.target_kind for s in scenes} == set(TARGET_KINDS)
    assert {s.background_kind for s in scenes} == set(BACKGROUND_KINDS)
    assert {s.target.outline is None for s in scenes} == {True, False}
    sizes = [s.size for s in scenes]
    assert min(sizes) < 0.1 and max(sizes) > 0.15
    assert any(s.movers for s in scenes) and any(not s.movers for s in scenes)
    assert any(s.camera.zoom is not None for s in scenes) and any(len(s.camera.shake) for s in scenes)


@pytest.mark.parametrize("seed", range(8))
def test_randomized_target_height_follows_the_position(seed: int) -> None:
    """With distractors, camera motion, noise and light changes switched off, the only thing
    that differs between pos 1 and pos 0 is the target: high in the frame, then low."""
    from fsrun.groundtruth.synth.randomized import render_frame as render_random

    scene = _randomized_scene(seed)
    scene.movers, scene.camera.zoom, scene.camera.pan, scene.look.noise_sigma = [], None, None, 0.0
    scene.camera.shake = np.zeros((0, 3))
    rng = np.random.default_rng(0)
    high = render_random(scene, 1.0, 1.0, rng).astype(float)
    low = render_random(scene, 1.0, 0.0, rng).astype(float)
    again = render_random(scene, 1.0, 1.0, rng).astype(float)
    assert np.array_equal(high, again)  # nothing else in the frame is random
    rows = np.abs(high - low).sum(axis=(1, 2))
    h = scene.height
    middle = h * (scene.motion.travel[0] + scene.motion.travel[1]) / 2
    above, below = np.arange(h) < middle, np.arange(h) >= middle
    top_row = float((rows * above) @ np.arange(h) / (rows * above).sum())
    bottom_row = float((rows * below) @ np.arange(h) / (rows * below).sum())
    assert abs(top_row - scene.motion.travel[0] * h) < 0.12 * h
    assert abs(bottom_row - scene.motion.travel[1] * h) < 0.12 * h


def test_randomized_clips_repeat_by_seed_and_keep_their_timestamps(tmp_path: Path) -> None:
    spec = ClipSpec(seconds=2.0, fps="vfr", codec="av1", width=48, height=32, seed=9,
                    family="randomized")
    clip = write_clip(spec, tmp_path / "a")
    assert clip.video.name.endswith("_randomized.mp4")
    times, width, _ = _decoded_times(clip.video)
    assert width == 48 and len(times) == len(clip.times_s)
    assert np.max(np.abs(times - clip.times_s)) < 0.001
    assert json.loads(clip.truth.read_text())["metadata"]["synth"]["family"] == "randomized"
    from fsrun.groundtruth.synth.randomized import render_frame as render_random

    a, b, c = _randomized_scene(9), _randomized_scene(9), _randomized_scene(10)
    frame = render_random(a, 0.5, 0.3, np.random.default_rng(1))
    assert np.array_equal(frame, render_random(b, 0.5, 0.3, np.random.default_rng(1)))
    assert not np.array_equal(frame, render_random(c, 0.5, 0.3, np.random.default_rng(1)))
    sbs = write_clip(ClipSpec(seconds=1.0, width=48, height=32, layout="sbs", seed=2,
                              family="randomized"), tmp_path / "b")
    assert _decoded_times(sbs.video)[1] == 96


def test_synth_command_chooses_the_family(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fsrun.groundtruth.synth.cli import synth_command

    result = CliRunner().invoke(synth_command, [str(tmp_path), "--count", "2", "--seconds", "1",
                                                "--size", "32x24", "--family", "randomized"])
    assert result.exit_code == 0, result.output
    truths = sorted(tmp_path.glob("*_randomized.truth.funscript"))
    assert len(truths) == 2
    bad = CliRunner().invoke(synth_command, [str(tmp_path), "--family", "photoreal"])
    assert bad.exit_code != 0 and "photoreal" in bad.output


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling only")
def test_encoding_av1_leaves_the_thread_scheduling_as_it_was(tmp_path: Path) -> None:
    """Run as root, SVT-AV1 turns the encoding thread real-time (SCHED_FIFO); rendering and
    training after it would starve the machine."""
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    write_clip(ClipSpec(seconds=0.5, codec="av1", width=32, height=32, seed=3), tmp_path)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before


def _fill_freed_heap(value: int) -> None:
    """Leave freed heap blocks holding `value`, so a later malloc hands out that content."""
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    blocks = [(ctypes.c_void_p(libc.malloc(size)), size)
              for size in [512, 2048, 8192, 32768, 65536] * 80]
    for block, size in blocks:
        ctypes.memset(block, value, size)
    for block, _ in blocks:
        libc.free(block)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fills glibc's heap")
def test_same_seed_gives_the_same_h264_clip_whatever_the_heap_held(tmp_path: Path) -> None:
    # x264's macroblock-tree pass reads memory it never wrote: with it on, a heap that held 0xFF
    # changed the decoded frames of the same clip (and so what a training on such clips learns)
    videos = []
    for k, value in enumerate((0x00, 0xFF, 0x00, 0xFF)):
        _fill_freed_heap(value)
        clip = write_clip(ClipSpec(seconds=5.0, fps="30", codec="h264", width=96, height=72,
                                   seed=0, family="randomized", track="random_walk"),
                          tmp_path / str(k))
        videos.append(clip.video.read_bytes())
    assert all(video == videos[0] for video in videos[1:])


@pytest.mark.parametrize("family", ["classic", "randomized"])
def test_target_place_is_where_the_target_is_drawn(family: str) -> None:
    """Drawn at pos 1 and pos 0 at the same moment (camera pan, zoom and shake included), the
    two frames differ where the target is: each half of the difference is centred on the place
    target_place gives, to a fraction of a pixel. (An object of several parts is not centred
    on its origin; those scenes are passed over.)"""
    from fsrun.groundtruth.synth.families import FAMILIES

    chosen = FAMILIES[family]
    checked = 0
    for seed in range(12):
        scene = chosen.make_scene(np.random.default_rng(seed), 96, 72, 4.0, "flat")
        if getattr(scene, "target_kind", "disc") == "parts":
            continue
        if family == "randomized":
            scene.movers, scene.look.noise_sigma = [], 0.0
        else:
            scene.distractors, scene.look.noise_sigma = [], 0.0
        t = 1.7
        high = render_frame_of(family, scene, t, 1.0).astype(float)
        low = render_frame_of(family, scene, t, 0.0).astype(float)
        ys, xs = np.nonzero(np.abs(high - low).sum(-1) > 12)
        places = [chosen.target_place(scene, t, p) for p in (1.0, 0.0)]
        nearer_top = ((ys - places[0][1] * 72) ** 2 + (xs - places[0][0] * 96) ** 2
                      < (ys - places[1][1] * 72) ** 2 + (xs - places[1][0] * 96) ** 2)
        for (cx, cy, size), part in zip(places, (nearer_top, ~nearer_top)):
            assert abs((xs[part] + 0.5).mean() / 96 - cx) < 0.01, seed
            assert abs((ys[part] + 0.5).mean() / 72 - cy) < 0.01, seed
            assert 0.04 < size < 0.3
        assert places[0][1] < places[1][1]  # pos 1 is high in the frame
        checked += 1
    assert checked >= 8


def render_frame_of(family: str, scene, t_s: float, position: float) -> np.ndarray:
    from fsrun.groundtruth.synth import randomized, render

    module = {"classic": render, "randomized": randomized}[family]
    return module.render_frame(scene, t_s, position, np.random.default_rng(0))


def test_truth_file_records_the_spec_that_redraws_the_places(tmp_path: Path) -> None:
    from fsrun.groundtruth.synth.clips import spec_from_truth, target_places

    spec = ClipSpec(seconds=1.0, fps="25", codec="h264", width=48, height=32, track="sine",
                    seed=77, family="randomized")
    clip = write_clip(spec, tmp_path)
    metadata = json.loads(clip.truth.read_text())["metadata"]
    assert spec_from_truth(metadata) == spec
    places = target_places(spec, clip.times_s)
    assert places.shape == (len(clip.times_s), 3) and np.isfinite(places).all()
    assert np.corrcoef(places[:, 1], clip.positions)[0, 1] < -0.8  # higher pos, smaller y
    for broken in ({}, {"synth": {"seed": 1}}, {"synth": {**metadata["synth"], "family": "x"}}):
        assert spec_from_truth(broken) is None
