"""Nothing shared is poisoned: runs side by side on one embedding cache, every kind of damage to a
cache entry, and a full disk under the cache and the outputs.

Every case compares actions with a clean `--no-cache` run of the same video: exactly equal, or
the run failed with a one-line error; never different actions in silence.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import badfiles
import numpy as np
import pytest
from conftest import clean_actions_of, start_fsrun

from fsrun.files.funscript import read_funscript

FRAMES = 150  # 5 s at 30 fps: 10 encoder batches of 16


_start = start_fsrun  # fsrun in a process of its own (slow: batches delayed)


def _actions(path: Path) -> list[dict]:
    return read_funscript(path)["actions"]


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "embeddings").glob("*") if p.is_dir())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return badfiles.write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", count=FRAMES)


@pytest.fixture(scope="module")
def clean(clip: Path, demo_package: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """The actions of a clean run without the cache."""
    return clean_actions_of(clip, demo_package, tmp_path_factory.mktemp("clean"))


def test_three_runs_on_one_video_share_one_entry(clip: Path, clean: list, demo_package: Path,
                                                  tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # 10 batches at 0.3 s: the first run still encodes when the others have started.
    env = {**os.environ, "FSRUN_CACHE_DIR": str(cache), "FSRUN_TEST_ENCODER_DELAY": "0.3"}
    runs = [_start([clip, "--model", demo_package, "-o", tmp_path / f"{i}.funscript"], env)
            for i in range(3)]
    results = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, results):
        assert run.returncode == 0, err
        assert "Traceback" not in err and "was damaged" not in err
    waited = [err for _, err in results if "another fsrun is writing the embedding cache" in err]
    assert waited, "the three runs never met at the lock: make the encoder slower"
    for i in range(3):
        assert _actions(tmp_path / f"{i}.funscript") == clean
    [entry] = _entries(cache)
    state = json.loads((entry / "state.json").read_text())
    assert state["complete"] and state["frames"] == FRAMES
    # The entry left behind is valid and used by the next run: no decoding at all.
    again = _start([clip, "--model", demo_package, "-o", tmp_path / "again.funscript",
                    "--report", tmp_path / "again.json"], env, slow=False)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    report = json.loads((tmp_path / "again.json").read_text())
    assert report["cache_hit"] and report["frames_encoded"] == 0
    assert report["cache_entry"] == str(entry) and report["cache_damaged"] is None
    assert _actions(tmp_path / "again.funscript") == clean


def test_two_folder_runs_into_two_output_folders(demo_package: Path, tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    for i in range(3):
        badfiles.write_video(library / f"v{i}.mp4", count=90 + 6 * i)
    cache = tmp_path / "cache"
    env = {**os.environ, "FSRUN_CACHE_DIR": str(cache), "FSRUN_TEST_ENCODER_DELAY": "0.05"}
    runs = [_start([library, "--model", demo_package, "--output-dir", tmp_path / name], env)
            for name in ("a", "b")]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert "3 ok, 0 skipped, 0 failed" in out
    for i in range(3):
        clean_out = tmp_path / f"clean{i}.funscript"
        solo = _start([library / f"v{i}.mp4", "--model", demo_package, "-o", clean_out,
                       "--no-cache"], env, slow=False)
        _, err = solo.communicate(timeout=120)
        assert solo.returncode == 0, err
        for name in ("a", "b"):
            assert _actions(tmp_path / name / f"v{i}.funscript") == _actions(clean_out)
    assert len(_entries(cache)) == 3
    for entry in _entries(cache):
        state = json.loads((entry / "state.json").read_text())
        assert state["complete"] and state["frames"] in (90, 96, 102)


def _overwrite_middle(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(max(0, path.stat().st_size // 2 - len(data) // 2))
        f.write(data[: path.stat().st_size])


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif how == "random":  # the whole file, same size
        path.write_bytes(np.random.default_rng(3).integers(0, 256, size, np.uint8).tobytes())
    elif how == "zeroed":  # a block in the middle
        _overwrite_middle(path, b"\0" * max(1, size // 4))
    elif how == "deleted":
        path.unlink()


CACHE_FILES = ("embeddings.f32", "pts_ms.f64", "blocks.crc", "state.json")
HOW = ("truncated", "random", "zeroed", "deleted")


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", CACHE_FILES)
def test_damaged_entry_is_noticed_and_rebuilt(name: str, how: str, clip: Path, clean: list,
                                              demo_package: Path, tmp_path: Path, fsrun_cli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FSRUN_CACHE_DIR", str(cache))
    out = tmp_path / "out.funscript"
    first = fsrun_cli(clip, "--model", demo_package, "-o", out)
    assert first.code == 0, first.err
    [entry] = _entries(cache)
    _damage(entry / name, how)
    report = tmp_path / "r.json"
    again = fsrun_cli(clip, "--model", demo_package, "-o", out, "--force", "--report", report)
    assert again.code == 0, again.err
    assert f"cache for {clip.name} was damaged (" in again.err
    assert "; encoding again" in again.err
    assert _actions(out) == clean
    assert json.loads(report.read_text())["cache_damaged"]
    # Rebuilt: the next run is a clean hit.
    last = fsrun_cli(clip, "--model", demo_package, "-o", out, "--force", "--report", report)
    assert last.code == 0 and "was damaged" not in last.err
    assert json.loads(report.read_text())["cache_hit"] and _actions(out) == clean


# --- a full disk -----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs root and a kernel that lets this process mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full-disk test mounts a small tmpfs: needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"fsrun-{uuid.uuid4().hex[:6]}",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of folder up to `leave` bytes free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    while shutil.disk_usage(folder).free > leave + 4096:  # tmpfs rounds to pages
        with open(folder / "filler", "ab") as f:
            f.write(b"\0" * 4096)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".claim"))]


def test_cache_on_a_full_disk_runs_uncached(small_disk: Path, clip: Path, clean: list,
                                            demo_package: Path, tmp_path: Path,
                                            fsrun_cli) -> None:
    # Room for the entry's first batches, not for the whole video's embeddings (150 KB).
    _fill(small_disk, 40_000)
    out = tmp_path / "out.funscript"
    result = fsrun_cli(clip, "--model", demo_package, "-o", out, "--cache-dir", small_disk)
    assert result.code == 0, result.err
    assert "cannot write the embedding cache (" in result.err
    assert "No space left on device); going on without it" in result.err
    assert _actions(out) == clean
    assert _leftovers(small_disk) == []


def test_outputs_on_a_full_disk_are_exit_5_naming_the_path(small_disk: Path, clip: Path,
                                                           demo_package: Path, tmp_path: Path,
                                                           fsrun_cli) -> None:
    video = small_disk / "v.mp4"
    shutil.copy(clip, video)
    _fill(small_disk, 0)
    result = fsrun_cli(video, "--model", demo_package, "--no-cache")
    assert result.code == 5, result.err
    assert result.last_line == (f"fsrun: error: {small_disk / 'v.funscript'}: cannot write "
                                "(No space left on device)")
    report = small_disk / "r.json"
    result = fsrun_cli(video, "--model", demo_package, "--no-cache", "-o", tmp_path / "x.funscript",
                       "--report", report)
    assert result.code == 5, result.err
    # The script went elsewhere and is complete; the one line says so (docs/exit-codes.md).
    assert result.last_line == f"fsrun: error: {report}: cannot write the report (No space left " \
                               f"on device); {tmp_path / 'x.funscript'} was written"
    assert _leftovers(small_disk) == [] and not report.exists()
    assert read_funscript(tmp_path / "x.funscript")["actions"]


def test_folder_on_a_full_disk_records_each_failure_and_prints_its_table(
        small_disk: Path, clip: Path, demo_package: Path, fsrun_cli) -> None:
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(clip, small_disk / name)
    _fill(small_disk, 0)
    result = fsrun_cli(small_disk, "--model", demo_package, "--no-cache")
    assert result.code == 1, result.err
    assert "0 ok, 0 skipped, 2 failed" in result.out
    assert result.out.count("No space left on device") == 2
    assert _leftovers(small_disk) == []
