"""Frames of a synthetic scene: one target disc moving up and down along a known track.

The target's vertical centre is fixed by the position alone (pos 1 = high in the frame,
pos 0 = low), so a frame determines its position. Everything else changes to keep a model from
reading one pixel: a textured background that drifts, lighting and tint that vary, the target's
size and horizontal place that wander, small distractor squares that move on their own, and
sensor noise. The side-by-side (VR) layout renders two views with a small disparity; the left
half is the view fsrun crops by default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from fsrun.groundtruth.synth.axes import Tilt, elongated, roll_angle
from fsrun.groundtruth.synth.shapes import Shape, paint
from fsrun.groundtruth.synth.tracks import Track, make_track

TOP_Y, BOTTOM_Y = 0.2, 0.8  # target centre height (fraction of frame height) at pos 1 and pos 0


@dataclass
class Distractor:
    size: float  # half side as a fraction of frame height
    color: np.ndarray  # float32 [3] in 0..255
    x_track: Track  # horizontal place over time, 0..1 of the width
    y_track: Track  # vertical place over time, 0..1 of the height


@dataclass
class Scene:
    """Everything random about one clip, drawn once from a seed."""

    width: int  # width of one view in pixels
    height: int  # height of one view in pixels
    layout: str  # "flat" or "sbs" (two views side by side, frame is 2 * width wide)
    texture: np.ndarray  # float32 [2H, 2W, 3] tileable background
    drift_px_s: tuple[float, float]  # background motion (x, y) in pixels per second
    target_color: np.ndarray  # float32 [3]
    target_radius: float  # base radius as a fraction of frame height
    scale: Track  # size multiplier over time (0..1 maps to 0.8..1.25)
    sway: Track  # horizontal centre over time (0..1 maps to 0.3..0.7 of the width)
    look: ClassicLook  # light, colour cast and noise
    distractors: list[Distractor] = field(default_factory=list)  # other moving things
    disparity: float = 0.03  # sbs only: right view shifts the target by this fraction of width
    tilt: Tilt | None = None  # roll: an elongated target tilting (synth/axes.py); None: the
    # upright disc


@dataclass
class ClassicLook:
    light: Track  # brightness over time (0..1 maps to 0.65..1.2)
    tint: np.ndarray  # float32 [3] per-channel colour cast
    noise_sigma: float  # std of per-pixel Gaussian noise in 0..255 units


def add_roll(scene: Scene, roll: Track, rng: np.random.Generator) -> None:
    """Draw the target elongated and tilting along roll (its rim stays dark)."""
    like = Shape([], scene.target_color, scene.target_color, outline=np.full(3, 15, np.float32),
                 outline_px=2.0)
    scene.tilt = Tilt(roll, elongated(rng, like))


def side_tracks(scene: Scene) -> dict[str, Track]:
    """Sway (horizontal place, 1 = right) and surge (size, 1 = largest) of the target."""
    return {"sway": scene.sway, "surge": scene.scale}


def grating_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A tileable texture: random gratings plus smoothed noise, mapped between two colours."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    value = np.zeros((h, w), np.float32)
    for _ in range(3):
        kx, ky = rng.integers(1, 6), rng.integers(1, 6)
        value += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * (kx * xx / w + ky * yy / h)
                                                 + rng.uniform(0, 2 * np.pi))
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    for axis in (0, 1):  # a cheap wrap-around blur keeps the texture tileable
        for shift in (1, 2, 3):
            noise = noise + np.roll(noise, shift, axis) + np.roll(noise, -shift, axis)
    value += 0.5 * noise / (noise.std() + 1e-6)
    value = (value - value.min()) / (value.max() - value.min() + 1e-6)
    dark, light = rng.uniform(20, 110, 3), rng.uniform(90, 200, 3)
    return (dark + value[..., None] * (light - dark)).astype(np.float32)


def _bright_color(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: one channel high, one random, one low."""
    channels = rng.permutation(3)
    color = np.empty(3, np.float32)
    color[channels[0]] = rng.uniform(210, 255)
    color[channels[1]] = rng.uniform(0, 255)
    color[channels[2]] = rng.uniform(0, 60)
    return color


def check_view(width: int, height: int, layout: str) -> None:
    """ValueError for a layout no family draws or a view too small to draw in."""
    if layout not in ("flat", "sbs"):
        raise ValueError(f"unknown layout {layout!r}; valid: flat, sbs")
    if width < 16 or height < 16:
        raise ValueError("frames must be at least 16x16 pixels")


