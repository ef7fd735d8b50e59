"""An evaluation renderer written apart from fsrun.groundtruth.synth, used only to grade trained models.

Nothing here is shared with the renderer the models train on: its own motion tracks (linear
ramps, chirps, steps, sums of sines, filtered noise), its own object kinds (a plain light
ellipse, a ring, a shaded ball, a plus sign, a triangle, an upright capsule), its own
backgrounds (plain dark or light, brick wall, checkerboard, radial vignette, wall and floor,
out-of-focus lights, plasma), its own anti-aliasing (supersampled coverage), its own frame timing for
variable frame rate (every interval drawn anew) and its own encoder settings and container
(Matroska for every codec, stronger compression). A model that learned the training
renderer's look rather than motion fails here.

Positions follow the funscript convention: 1 (pos 100) is the object at the top of its travel.
The truth is written as VIDEO.truth.funscript, one point per frame.

A tilting scene (`EvalScene(tilt=True)`) draws an elongated object of its own kinds (a tall
ellipse, a bar, the capsule) that also tilts along a motion of its own, and writes that roll as
VIDEO.roll.truth.funscript under the documented convention: pos 50 upright, pos 100 its top
ROLL_DEGREES to the viewer's right (clockwise on screen), pos 0 as far to the left.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from fsrun.groundtruth.grade import TruthClip, grade, r_table
from fsrun.groundtruth.seeds import seed_range
from tests.seeds import register_all

register_all()  # its ranges, when run as a command (under pytest conftest.py did it already)

OBJECTS = ("light_ellipse", "ring", "shaded_ball", "plus", "triangle", "capsule")
BACKGROUNDS = ("plain_dark", "brick", "checker", "radial", "wall_floor", "bokeh",
               "plasma", "plain_light")
MOTIONS = ("ramps", "chirp", "steps", "two_sines", "filtered_noise")
RATES = ("24", "25", "29.97", "30", "60", "vfr")
ENCODERS = {  # codec name -> (FFmpeg encoder, options): more compression than training uses
    "h264": ("libx264", {"preset": "faster", "crf": "26"}),
    "hevc": ("libx265", {"preset": "ultrafast", "crf": "28", "x265-params": "log-level=error"}),
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "36", "b": "0"}),
    "av1": ("libsvtav1", {"preset": "12", "crf": "38"}),
}
SIZES = ((128, 96), (160, 90), (112, 112), (144, 108))  # 4:3, 16:9, square: never the 96x72 of
TRAVEL = (0.27, 0.73)  # object centre height (fraction of H) at pos 1 and pos 0   # training
TILT_OBJECTS = ("tall_ellipse", "bar", "capsule")  # elongated kinds a tilting scene draws
ROLL_DEGREES = 30.0  # the documented roll convention: pos 100 = top 30 degrees to the right


# ---- motion -------------------------------------------------------------------------------

def _ramps(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Constant-speed moves between alternating extremes: sharp turns, no easing."""
    knots_t, knots_v, up = [0.0], [rng.uniform(0.3, 0.7)], True
    while knots_t[-1] <= t[-1]:
        knots_t.append(knots_t[-1] + rng.uniform(0.3, 1.1))
        knots_v.append(rng.uniform(0.65, 0.95) if up else rng.uniform(0.05, 0.35))
        up = not up
    return np.interp(t, knots_t, knots_v)


def _chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f0, f1 = rng.uniform(0.25, 0.5), rng.uniform(1.2, 2.0)
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * max(t[-1], 1e-6)))
    return 0.5 + 0.4 * np.sin(phase + rng.uniform(0, 2 * np.pi))


