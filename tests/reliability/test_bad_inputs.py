"""The bad-input matrix: each case makes its file, runs `fsrun`, and checks the exit code, the one
error line (naming the file and the cause), the absence of a traceback and of any output."""
from __future__ import annotations

import json
import os
from pathlib import Path

import badfiles
import numpy as np
import pytest
from conftest import unprivileged, world_readable_tree

from fsrun.config import demo_model_dir
from fsrun.errors import InputError, ModelError, OutputError
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package

INPUT, MODEL, OUTPUT = InputError.exit_code, ModelError.exit_code, OutputError.exit_code


def _assert_clean_failure(result, code: int, names: str, cause: str, folder: Path) -> None:
    assert result.code == code, result.err
    assert "Traceback" not in result.err
    assert result.last_line.startswith("fsrun: error: ")
    assert names in result.last_line and cause in result.last_line, result.last_line
    leftovers = [p.name for p in folder.iterdir() if p.suffix in (".funscript", ".tmp", ".json")
                 or p.name.endswith(".claim") or ".funscript." in p.name]
    assert leftovers == []


# Videos that cannot be used at all: case -> (maker, words the error must contain).
UNUSABLE = {
    "zero_byte": (badfiles.zero_byte, "empty file (0 bytes)"),
    "truncated_without_index": (badfiles.truncated_mp4, "cannot open as a video"),
    "text_named_mp4": (badfiles.text_as_mp4, "cannot open as a video"),
    "audio_only": (badfiles.audio_only, "has no video stream"),
    "undecodable_codec": (badfiles.undecodable_codec, "cannot be decoded"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_unusable_video_is_one_line_exit_3(case: str, tmp_path: Path, demo_package: Path,
                                           fsrun_cli) -> None:
    maker, cause = UNUSABLE[case]
    video = maker(tmp_path)
    result = fsrun_cli(video, "--model", demo_package, "--no-cache")
    _assert_clean_failure(result, INPUT, video.name, cause, tmp_path)


def test_debug_shows_the_traceback(tmp_path: Path, demo_package: Path, fsrun_cli) -> None:
    video = badfiles.text_as_mp4(tmp_path)
    result = fsrun_cli(video, "--model", demo_package, "--debug")
    assert result.code == INPUT
    assert "Traceback" in result.err


# Unusual but valid videos: case -> (maker, displayed frame size [H, W], frames).
UNUSUAL = {
    "one_frame": (badfiles.one_frame, (48, 64), 1),
    "shorter_than_window": (badfiles.shorter_than_window, (48, 64), 20),
    "odd_size_317x241": (badfiles.odd_size, (241, 317), 45),
    "rotated_display_matrix": (badfiles.rotated, (64, 48), 45),
    "hevc_10bit": (badfiles.hevc_10bit, (48, 64), 45),
}


@pytest.mark.parametrize("case", sorted(UNUSUAL))
def test_unusual_video_gives_a_valid_script(case: str, tmp_path: Path, demo_package: Path,
                                            fsrun_cli) -> None:
    from fsrun.run.sampling import TimeRange, TimestampSampler
    from fsrun.sources.pyav_source import PyAvSource

    maker, shape, frames = UNUSUAL[case]
    video = maker(tmp_path)
    with PyAvSource(video) as source:
        batches = list(source.batches(TimestampSampler(30.0, TimeRange(0.0, None)), 64))
    assert sum(len(b) for b in batches) == frames
    assert batches[0].frames.shape[1:3] == shape
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache")
    assert result.code == 0, result.err
    doc = read_funscript(video.with_suffix(".funscript"))
    times = [a["at"] for a in doc["actions"]]
    assert times == [round(i * 1000 / 30) for i in range(frames)]  # one point per frame, on time
    assert doc["metadata"]["padded"] == (frames < 60)
    if frames < 60:
        assert "shorter than one window" in result.err


def test_rotation_turns_frames_upright(tmp_path: Path) -> None:
    """The display matrix says +90 (counterclockwise): stored top-left shows bottom-left."""
    from fsrun.run.sampling import TimeRange, TimestampSampler
    from fsrun.sources.pyav_source import PyAvSource

    plain = badfiles.write_video(tmp_path / "plain.mp4", count=5)
    turned = badfiles.rotated(tmp_path, 90)
    sampler = lambda: TimestampSampler(30.0, TimeRange(0.0, None))  # noqa: E731
    with PyAvSource(plain) as a, PyAvSource(turned) as b:
        upright = next(a.batches(sampler(), 5)).frames
        shown = next(b.batches(sampler(), 5)).frames
    assert shown.shape == (5, 64, 48, 3)
    diff = np.abs(shown.astype(int) - np.rot90(upright, k=1, axes=(1, 2)).astype(int))
    assert diff.mean() < 1.0


def test_truncated_download_keeps_the_frames_before_the_cut(tmp_path: Path, demo_package: Path,
                                                             fsrun_cli) -> None:
    video = badfiles.truncated_mp4_playable(tmp_path)
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache")
    assert result.code == 0, result.err
    doc = read_funscript(video.with_suffix(".funscript"))
    kept = len(doc["actions"])
    assert 30 <= kept < 90
    # Nothing failed to decode: the index promises frames the file no longer holds.
    assert doc["metadata"]["frames_missing"] == 90 - kept
    assert doc["metadata"]["frames_damaged"] == 0 and doc["metadata"]["frames_held"] == 0
    assert f"{video.name}: cut off? frames stop at {doc['actions'][-1]['at'] / 1000:.1f} s " \
           "of the 3.0 s its header claims" in result.err
    assert "damaged" not in result.err


def test_corrupt_packets_are_skipped_and_timing_kept(tmp_path: Path, demo_package: Path,
                                                     fsrun_cli) -> None:
    video = badfiles.corrupt_middle(tmp_path)  # 150 frames at 30 fps, garbage in the middle
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache")
    assert result.code == 0, result.err
    doc = read_funscript(video.with_suffix(".funscript"))
    times = np.array([a["at"] for a in doc["actions"]])
    skipped = doc["metadata"]["frames_damaged"]
    assert 0 < skipped < 75 and len(times) == 150 - skipped
    assert f"{skipped} damaged frames skipped" in result.err
    # Every kept point sits on its own frame's time; the gap is where the damage was.
    expected = {round(i * 1000 / 30) for i in range(150)}
    assert set(times.tolist()) <= expected
    assert times[-1] == round(149 * 1000 / 30)
    gaps = np.diff(times)
    assert gaps.max() > 5 * 34 and (gaps <= 34).sum() == len(gaps) - 1


# Broken model packages (copies of the bundled demo): case -> (breaker, words the error must
# contain).
DIM = load_package(demo_model_dir(), verify=False).meta.embedding_dim
BROKEN_PACKAGES = {
    "missing_file": (badfiles.package_missing_file, "head.onnx is missing"),
    "wrong_sha256": (badfiles.package_wrong_sha, "encoder.onnx is damaged (sha256"),
    "truncated_onnx": (badfiles.package_truncated_onnx, "encoder.onnx is not a readable ONNX "
                       "file"),
    "meta_window_30": (lambda p: badfiles.package_meta_edit(p, window=30),
                       f"head.onnx input 'embeddings' has shape ['B', 60, {DIM}], but meta.json "
                       f"says window 30, embedding_dim {DIM}"),
    "meta_embedding_dim_128": (lambda p: badfiles.package_meta_edit(p, embedding_dim=128),
                               f"encoder.onnx output 'embeddings' has shape ['N', {DIM}], "
                               "but meta.json says window 60, embedding_dim 128"),
    "newer_format": (badfiles.package_newer_format, "is newer than this fsrun understands"),
    "path_escape": (badfiles.package_escaping_path, "escapes the package directory"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PACKAGES))
def test_broken_package_is_one_line_exit_4(case: str, tmp_path: Path, package_copy: Path,
                                           fsrun_cli) -> None:
    breaker, cause = BROKEN_PACKAGES[case]
    breaker(package_copy)
    video = badfiles.shorter_than_window(tmp_path)
    for cache in (["--no-cache"], []):  # the same with and without the cache
        result = fsrun_cli(video, "--model", package_copy, *cache)
        _assert_clean_failure(result, MODEL, package_copy.name, cause, tmp_path)
        assert "decoder" not in result.err  # refused at load: nothing was decoded


def test_nan_positions_are_a_model_error_and_write_nothing(tmp_path: Path, package_copy: Path,
                                                           fsrun_cli) -> None:
    """A package that verifies but whose head gives NaN: one line, exit 4, no script (it wrote
    an invalid funscript's error with exit 1 before)."""
    badfiles.package_nan_weights(package_copy)
    video = badfiles.write_video(tmp_path / "v.mp4", count=90)
    result = fsrun_cli(video, "--model", package_copy, "--no-cache")
    _assert_clean_failure(result, MODEL, "the head returned", "NaN or infinite positions",
                          tmp_path)


def test_editing_meta_json_changes_the_model_hash(package_copy: Path) -> None:
    before = load_package(package_copy).model_hash
    badfiles.package_meta_edit(package_copy, fps=25.0)  # the graphs are unchanged
    assert load_package(package_copy).model_hash != before


def test_package_path_escape_never_reads_outside(package_copy: Path) -> None:
    badfiles.package_escaping_path(package_copy)
    (package_copy.parent / "outside.onnx").write_bytes((package_copy / "encoder.onnx").read_bytes())
    with pytest.raises(ModelError, match="escapes"):
        load_package(package_copy)


def test_existing_output_is_kept_without_force(tmp_path: Path, demo_package: Path,
                                               fsrun_cli) -> None:
    video = badfiles.shorter_than_window(tmp_path)
    existing = video.with_suffix(".funscript")
    existing.write_text("my hand-made script\n", encoding="utf-8")
    result = fsrun_cli(video, "--model", demo_package, "--no-cache")
    assert result.code == OUTPUT and "Traceback" not in result.err
    assert result.last_line == f"fsrun: error: {existing} exists; use --force to overwrite it"
    assert existing.read_text(encoding="utf-8") == "my hand-made script\n"
    # --force replaces funscripts only: this one is not, so it stays.
    forced = fsrun_cli(video, "--model", demo_package, "--no-cache", "--force")
    assert forced.code == OUTPUT
    assert forced.last_line == (f"fsrun: error: {existing} exists and is not a funscript; "
                                "--force only replaces funscripts")
    assert existing.read_text(encoding="utf-8") == "my hand-made script\n"
    existing.write_text(json.dumps({"version": "1.0", "inverted": False, "range": 100,
                                    "actions": [{"at": 0, "pos": 0}]}), encoding="utf-8")
    assert fsrun_cli(video, "--model", demo_package, "--no-cache", "--force").code == 0
    assert read_funscript(existing)["metadata"]["generator"]["name"] == "fsrun"


@pytest.mark.parametrize("container", sorted(badfiles.CUT_OFF_CONTAINERS))
def test_cut_off_download_says_what_it_covers_in_every_container(container: str,
                                                                 tmp_path: Path,
                                                                 demo_package: Path,
                                                                 fsrun_cli) -> None:
    """A 10 s clip of which the first 30 % arrived: the script covers what is there, and the
    run says so, whatever the container (the header still claims 10 s)."""
    video = badfiles.cut_off(tmp_path, container)
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache", "--report",
                       tmp_path / "r.json")
    assert result.code == 0, result.err
    doc = read_funscript(video.with_suffix(".funscript"))
    last = doc["actions"][-1]["at"]
    assert 2000 < last < 3500
    meta = doc["metadata"]
    assert meta["duration"] == pytest.approx(10.0, abs=0.05)
    assert meta["covered_ms"] == [0, last]
    assert f"{video.name}: cut off? frames stop at {last / 1000:.1f} s of the 10.0 s its " \
           "header claims" in result.err
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["covered_ms"] == [0, last] and report["cut_short"] is True
    assert report["duration_s"] == pytest.approx(10.0, abs=0.05)


def test_whole_file_covers_its_duration_without_a_warning(tmp_path: Path, demo_package: Path,
                                                          fsrun_cli) -> None:
    video = badfiles.cut_off(tmp_path, "mkv", seconds=4.0, keep=1.0)
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache")
    assert result.code == 0 and "cut off" not in result.err, result.err
    meta = read_funscript(video.with_suffix(".funscript"))["metadata"]
    assert meta["covered_ms"] == [0, round(119 * 1000 / 30)]
    assert meta["duration"] == pytest.approx(4.0, abs=0.05)


def test_unwritable_output_folder_fails_before_work(tmp_path_factory: pytest.TempPathFactory,
                                                    demo_package: Path, fsrun_cli) -> None:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="fsrun-ro-"))
    try:
        shutil.copytree(demo_package, root / "model.fsmodel")
        locked = root / "locked"
        locked.mkdir()
        video = badfiles.shorter_than_window(locked)
        world_readable_tree(root)
        os.chmod(locked, 0o555)
        with unprivileged():
            result = fsrun_cli(video, "--model", root / "model.fsmodel", "--no-cache")
        assert result.code == OUTPUT, result.err
        assert "Traceback" not in result.err
        assert result.last_line == f"fsrun: error: {locked}: cannot write there (Permission denied)"
        assert sorted(p.name for p in locked.iterdir()) == [video.name]
        assert json.loads((root / "model.fsmodel" / "meta.json").read_text())  # untouched
    finally:
        os.chmod(root / "locked", 0o755)
        shutil.rmtree(root, ignore_errors=True)