def make_scene(rng: np.random.Generator, width: int, height: int, seconds: float,
               layout: str = "flat") -> Scene:
    """Draw a random scene; the same rng state gives the same scene."""
    check_view(width, height, layout)
    span = seconds + 1.0
    distractors = [
        Distractor(size=float(rng.uniform(0.03, 0.06)), color=_bright_color(rng),
                   x_track=make_track("random_walk", span, rng),
                   y_track=make_track("random_walk", span, rng))
        for _ in range(int(rng.integers(1, 4)))
    ]
    return Scene(
        width=width, height=height, layout=layout,
        texture=grating_texture(rng, 2 * height, 2 * width),
        drift_px_s=(float(rng.uniform(-0.3, 0.3) * width), float(rng.uniform(-0.2, 0.2) * height)),
        target_color=_bright_color(rng),
        target_radius=float(rng.uniform(0.10, 0.14)),
        scale=make_track("sine", span, rng),
        sway=make_track("random_walk", span, rng),
        # drawn in the order they always were: the same seed, the same clip
        look=ClassicLook(light=make_track("random_walk", span, rng),
                         tint=rng.uniform(0.85, 1.15, 3).astype(np.float32),
                         noise_sigma=float(rng.uniform(2.0, 8.0))),
        distractors=distractors,
    )


def _paint_disc(img: np.ndarray, cx: float, cy: float, radius: float, color: np.ndarray,
                rim: float) -> None:
    """Anti-aliased disc with a dark rim, so the target has a shape and not only a colour."""
    h, w = img.shape[:2]
    x0, x1 = max(int(cx - radius - 2), 0), min(int(cx + radius + 3), w)
    y0, y1 = max(int(cy - radius - 2), 0), min(int(cy + radius + 3), h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dist = np.sqrt((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2)
    outer = np.clip(radius - dist + 0.5, 0, 1)[..., None]
    inner = np.clip(radius * (1 - rim) - dist + 0.5, 0, 1)[..., None]
    patch = img[y0:y1, x0:x1]
    patch *= 1 - outer
    patch += (outer - inner) * 15.0 + inner * color


def _paint_square(img: np.ndarray, cx: float, cy: float, half: float, color: np.ndarray) -> None:
    h, w = img.shape[:2]
    x0, x1 = max(int(round(cx - half)), 0), min(int(round(cx + half)), w)
    y0, y1 = max(int(round(cy - half)), 0), min(int(round(cy + half)), h)
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = color


def target_center_y(position: float, height: int) -> float:
    """Pixel row of the target's centre for a position in 0..1 (1 = top)."""
    return height * (BOTTOM_Y + (TOP_Y - BOTTOM_Y) * position)


def _target_pose(scene: Scene, t_s: float, position: float,
                 x_shift: float = 0.0) -> tuple[float, float, float]:
    """(centre x, centre y, radius) of the target in pixels of one view."""
    h, w = scene.height, scene.width
    radius = scene.target_radius * h * (0.8 + 0.45 * float(scene.scale.at(t_s)))
    cx = w * (0.3 + 0.4 * float(scene.sway.at(t_s)) + x_shift)
    return cx, target_center_y(position, h), radius


def target_place(scene: Scene, t_s: float, position: float) -> tuple[float, float, float]:
    """Where the target is drawn in the (left) view: centre x as a fraction of the width,
    centre y and radius as fractions of the height."""
    cx, cy, radius = _target_pose(scene, t_s, position)
    return cx / scene.width, cy / scene.height, radius / scene.height


def _view(scene: Scene, t_s: float, position: float, x_shift: float,
          rng: np.random.Generator) -> np.ndarray:
    h, w = scene.height, scene.width
    ox = int(round(scene.drift_px_s[0] * t_s)) % (2 * w)
    oy = int(round(scene.drift_px_s[1] * t_s)) % (2 * h)
    img = np.roll(scene.texture, (-oy, -ox), axis=(0, 1))[:h, :w].copy()
    for d in scene.distractors:
        _paint_square(img, float(d.x_track.at(t_s)) * w, float(d.y_track.at(t_s)) * h,
                      d.size * h, d.color)
    cx, cy, radius = _target_pose(scene, t_s, position, x_shift)
    if scene.tilt is None:
        _paint_disc(img, cx, cy, radius, scene.target_color, rim=0.3)
    else:
        paint(img, scene.tilt.shape, cx, cy, radius, roll_angle(float(scene.tilt.roll.at(t_s))))
    img *= (0.65 + 0.55 * float(scene.look.light.at(t_s))) * scene.look.tint
    img += rng.normal(0.0, scene.look.noise_sigma, img.shape).astype(np.float32)
    return img


def render_frame(scene: Scene, t_s: float, position: float,
                 rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 frame [H, W, 3] ([H, 2W, 3] for sbs) at time t_s showing position."""
    if scene.layout == "sbs":
        left = _view(scene, t_s, position, 0.0, rng)
        right = _view(scene, t_s, position, -scene.disparity, rng)
        img = np.concatenate([left, right], axis=1)
    else:
        img = _view(scene, t_s, position, 0.0, rng)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_frames(scene: Scene, track: Track, times_s: np.ndarray,
                  rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Frames at the given timestamps, the target following the track."""
    for t_s, position in zip(times_s, track.at(times_s)):
        yield render_frame(scene, float(t_s), float(position), rng)
