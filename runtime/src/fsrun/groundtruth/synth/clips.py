"""Write synthetic clips with PyAV (H.264, HEVC, VP9, AV1) next to their true funscript.

Every frame gets an explicit presentation timestamp, so constant rates (24, 25, 29.97, 30, 60)
and variable frame rate clips are written the same way, and the truth is the track evaluated at
exactly those timestamps.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from fsrun.axes import AXES
from fsrun.errors import OutputError
from fsrun.files.funscript import build_funscript, truth_path, write_funscript
from fsrun.groundtruth.synth.axes import SYNTH_AXES, make_roll_track, roll_rng
from fsrun.groundtruth.synth.families import FAMILIES
from fsrun.groundtruth.synth.tracks import TRACK_KINDS, Track, make_track


@dataclass(frozen=True)
class CodecSpec:
    encoder: str  # FFmpeg encoder name
    container: str  # FFmpeg muxer name
    extension: str  # file name suffix
    options: dict[str, str] = field(default_factory=dict)  # encoder options, speed over size


CODECS: dict[str, CodecSpec] = {
    # mbtree=0: x264's macroblock-tree pass reads memory it never wrote, so the same frames
    # encoded twice could differ (a heap filled with 0xFF first changes the decoded frames);
    # without it the same seed gives the same clip, and a training on clips repeats exactly
    "h264": CodecSpec("libx264", "mp4", ".mp4",
                      {"preset": "veryfast", "crf": "18", "x264-params": "mbtree=0"}),
    "hevc": CodecSpec("libx265", "mp4", ".mp4",
                      {"preset": "ultrafast", "crf": "20", "x265-params": "log-level=error"}),
    "vp9": CodecSpec("libvpx-vp9", "webm", ".webm",
                     {"deadline": "realtime", "cpu-used": "8", "crf": "24", "b": "0"}),
    "av1": CodecSpec("libsvtav1", "mp4", ".mp4", {"preset": "12", "crf": "30"}),
}

# NTSC rates written as decimals on the command line, stored exactly.
_EXACT_RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
                "59.94": Fraction(60000, 1001)}
VFR = "vfr"  # fps value that asks for a variable-frame-rate clip
_VFR_RATES = (24.0, 30.0, 60.0)  # a VFR clip switches between these rates every second or so
_VFR_TIME_BASE = Fraction(1, 1000)


def parse_fps(text: str | float) -> Fraction | str:
    """'29.97' -> 30000/1001, '30' -> 30, 'vfr' -> 'vfr'."""
    text = str(text).strip().lower()
    if text == VFR:
        return VFR
    if text in _EXACT_RATES:
        return _EXACT_RATES[text]
    try:
        rate = Fraction(text).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"invalid frame rate {text!r}; use a number such as 30 or 29.97, "
                         f"or 'vfr'") from None
    if not 1 <= rate <= 240:
        raise ValueError(f"frame rate {text} is outside 1..240")
    return rate


def frame_times(fps: Fraction | str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Presentation times (s) of every frame: regular, or for VFR changing rate every ~1 s."""
    if fps != VFR:
        count = int(np.floor(seconds * float(fps)))
        return np.array([float(Fraction(i) / fps) for i in range(count)])
    times, t = [], 0.0
    while t < seconds:
        rate = _VFR_RATES[rng.integers(0, len(_VFR_RATES))]
        segment_end = t + rng.uniform(0.5, 1.5)
        while t < min(segment_end, seconds):
            times.append(round(t * 1000) / 1000)  # whole milliseconds: the stream's time base
            t += 1.0 / rate
    return np.array(times)


@dataclass
class ClipSpec:
    seconds: float = 10.0  # clip length
    fps: str = "30"  # frame rate: a number (29.97 is stored as 30000/1001) or "vfr"
    codec: str = "h264"  # key of CODECS
    width: int = 160  # width of one view in pixels
    height: int = 120  # height in pixels
    layout: str = "flat"  # "flat" or "sbs" (side-by-side VR, two views)
    track: str = "mixed"  # key of TRACK_KINDS
    seed: int = 0  # draws the track and the scene
    family: str = "classic"  # key of FAMILIES: which renderer draws the scene
    axes: tuple[str, ...] = ("stroke",)  # truth files written (synth/axes.py SYNTH_AXES); with
    # roll the target is drawn elongated and tilting


