"""Axes besides the stroke in synthetic clips: roll rendered, sway and surge read off the scene.

Roll is the tilt of an elongated target: pos 50 draws it upright, pos 100 with its top tilted
ROLL_DEGREES to the viewer's right (clockwise on screen), pos 0 the same to the left. A clip
that renders roll draws its target elongated (a disc shows no tilt) and gives it no other spin;
its roll track and shape come from a random stream of their own, so the clip's stroke track,
scene and every other draw stay what the same seed gives without roll. Sway (sideways place) and
surge (size) are motions every scene already has; their truth is the scene's own track.
"""
from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from fsrun.groundtruth.synth.shapes import Primitive, Shape
from fsrun.groundtruth.synth.tracks import Track, make_track

ROLL_DEGREES = 30.0  # the tilt at pos 100 (to the right) and pos 0 (to the left)
ROLL_TRACKS = ("sine", "random_walk", "mixed")  # kinds a roll track is drawn from
RENDERED = ("stroke", "roll")  # axes a synthetic clip draws; sway and surge are read off
READ_OFF = ("sway", "surge")
SYNTH_AXES = RENDERED + READ_OFF
_STREAM = 0x5011  # the roll's own random stream beside the clip's seed


@dataclass
class Tilt:
    """A scene's roll: the target, elongated, tilting along a track."""

    roll: Track  # 0..1 over time (0.5 upright)
    shape: Shape  # the elongated target drawn


def roll_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM])


def roll_angle(position: float) -> float:
    """Radians of tilt for a roll position in 0..1; positive is clockwise on screen (the top
    to the right), the sense shapes.paint rotates in."""
    return float(np.radians(ROLL_DEGREES) * (2.0 * position - 1.0))


def make_roll_track(rng: np.random.Generator, seconds: float) -> Track:
    """A roll track, slower and smoother on average than a stroke track."""
    return make_track(str(rng.choice(ROLL_TRACKS)), seconds, rng)


def elongated(rng: np.random.Generator, like: Shape) -> Shape:
    """An upright elongated target (ellipse, rounded bar or capsule of two parts) in the colours
    and style of `like`: long enough that its tilt shows at 64 pixels."""
    thin, long = float(rng.uniform(0.35, 0.55)), float(rng.uniform(1.15, 1.5))
    kind = str(rng.choice(["ellipse", "bar", "capsule"]))
    if kind == "ellipse":
        parts = [Primitive("ellipse", (0, 0), (thin, long))]
    elif kind == "bar":
        parts = [Primitive("box", (0, 0), (thin, long), rounding=float(rng.uniform(0.1, 0.9)))]
    else:  # a body and a head, both on the long axis
        parts = [Primitive("box", (0, 0.2), (thin, long * 0.8), rounding=0.9),
                 Primitive("ellipse", (0, -long * 0.75), (thin * 1.25, thin * 1.25))]
    return Shape(parts, like.fill, like.fill2, like.style, like.outline, like.outline_px,
                 like.texture)
