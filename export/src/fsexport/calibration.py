"""Frames for int8 calibration, decoded from videos exactly the way fsrun decodes them.

Calibration must see what inference sees: fsrun's PyAV source, its sampler at the model's frame
rate, and both resize paths (`--resize source`: swscale hands the encoder frames already at the
input size; `--resize graph`: full-size frames resized by the encoder's own Resize). By default
the videos are synthetic clips rendered with fsrun.groundtruth.synth (seeds of their own, apart from the ones
training and the held-out grading use).
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsrun.errors import InputError
from fsexport.seeds import seed
from fsrun.run.sampling import TimestampSampler
from fsrun.sources import load_source_class

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
SYNTH_SEED = seed("calibration")  # never trained or graded on (fsrun.groundtruth.seeds)
RESIZE_PATHS = ("source", "graph")  # fsrun --resize modes, both represented in calibration


@dataclass(frozen=True)
class SynthClips:
    count: int = 6  # clips rendered when no --calibrate folder is given
    seconds: float = 4.0  # length of each
    size: tuple[int, int] = (256, 192)  # WxH
    fps: tuple[str, ...] = ("30", "25", "60", "29.97", "24", "vfr")  # cycled over the clips
    codecs: tuple[str, ...] = ("h264", "hevc", "vp9", "av1")  # cycled over the clips
    seed: int = SYNTH_SEED  # first clip's seed


@dataclass(frozen=True)
class CalibrationConfig:
    videos: Path | None = None  # folder (searched recursively) or one video; None: synth clips
    frames: int = 96  # frames fed to the calibrator, spread evenly over every video
    graph_share: float = 0.25  # share of them fed at full size (the in-graph resize path)
    batch: int = 4  # frames per calibration batch (the calibrator holds every tensor of one)
    synth: SynthClips = field(default_factory=SynthClips)  # used when videos is None


@dataclass
class VideoFrames:
    video: Path  # the decoded file
    pts_ms: np.ndarray  # float64 [n]: sampled timestamps
    resized: np.ndarray  # uint8 [n, S, S, 3]: fsrun's --resize source frames
    full: np.ndarray | None  # uint8 [n, H, W, 3]: full-size frames (the graph path), if kept


def find_videos(root: Path) -> list[Path]:
    """Videos under a folder (sorted), or the one file given."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: no such folder or video for --calibrate")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES
                   and p.is_file() and not p.name.startswith("."))
    if not found:
        raise InputError(f"{root}: no videos ({', '.join(VIDEO_SUFFIXES)}) to calibrate on")
    return found


def render_synth_clips(folder: Path, synth: SynthClips) -> list[Any]:
    """Render synthetic clips into folder (every track kind, several codecs and rates): the
    default calibration clips, or held-out ones graded against their truth. Returns fsrun.groundtruth.synth
    Clip objects (video and truth paths)."""
    from fsrun.groundtruth.synth.cli import TRACK_CYCLE, _quiet_svt  # noqa: PLC0415
    from fsrun.groundtruth.synth.clips import ClipSpec, write_clip  # noqa: PLC0415

    _quiet_svt()
    clips = []
    for i in range(synth.count):
        spec = ClipSpec(seconds=synth.seconds, fps=synth.fps[i % len(synth.fps)],
                        codec=synth.codecs[i % len(synth.codecs)], width=synth.size[0],
                        height=synth.size[1], track=TRACK_CYCLE[i % len(TRACK_CYCLE)],
                        seed=synth.seed + i)
        clips.append(write_clip(spec, folder))
    return clips


@contextmanager
def calibration_videos(cfg: CalibrationConfig) -> Iterator[tuple[list[Path], str]]:
    """(videos, description of the source); synthetic clips live in a temporary folder."""
    if cfg.videos is not None:
        videos = find_videos(cfg.videos)
        yield videos, f"{len(videos)} videos under {Path(cfg.videos).name}"
        return
    s = cfg.synth
    with tempfile.TemporaryDirectory(prefix="fsexport-calibrate-") as scratch:
        videos = [clip.video for clip in render_synth_clips(Path(scratch), s)]
        yield videos, (f"{s.count} synthetic clips (fsrun.groundtruth.synth, seeds {s.seed}-"
                       f"{s.seed + s.count - 1}, {s.seconds:g} s, {s.size[0]}x{s.size[1]}, "
                       f"{', '.join(s.codecs)})")


def _decode(video: Path, fps: float, resize_to: int | None) -> tuple[np.ndarray, np.ndarray]:
    source = load_source_class("pyav")(video, resize_to=resize_to)
    frames, stamps = [], []
    try:
        for batch in source.batches(TimestampSampler(fps), 16):
            frames.append(np.asarray(batch.frames))
            stamps.append(np.asarray(batch.pts_ms, dtype=np.float64))
    finally:
        source.close()
    if not frames:
        raise InputError(f"{video}: no frames decoded for calibration")
    return np.concatenate(frames), np.concatenate(stamps)


def decode_videos(videos: list[Path], fps: float, input_size: int,
                  keep_full: bool = True) -> list[VideoFrames]:
    """Every sampled frame of each video through fsrun's PyAV source, both resize paths."""
    out = []
    for video in videos:
        resized, pts = _decode(video, fps, input_size)
        full = _decode(video, fps, None)[0] if keep_full else None
        if full is not None and len(full) != len(resized):
            n = min(len(full), len(resized))
            resized, pts, full = resized[:n], pts[:n], full[:n]
        out.append(VideoFrames(video, pts, resized, full))
    return out


def _spread(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def calibration_batches(decoded: list[VideoFrames], cfg: CalibrationConfig) -> list[np.ndarray]:
    """uint8 batches for the calibrator: frames spread over every video; a graph_share of them
    at full size. Batches never mix frame sizes."""
    per_video = max(1, -(-cfg.frames // max(1, len(decoded))))
    graph_each = int(round(per_video * cfg.graph_share))
    batches: list[np.ndarray] = []
    for item in decoded:
        picks = _spread(len(item.resized), per_video)
        full_picks = picks[1::2][:graph_each] if item.full is not None else picks[:0]
        source_picks = np.setdiff1d(picks, full_picks)
        for frames, chosen in ((item.resized, source_picks), (item.full, full_picks)):
            for start in range(0, len(chosen), cfg.batch):
                batches.append(np.ascontiguousarray(frames[chosen[start:start + cfg.batch]]))
    return batches