def check_axes(axes: tuple[str, ...]) -> None:
    """ValueError unless the stroke comes first and every axis is one a clip can give."""
    if not axes or axes[0] != "stroke" or len(set(axes)) != len(axes) or any(
            a not in SYNTH_AXES for a in axes):
        raise ValueError(f"synthetic clips give {', '.join(SYNTH_AXES)}, the stroke first and "
                         f"none twice; got {','.join(axes)}")


@dataclass
class Clip:
    video: Path  # the encoded clip
    truth: Path  # its true funscript, VIDEO.truth.funscript
    track: Track  # the track it follows
    times_s: np.ndarray  # presentation time of each frame
    positions: np.ndarray  # true position (0..1) of each frame
    truths: dict[str, Path] = field(default_factory=dict)  # axis -> its truth file (the stroke's
    # is `truth`)


def truth_actions(times_s: np.ndarray, positions: np.ndarray) -> list[dict[str, int]]:
    """Funscript actions: one per frame, integer ms and pos 0-100, no duplicate times."""
    actions: list[dict[str, int]] = []
    for t, p in zip(times_s, positions):
        at = int(round(t * 1000))
        if actions and actions[-1]["at"] == at:
            continue
        actions.append({"at": at, "pos": int(round(100 * float(p)))})
    return actions


@contextlib.contextmanager
def keep_scheduling():
    """Restore the calling thread's scheduling policy afterwards: run as root, SVT-AV1 switches
    the thread that encodes to real-time SCHED_FIFO, and whatever that thread does next (render
    more clips, train a model) would then starve every other process on the machine."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, policy, param)


def encode_video(path: Path, spec: CodecSpec, frames: Iterable[np.ndarray], times_s: np.ndarray,
                 rate: Fraction | str, width: int, height: int) -> None:
    """Encode RGB frames [H, W, 3] at the given times (s) into a temp file, then move it into
    place: the one clip writer for synthetic clips and benchmark clips."""
    tmp = path.with_name(path.name + ".part")
    time_base = _VFR_TIME_BASE if rate == VFR else 1 / Fraction(rate)
    try:
        with keep_scheduling(), av.open(str(tmp), "w", format=spec.container) as container:
            stream = container.add_stream(spec.encoder, rate=None if rate == VFR else rate,
                                          options=dict(spec.options))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
            for image, t in zip(frames, times_s):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = int(round(Fraction(t).limit_denominator(1 << 20) / time_base))
                frame.time_base = time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def clip_paths(spec: ClipSpec, out_dir: Path, name: str | None = None) -> tuple[Path, Path]:
    """(video, truth) paths that write_clip uses for this spec."""
    family = "" if spec.family == "classic" else f"_{spec.family}"  # classic names as before
    stem = name or (f"synth_{spec.seed:05d}_{spec.track}_{str(spec.fps).replace('.', 'p')}"
                    f"_{spec.codec}_{spec.layout}{family}")
    video = Path(out_dir) / (stem + CODECS[spec.codec].extension)
    return video, truth_path(video)


def axis_truth_paths(spec: ClipSpec, out_dir: Path, name: str | None = None) -> list[Path]:
    """The truth files of the axes besides the stroke (VIDEO.roll.truth.funscript, ...)."""
    video = clip_paths(spec, out_dir, name)[0]
    return [truth_path(video, axis) for axis in spec.axes[1:]]


def refuse_existing(paths: list[Path]) -> None:
    """OutputError naming the first of paths that exists (and how many do): nothing is replaced
    without --force, not a video and not a funscript fsrun wrote beside it."""
    taken = [p for p in paths if p.exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise OutputError(f"{taken[0]} exists{more}; use --force to overwrite")


def track_and_scene(spec: ClipSpec,
                    rng: np.random.Generator | None = None) -> tuple[Track, object]:
    """The clip's track and scene, drawn in the one order every clip uses (from the spec's seed
    unless a generator is given)."""
    rng = np.random.default_rng(spec.seed) if rng is None else rng
    track = make_track(spec.track, spec.seconds + 0.5, rng)
    family = FAMILIES[spec.family]
    scene = family.make_scene(rng, spec.width, spec.height, spec.seconds, spec.layout)
    if "roll" in spec.axes:  # its own stream: every draw above stays what the seed gives
        roll = roll_rng(spec.seed)
        family.add_roll(scene, make_roll_track(roll, spec.seconds + 0.5), roll)
    return track, scene


def axis_tracks(spec: ClipSpec, track: Track, scene: object) -> dict[str, Track]:
    """The track of every axis of the clip, the stroke first."""
    tracks = {"stroke": track, **FAMILIES[spec.family].side_tracks(scene)}
    if scene.tilt is not None:
        tracks["roll"] = scene.tilt.roll
    return {axis: tracks[axis] for axis in spec.axes}


def spec_from_truth(metadata: dict) -> ClipSpec | None:
    """The ClipSpec that a truth funscript's metadata records, or None where it records none."""
    synth = metadata.get("synth") if isinstance(metadata, dict) else None
    if not isinstance(synth, dict):
        return None
    try:
        width, height = (int(v) for v in synth["size"])
        spec = ClipSpec(seconds=float(synth["seconds"]), fps=str(synth["fps"]),
                        codec=str(synth["codec"]), width=width, height=height,
                        layout=str(synth["layout"]), track=str(synth["track"]),
                        seed=int(synth["seed"]), family=str(synth["family"]),
                        axes=tuple(str(a) for a in synth.get("axes", ["stroke"])))
        check_axes(spec.axes)
    except (KeyError, TypeError, ValueError):
        return None
    known = spec.family in FAMILIES and spec.track in TRACK_KINDS
    return spec if known else None