def _steps(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Holds at random levels joined by quick smoothstep moves (0.25 s each)."""
    edges, levels = [0.0], [rng.uniform(0.1, 0.9)]
    while edges[-1] <= t[-1]:
        edges.append(edges[-1] + rng.uniform(0.6, 1.6))
        levels.append(rng.uniform(0.05, 0.95))
    starts, values = np.array(edges), np.array(levels)
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
    into = np.clip((t - starts[idx]) / 0.25, 0, 1)
    smooth = into * into * (3 - 2 * into)
    before = values[np.maximum(idx - 1, 0)]
    return before + (values[idx] - before) * smooth


def _two_sines(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    f = rng.uniform(0.35, 1.1)
    a, b = rng.uniform(0.25, 0.35), rng.uniform(0.05, 0.12)
    return 0.5 + a * np.sin(2 * np.pi * f * t) + b * np.sin(2 * np.pi * f * rng.uniform(1.7, 2.6)
                                                           * t + rng.uniform(0, 6.3))


def _filtered_noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """White noise low-passed in the frequency domain (below ~1.5 Hz), scaled into 0.05..0.95."""
    n = len(t)
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, d=(t[1] - t[0]) if n > 1 else 1.0)
    spectrum[freqs > 1.5] = 0
    spectrum[0] = 0
    wave = np.fft.irfft(spectrum, n)
    wave = (wave - wave.min()) / (np.ptp(wave) + 1e-9)
    return 0.05 + 0.9 * wave


_MOTION_FUNCS: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "ramps": _ramps, "chirp": _chirp, "steps": _steps, "two_sines": _two_sines,
    "filtered_noise": _filtered_noise,
}


def motion(kind: str, seconds: float, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A function time (s) -> position 0..1, sampled every 2 ms and read by interpolation."""
    grid = np.arange(0.0, seconds + 0.5, 0.002)
    values = np.clip(_MOTION_FUNCS[kind](rng, grid), 0.0, 1.0)
    return lambda times: np.interp(times, grid, values)


def frame_times(rate: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Regular times, or for 'vfr' every interval drawn anew between 1/50 and 1/20 s (whole ms)."""
    if rate != "vfr":
        fps = Fraction(30000, 1001) if rate == "29.97" else Fraction(rate)
        return np.arange(int(seconds * fps)) / float(fps)
    steps = rng.integers(20, 51, size=int(seconds * 50) + 1) / 1000.0
    times = np.concatenate([[0.0], np.cumsum(steps)])
    return times[times < seconds]


# ---- drawing --------------------------------------------------------------------------------

def _grid(h: int, w: int, samples: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample positions [S*S, H, W] for supersampled coverage."""
    offsets = (np.arange(samples) + 0.5) / samples
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (yy[None] + oy.reshape(-1, 1, 1)), (xx[None] + ox.reshape(-1, 1, 1))


def _coverage(inside: np.ndarray) -> np.ndarray:
    return inside.mean(axis=0).astype(np.float32)


@dataclass
class Thing:
    """The moving object: a kind, its size and colours, and how it is drawn."""

    kind: str
    size: float  # half height as a fraction of frame height
    aspect: float  # width / height of its bounding shape
    color: np.ndarray  # float [3]
    second: np.ndarray  # float [3], for kinds with two tones

    def paint(self, img: np.ndarray, cx: float, cy: float, grid: tuple[np.ndarray, np.ndarray],
              tilt_degrees: float = 0.0) -> None:
        """Draw centred at (cx, cy); tilt_degrees > 0 turns the object clockwise on screen."""
        h = img.shape[0]
        ry = self.size * h
        rx = ry * self.aspect
        yy, xx = grid
        px, py = xx - cx, yy - cy
        if tilt_degrees:  # the object's own axes: a point up-right of it reads as "up" when
            turn = np.deg2rad(tilt_degrees)  # the object leans right (rows grow downwards)
            px, py = (np.cos(turn) * px + np.sin(turn) * py,
                      -np.sin(turn) * px + np.cos(turn) * py)
        dx, dy = px / rx, py / ry
        if self.kind in ("light_ellipse", "tall_ellipse"):
            alpha = _coverage(dx * dx + dy * dy <= 1.0)
            layer = np.broadcast_to(self.color, img.shape)
        elif self.kind == "ring":
            d2 = dx * dx + dy * dy
            alpha = _coverage((d2 <= 1.0) & (d2 >= 0.5 ** 2))
            layer = np.broadcast_to(self.color, img.shape)
        elif self.kind == "shaded_ball":
            d2 = dx * dx + dy * dy
            alpha = _coverage(d2 <= 1.0)
            mx, my = dx.mean(axis=0), dy.mean(axis=0)
            nz = np.sqrt(np.clip(1.0 - mx * mx - my * my, 0.0, 1.0))
            light = np.clip(-0.45 * mx - 0.55 * my + 0.7 * nz, 0.0, 1.0)
            layer = self.color * (0.25 + 0.75 * light[..., None]) + 60.0 * light[..., None] ** 8
        elif self.kind == "plus":
            bar = 0.33
            alpha = _coverage(((np.abs(dx) <= 1) & (np.abs(dy) <= bar))
                              | ((np.abs(dy) <= 1) & (np.abs(dx) <= bar)))
            layer = np.broadcast_to(self.color, img.shape)
        elif self.kind == "triangle":  # apex up
            alpha = _coverage((dy <= 1) & (dy >= -1) & (np.abs(dx) <= (dy + 1) / 2))
            layer = np.broadcast_to(self.color, img.shape)
        elif self.kind == "bar":  # an upright plain rectangle
            alpha = _coverage((np.abs(dx) <= 1) & (np.abs(dy) <= 1))
            layer = np.broadcast_to(self.color, img.shape)
        elif self.kind == "capsule":  # upright rod with round ends, two-tone
            core = np.maximum(np.abs(dy) - 0.6, 0.0)
            alpha = _coverage(dx * dx + (core / 0.4) ** 2 <= 1.0)
            shade = np.clip(0.5 + 0.5 * dx.mean(axis=0), 0, 1)[..., None]
            layer = self.color * (1 - shade) + self.second * shade
        else:
            raise ValueError(f"unknown object kind {self.kind!r}")
        a = alpha[..., None]
        img *= 1 - a
        img += a * layer


def make_thing(kind: str, rng: np.random.Generator) -> Thing:
    if kind == "light_ellipse":  # plain, pale, no outline: the case users try first
        color = np.full(3, rng.uniform(215, 245)) - rng.uniform(0, 20, 3)
        return Thing(kind, rng.uniform(0.10, 0.15), rng.uniform(1.2, 1.8), color, color)
    color = rng.uniform(30, 255, 3)
    color[rng.integers(0, 3)] = rng.uniform(180, 255)
    aspect = {"capsule": rng.uniform(0.45, 0.6), "plus": 1.0, "triangle": rng.uniform(0.8, 1.1),
              "tall_ellipse": rng.uniform(0.35, 0.5), "bar": rng.uniform(0.22, 0.35)
              }.get(kind, rng.uniform(0.8, 1.25))
    return Thing(kind, rng.uniform(0.10, 0.16), aspect, color, rng.uniform(0, 255, 3))


def background(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A still background float [H, W, 3] of one of BACKGROUNDS."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w, yy / h
    a, b = rng.uniform(10, 120, 3), rng.uniform(60, 200, 3)
    if kind in ("plain_dark", "plain_light"):  # one flat colour, nothing else
        level = rng.uniform(10, 35) if kind == "plain_dark" else rng.uniform(185, 215)
        return np.full((h, w, 3), level, np.float32) + rng.uniform(-5, 5, 3).astype(np.float32)
    if kind == "brick":  # offset rows of bricks with mortar lines
        rows = rng.uniform(0.1, 0.18) * h
        row = yy // rows
        brick_w = rows * rng.uniform(1.8, 2.6)
        shifted = xx + (row % 2) * brick_w / 2
        mortar = ((yy % rows) < 1.5) | ((shifted % brick_w) < 1.5)
        shade = np.random.default_rng(int(rng.integers(1 << 30))).uniform(0.35, 0.65, 4096)
        mix = np.where(mortar, 0.95, shade[(row * 64 + shifted // brick_w).astype(int) % 4096])
        mix = mix[..., None]
    elif kind == "checker":
        tile = rng.uniform(0.08, 0.2) * h
        mix = (((xx // tile) + (yy // tile)) % 2)[..., None]
    elif kind == "radial":
        r = np.hypot(u - rng.uniform(0.3, 0.7), v - rng.uniform(0.3, 0.7))
        mix = np.clip(r / 0.7, 0, 1)[..., None]
    elif kind == "wall_floor":
        horizon = rng.uniform(0.55, 0.75)
        planks = 0.08 * (np.sin(2 * np.pi * u * rng.integers(6, 14)) > 0.9)
        mix = np.where(v < horizon, 0.15 + planks, 0.85 - 0.3 * (v - horizon))[..., None]
    elif kind == "bokeh":
        mix = np.zeros((h, w, 1), np.float32)
        for _ in range(int(rng.integers(5, 10))):
            r = rng.uniform(0.08, 0.25) * h
            d = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h)) / r
            mix[..., 0] += rng.uniform(0.2, 0.6) * np.exp(-d ** 4)
        mix = np.clip(mix, 0, 1)
    elif kind == "plasma":
        f1, f2 = rng.uniform(4, 9, 2)
        mix = (0.5 + 0.25 * np.sin(f1 * np.hypot(u - 0.2, v - 0.8))
               + 0.25 * np.sin(f2 * np.hypot(u - 0.9, v - 0.1)))[..., None]
    else:
        raise ValueError(f"unknown background {kind!r}")
    return (a * (1 - mix) + b * mix).astype(np.float32)


@dataclass
class EvalScene:
    object_kind: str  # one of OBJECTS
    background_kind: str  # one of BACKGROUNDS
    motion_kind: str  # one of MOTIONS
    size: tuple[int, int]  # W, H
    dot: bool = False  # a small dot drifting left and right (a distractor)
    tilt: bool = False  # the object also tilts (roll), its truth in VIDEO.roll.truth.funscript


def render(scene: EvalScene, times: np.ndarray, positions: np.ndarray, seed: int,
           rolls: np.ndarray | None = None) -> np.ndarray:
    """uint8 frames [N, H, W, 3] with the object's centre at each position's height (and, with
    rolls, its tilt at each roll: 0.5 upright, 1 = ROLL_DEGREES clockwise)."""
    rng = np.random.default_rng([seed, 1])
    w, h = scene.size
    base = background(scene.background_kind, h, w, rng)
    thing = make_thing(scene.object_kind, rng)
    grid = _grid(h, w)
    x_centre, x_wobble, x_rate = rng.uniform(0.4, 0.6), rng.uniform(0.0, 0.05), rng.uniform(0.1, 0.3)
    dot_color, dot_rate = rng.uniform(0, 255, 3), rng.uniform(0.1, 0.4)
    noise = rng.uniform(1.0, 4.0)
    frames = np.empty((len(times), h, w, 3), np.uint8)
    top, bottom = TRAVEL
    for i, (t, p) in enumerate(zip(times, positions)):
        img = base.copy()
        if scene.dot:
            dx = w * (0.5 + 0.42 * np.sin(2 * np.pi * dot_rate * t))
            dot = Thing("light_ellipse", 0.035, 1.0, dot_color, dot_color)
            dot.paint(img, dx, 0.15 * h, grid)
        cx = w * (x_centre + x_wobble * np.sin(2 * np.pi * x_rate * t))
        cy = h * (bottom + (top - bottom) * p)
        tilt = 0.0 if rolls is None else ROLL_DEGREES * (2.0 * float(rolls[i]) - 1.0)
        thing.paint(img, cx, cy, grid, tilt)
        img += rng.normal(0.0, noise, img.shape)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


# ---- encoding -------------------------------------------------------------------------------

def encode(path: Path, frames: np.ndarray, times: np.ndarray, codec: str) -> None:
    """Matroska, time base 1 ms, every frame at its own time (any rate, regular or not)."""
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration otherwise
    from fsrun.groundtruth.synth.clips import keep_scheduling  # a guard around SVT-AV1, not drawing code

    name, options = ENCODERS[codec]
    tmp = path.with_name(path.name + ".part")
    with keep_scheduling(), av.open(str(tmp), "w", format="matroska") as out:
        stream = out.add_stream(name, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for image, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.replace(path)


@dataclass
class EvalClip:
    video: Path
    truth: Path
    scene: EvalScene
    rate: str
    codec: str
    roll_truth: Path | None = None  # VIDEO.roll.truth.funscript of a tilting scene


def _write_truth(path: Path, times: np.ndarray, positions: np.ndarray) -> None:
    actions, last = [], None
    for t, p in zip(times, positions):
        at = int(round(t * 1000))
        if at != last:
            actions.append({"at": at, "pos": int(round(100 * p))})
            last = at
    path.write_text(json.dumps({"version": "1.0", "range": 100, "inverted": False,
                                "actions": actions}), encoding="utf-8")


def write_eval_clip(folder: Path, scene: EvalScene, rate: str, codec: str, seconds: float,
                    seed: int) -> EvalClip:
    """Render, encode and write VIDEO.truth.funscript (one action per frame)."""
    rng = np.random.default_rng([seed, 0])
    times = frame_times(rate, seconds, rng)
    positions = motion(scene.motion_kind, seconds, rng)(times)
    folder.mkdir(parents=True, exist_ok=True)
    stem = (f"eval_{seed}_{scene.object_kind}_{scene.background_kind}_{scene.motion_kind}_"
            f"{rate.replace('.', 'p')}_{codec}")
    video = folder / f"{stem}.mkv"
    rolls, roll_truth = None, None
    if scene.tilt:  # its own stream: a tilting clip's stroke is the plain clip's
        roll_rng = np.random.default_rng([seed, 2])
        kind = MOTIONS[int(roll_rng.integers(0, len(MOTIONS)))]
        rolls = motion(kind, seconds, roll_rng)(times)
        roll_truth = folder / f"{stem}.roll.truth.funscript"
    encode(video, render(scene, times, positions, seed, rolls), times, codec)
    truth = folder / f"{stem}.truth.funscript"
    _write_truth(truth, times, positions)
    if rolls is not None:
        _write_truth(roll_truth, times, rolls)
    return EvalClip(video, truth, scene, rate, codec, roll_truth)


# ---- the evaluation grid ---------------------------------------------------------------------

# A plain light ellipse moving up and down over a plain dark background: the first thing a user
# tried with the demo model (raw r 0.58 before training was domain-randomized).
USER_ELLIPSE = EvalScene("light_ellipse", "plain_dark", "two_sines", (160, 120))


def grid_scenes() -> list[tuple[str, str, EvalScene]]:
    """One clip per rate and codec (24), each a different pair of object and background (every
    object meets four backgrounds); the user's light ellipse on a dark plain background first."""
    rows = []
    codecs = list(ENCODERS)
    for i, (rate, codec) in enumerate((r, c) for r in RATES for c in codecs):
        scene = USER_ELLIPSE if i == 0 else EvalScene(
            OBJECTS[i % len(OBJECTS)], BACKGROUNDS[3 * i % len(BACKGROUNDS)],
            MOTIONS[i % len(MOTIONS)], SIZES[i % len(SIZES)], dot=i % 3 == 2)
        rows.append((rate, codec, scene))
    return rows


# Clip i of a graded list renders with seed GRID_SEED + i (WIDE_SEED + i for wide_scenes, so no
# clip repeats one of the grid): the independent renderer's ranges in the one seed table.
GRID_SEED = seed_range("independent-grid").first
WIDE_SEED = seed_range("independent-wide").first


def wide_scenes(count: int) -> list[tuple[str, str, EvalScene]]:
    """count clips for comparing recipes beyond the grid's 24: every object over every
    background in turn (48 pairs), the rate and codec, motion, size and dot cycling at other
    periods, so that each pair meets a new rate, codec and motion on its next pass."""
    codecs = list(ENCODERS)
    pairs = [(o, b) for b in BACKGROUNDS for o in OBJECTS]
    rows = []
    for i in range(count):
        obj, background = pairs[i % len(pairs)]
        rate_codec = (i + i // len(pairs)) % (len(RATES) * len(codecs))
        scene = EvalScene(obj, background, MOTIONS[(i + 2 * (i // len(pairs))) % len(MOTIONS)],
                          SIZES[(i // 3) % len(SIZES)], dot=i % 4 == 1)
        rows.append((RATES[rate_codec // len(codecs)], codecs[rate_codec % len(codecs)], scene))
    return rows


def tilt_scenes() -> list[tuple[str, str, EvalScene]]:
    """One tilting clip per rate and codec (24): the elongated kinds over every background in
    turn, the motions cycling; the same seeds as the grid (GRID_SEED + i)."""
    codecs = list(ENCODERS)
    return [(rate, codec, EvalScene(TILT_OBJECTS[i % len(TILT_OBJECTS)],
                                    BACKGROUNDS[(3 * i + 1) % len(BACKGROUNDS)],
                                    MOTIONS[i % len(MOTIONS)], SIZES[i % len(SIZES)],
                                    dot=i % 3 == 2, tilt=True))
            for i, (rate, codec) in enumerate((r, c) for r in RATES for c in codecs)]


def grade_package(package: Path, folder: Path, clips: list[tuple[str, str, EvalScene]],
                  seconds: float = 10.0, seed: int = GRID_SEED) -> list[dict]:
    """Render each clip, then grade them all through one model session (fsrun.groundtruth):
    the raw per-frame positions against the truth; a tilting clip gives a roll row too."""
    rendered = []
    for i, (rate, codec, scene) in enumerate(clips):
        clip = write_eval_clip(folder, scene, rate, codec, seconds, seed + i)
        rendered.append(TruthClip(clip.video, clip.truth, {
            "fps": rate, "codec": codec, "object": scene.object_kind,
            "background": scene.background_kind, "motion": scene.motion_kind},
            {"roll": clip.roll_truth} if clip.roll_truth is not None else {}))
    return [row for graded in grade(package, rendered) for row in graded.rows()]


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.groundtruth.independent PACKAGE [FOLDER] [--wide N]`: the grid's r as a
    table; with --wide, N clips of wide_scenes and the share of them at r >= 0.9 instead."""
    import argparse
    import tempfile


    parser = argparse.ArgumentParser(prog="python -m tests.groundtruth.independent")
    parser.add_argument("package", type=Path)
    parser.add_argument("folder", type=Path, nargs="?", default=None)
    parser.add_argument("--wide", type=int, default=0, metavar="N")
    parser.add_argument("--tilt", action="store_true", help="the tilting grid (stroke + roll)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fsrun-independent-") as scratch:
        folder = args.folder or Path(scratch)
        if args.tilt:
            rows = grade_package(args.package, folder, tilt_scenes(), seconds=8.0)
        elif args.wide:
            rows = grade_package(args.package, folder, wide_scenes(args.wide), seconds=8.0,
                                 seed=WIDE_SEED)
        else:
            rows = grade_package(args.package, folder, grid_scenes(), seconds=8.0)
    print(json.dumps(rows, indent=1))
    if not args.wide:
        for axis in dict.fromkeys(row.get("axis", "stroke") for row in rows):
            print(f"{axis}:\n" + r_table([r for r in rows if r.get("axis", "stroke") == axis]))
        return
    rs = np.array([row["r"] for row in rows])
    missed = [f"{row['object']} over {row['background']} ({row['fps']} {row['codec']}): "
              f"{row['r']:.3f}" for row in rows if row["r"] < 0.9]
    print(f"{np.mean(rs >= 0.9):.3f} of {len(rs)} clips at r >= 0.9, mean r {rs.mean():.3f}, "
          f"10th percentile {np.percentile(rs, 10):.3f}; under 0.9: {'; '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()
