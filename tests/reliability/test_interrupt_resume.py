"""SIGINT/SIGTERM mid-run: exit 130, no funscript, a consistent cache; the re-run resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import badfiles
import pytest

from fsrun.errors import Interrupted
from fsrun.files.funscript import read_funscript

HERE = Path(__file__).parent
FRAMES = 480  # 16 s at 30 fps, 30 encoder batches of 16


def _fsrun(args: list, env: dict, slow: bool) -> subprocess.Popen:
    script = [str(HERE / "slow_fsrun.py")] if slow else ["-m", "fsrun.cli"]
    return subprocess.Popen([sys.executable, *script, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cached_frames(cache_root: Path) -> int:
    sizes = [p.stat().st_size for p in cache_root.glob("embeddings/*/pts_ms.f64")]
    return max(sizes, default=0) // 8


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_resumes_and_matches(signum: int, tmp_path: Path, demo_package: Path) -> None:
    video = badfiles.write_video(tmp_path / "long.mp4", count=FRAMES)
    env = {**os.environ, "FSRUN_CACHE_DIR": str(tmp_path / "cache"),
           "FSRUN_TEST_ENCODER_DELAY": "0.1"}
    common = ["--model", demo_package, "--raw", "--batch", "16"]

    run = _fsrun([video, *common], env, slow=True)
    deadline = time.monotonic() + 120
    while _cached_frames(tmp_path / "cache") < FRAMES * 0.45:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the run never got halfway"
        time.sleep(0.02)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == Interrupted.exit_code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fsrun: error: stopped by {signal.Signals(signum).name}"), last
    assert not video.with_suffix(".funscript").exists()
    cached = _cached_frames(tmp_path / "cache")
    assert FRAMES * 0.45 <= cached < FRAMES

    resumed = _fsrun([video, *common, "--report", tmp_path / "resumed.json"], env, slow=False)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    resumed_report = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed_report["resumed_from"] >= cached - 16

    full_out = tmp_path / "full.funscript"
    full = _fsrun([video, *common, "--cache-dir", tmp_path / "other-cache", "-o", full_out,
                   "--report", tmp_path / "full.json"], env, slow=False)
    _, err = full.communicate(timeout=120)
    assert full.returncode == 0, err
    full_report = json.loads((tmp_path / "full.json").read_text())

    assert resumed_report["encoder_calls"] < 0.6 * full_report["encoder_calls"]
    resumed_doc = read_funscript(video.with_suffix(".funscript"))
    full_doc = read_funscript(full_out)
    assert len(full_doc["actions"]) == FRAMES
    assert resumed_doc["actions"] == full_doc["actions"]