def target_places(spec: ClipSpec, times_s: np.ndarray) -> np.ndarray:
    """float32 [N, 3]: where the clip's target is drawn at each time (centre x as a fraction of
    the view's width, centre y and size as fractions of its height), from the seed alone."""
    track, scene = track_and_scene(spec, np.random.default_rng(spec.seed))
    place = FAMILIES[spec.family].target_place
    return np.array([place(scene, float(t), float(p))
                     for t, p in zip(times_s, track.at(np.asarray(times_s)))],
                    np.float32).reshape(-1, 3)


def write_clip(spec: ClipSpec, out_dir: Path, name: str | None = None,
               force: bool = False) -> Clip:
    """Render and encode one clip plus its true funscript (VIDEO.truth.funscript) into out_dir.

    Existing files are refused (OutputError) unless force."""
    if spec.codec not in CODECS:
        raise ValueError(f"unknown codec {spec.codec!r}; valid: {', '.join(CODECS)}")
    if spec.track not in TRACK_KINDS:
        raise ValueError(f"unknown track {spec.track!r}; valid: {', '.join(TRACK_KINDS)}")
    if spec.family not in FAMILIES:
        raise ValueError(f"unknown family {spec.family!r}; valid: {', '.join(FAMILIES)}")
    if spec.width % 2 or spec.height % 2:
        raise ValueError("width and height must be even (4:2:0 video)")
    check_axes(spec.axes)
    codec = CODECS[spec.codec]
    video, truth = clip_paths(spec, out_dir, name)
    if not force:
        refuse_existing([video, truth, *axis_truth_paths(spec, out_dir, name)])
    rate = parse_fps(spec.fps)
    rng = np.random.default_rng(spec.seed)
    track, scene = track_and_scene(spec, rng)
    family = FAMILIES[spec.family]
    times = frame_times(rate, spec.seconds, rng)
    positions = track.at(times)
    video.parent.mkdir(parents=True, exist_ok=True)
    frame_width = spec.width * (2 if spec.layout == "sbs" else 1)
    frames = family.render_frames(scene, track, times, np.random.default_rng(spec.seed + 1))
    encode_video(video, codec, frames, times, rate, frame_width, spec.height)
    synth = {"family": spec.family, "track": spec.track, "seed": spec.seed,
             "fps": str(spec.fps), "codec": spec.codec, "layout": spec.layout,
             "size": [spec.width, spec.height], "seconds": spec.seconds}
    if spec.axes != ("stroke",):  # stroke-only truth files stay as they always were
        synth["axes"] = list(spec.axes)
    truths = {}
    for axis, axis_track in axis_tracks(spec, track, scene).items():
        metadata = {"creator": "fsrun synth", "title": video.stem,
                    "type": "synthetic ground truth", "notes": "pos " + AXES[axis].meaning,
                    **({} if axis == "stroke" else {"axis": axis}), "synth": synth}
        truths[axis] = truth_path(video, axis)
        write_funscript(truths[axis], build_funscript(truth_actions(times, axis_track.at(times)),
                                                      metadata), force=True, truth=True)
    return Clip(video=video, truth=truth, track=track, times_s=times, positions=positions,
                truths=truths)
