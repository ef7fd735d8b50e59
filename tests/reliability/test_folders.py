"""Folder mode: discovery, skip-if-done, errors per file, the summary table, exit status, and
two processes sharing one folder."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import badfiles
import pytest

from fsrun.backends import create_backend
from fsrun.files.claims import Claim, ClaimHeld, claim_path
from fsrun.errors import Interrupted
from fsrun.folder import FolderFailed, find_videos, parse_extensions, run_folder
from fsrun.files.funscript import read_funscript
from fsrun.run.request import RunHooks, SessionSpec, VideoRequest

HERE = Path(__file__).parent


def _library(root: Path) -> dict[str, Path]:
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    return {
        "good": badfiles.shorter_than_window(root),
        "nested": badfiles.write_video(root / "a" / "b" / "deep.mkv", count=30),
        "broken": badfiles.text_as_mp4(root / "a"),
        "empty": badfiles.zero_byte(root),
        "other_ext": badfiles.write_video(root / "clip.mov", count=10),
        "hidden": badfiles.write_video(root / ".hidden" / "secret.mp4", count=10),
    }


def test_find_videos_recursive_with_overridable_extensions(tmp_path: Path) -> None:
    files = _library(tmp_path)
    (tmp_path / "._good.mp4").write_bytes(b"macOS resource fork")
    found = find_videos(tmp_path)
    assert found == sorted([files["good"], files["nested"], files["broken"], files["empty"],
                            files["other_ext"]])
    assert find_videos(tmp_path, parse_extensions(".MKV, mov")) == [files["nested"],
                                                                      files["other_ext"]]


def test_folder_continues_past_errors_and_summarises(tmp_path: Path, demo_package: Path,
                                                     fsrun_cli) -> None:
    files = _library(tmp_path)
    done_before = files["other_ext"].with_suffix(".funscript")
    kept = json.dumps({"version": "1.0", "inverted": False, "range": 100,
                       "actions": [{"at": 0, "pos": 0}], "metadata": {"by": "hand"}})
    done_before.write_text(kept, encoding="utf-8")

    result = fsrun_cli(tmp_path, "--model", demo_package, "--no-cache", "--report",
                       tmp_path / "run.json")
    assert result.code == FolderFailed.exit_code, result.err
    assert "Traceback" not in result.out + result.err
    rows = {line.split()[1]: line.split()[0] for line in result.out.splitlines()[2:-1]}
    assert rows == {"short.mp4": "ok", "a/b/deep.mkv": "ok", "a/notes.mp4": "failed",
                    "empty.mp4": "failed", "clip.mov": "skipped"}
    assert "cannot open as a video" in result.out and "empty file (0 bytes)" in result.out
    assert result.out.splitlines()[-1] == "2 ok, 1 skipped, 2 failed"
    assert result.last_line == "fsrun: error: 2 of 5 videos failed (see the table above)"
    read_funscript(files["good"].with_suffix(".funscript"))
    read_funscript(files["nested"].with_suffix(".funscript"))
    assert done_before.read_text(encoding="utf-8") == kept
    assert not files["broken"].with_suffix(".funscript").exists()
    assert not list(tmp_path.rglob("*.claim"))

    report = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    by_name = {Path(f["video"]).name: f for f in report["files"]}
    assert report["counts"] == {"ok": 2, "skipped": 1, "failed": 2, "interrupted": 0}
    assert report["found"] == 5
    assert by_name["deep.mkv"]["report"]["frames"] == 30 and by_name["deep.mkv"]["status"] == "ok"
    assert by_name["notes.mp4"]["status"] == "failed" and by_name["notes.mp4"]["report"] is None
    assert by_name["notes.mp4"]["exit_code"] == 3

    again = fsrun_cli(tmp_path, "--model", demo_package, "--no-cache", "--ext", "mkv,mov")
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1] == "0 ok, 2 skipped, 0 failed"

    forced = fsrun_cli(tmp_path, "--model", demo_package, "--no-cache", "--ext", "mov", "--force")
    assert forced.code == 0 and forced.out.splitlines()[-1] == "1 ok, 0 skipped, 0 failed"
    read_funscript(done_before)


def test_quiet_folder_prints_no_table(tmp_path: Path, demo_package: Path, fsrun_cli) -> None:
    _library(tmp_path)
    result = fsrun_cli(tmp_path, "--model", demo_package, "--no-cache", "-q")
    assert result.code == FolderFailed.exit_code
    assert result.out == ""
    assert result.err == ("fsrun: error: 2 of 5 videos failed: a/notes.mp4 (cannot open as a "
                          "video (Invalid data found when processing input)), empty.mp4 (empty "
                          "file (0 bytes))\n")
    again = fsrun_cli(tmp_path, "--model", demo_package, "--no-cache", "-q", "--ext", "mkv")
    assert again.code == 0 and again.out == "" and again.err == ""


def test_one_video_is_one_video(tmp_path: Path, demo_package: Path, fsrun_cli) -> None:
    badfiles.shorter_than_window(tmp_path)
    result = fsrun_cli(tmp_path, "--model", demo_package, "--no-cache")
    assert result.code == 0, result.err
    assert f"fsrun: 1 video under {tmp_path}" in result.err.splitlines()


def _interrupting_factory(name: str, onnx_path: Path, options):
    """Backends whose encoder is stopped by Ctrl-C on its first batch."""
    backend = create_backend(name, onnx_path, options)
    if Path(onnx_path).name.startswith("encoder"):
        def run(batch):
            raise KeyboardInterrupt
        backend.run = run
    return backend


def test_interrupted_video_is_shown_as_interrupted(tmp_path: Path, demo_package: Path) -> None:
    for i in range(2):
        badfiles.write_video(tmp_path / f"clip{i}.mp4", count=30)
    spec = SessionSpec(model=demo_package, use_cache=False, backend="cpu")
    request = VideoRequest(video=tmp_path, report=tmp_path / "run.json")
    lines: list[str] = []
    with pytest.raises(Interrupted):
        run_folder(tmp_path, spec, request, RunHooks(backend_factory=_interrupting_factory),
                   ("mp4",), lines.append, None)
    table = "\n".join(lines).splitlines()
    assert table[2].split()[:2] == ["interrupted", "clip0.mp4"]
    assert table[3] == "0 ok, 0 skipped, 0 failed, 1 interrupted"
    report = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert report["counts"] == {"ok": 0, "skipped": 0, "failed": 0, "interrupted": 1}
    assert report["files"][0]["status"] == "interrupted" and report["files"][0]["exit_code"] == 130
    assert not list(tmp_path.glob("*.funscript"))


def test_broken_model_stops_a_folder_once(tmp_path: Path, package_copy: Path, fsrun_cli) -> None:
    badfiles.package_missing_file(package_copy)
    _library(tmp_path / "videos")
    result = fsrun_cli(tmp_path / "videos", "--model", package_copy)
    assert result.code == 4
    assert result.err.count("head.onnx is missing") == 1


def test_live_claim_is_respected_and_stale_claim_taken_over(tmp_path: Path) -> None:
    output = tmp_path / "v.funscript"
    with Claim(output):
        with pytest.raises(ClaimHeld, match=f"pid {os.getpid()}"):
            Claim(output).acquire()
    assert not claim_path(output).exists()

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    claim_path(output).write_text(json.dumps({"pid": int(dead.stdout), "started": time.time(),
                                              "host": socket.gethostname()}))
    with Claim(output) as claim:
        assert claim.took_over is not None and claim.took_over.pid == int(dead.stdout)
    claim_path(output).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0.0}))
    with pytest.raises(ClaimHeld):
        Claim(output).acquire()  # another host's claim, fresh: cannot know it is dead
    old = time.time() - 3600
    os.utime(claim_path(output), (old, old))
    with Claim(output, stale_after_s=600):
        pass  # not touched for an hour: abandoned


def test_two_processes_share_a_folder_without_double_work(tmp_path: Path,
                                                          demo_package: Path) -> None:
    videos = [badfiles.write_video(tmp_path / f"clip{i}.mp4", count=64) for i in range(6)]
    env = {**os.environ, "FSRUN_TEST_ENCODER_DELAY": "0.15"}
    command = [sys.executable, str(HERE / "slow_fsrun.py"), str(tmp_path), "--model",
               str(demo_package), "--no-cache"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err
    done_by: dict[str, list[int]] = {v.name: [] for v in videos}
    for index, (out, _) in enumerate(outputs):
        for line in out.splitlines()[2:-1]:
            status, name = line.split()[:2]
            if status == "ok":
                done_by[name].append(index)
            else:
                assert status == "skipped" and ("being processed by" in line
                                                or "written by another" in line
                                                or "exists" in line), line
    assert all(len(who) == 1 for who in done_by.values()), done_by
    assert {who[0] for who in done_by.values()} == {0, 1}, "both processes should take work"
    for video in videos:
        read_funscript(video.with_suffix(".funscript"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
