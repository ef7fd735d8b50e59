"""Position tracks with known motion: the ground truth every synthetic clip is rendered from.

A track is a function of time (seconds) returning positions in 0..1, where 1 means the object is
at the top of its travel and 0 at the bottom, the funscript convention (pos 100 = up). Tracks
are sampled densely (every 5 ms) and evaluated by linear interpolation, so any frame timestamp,
regular or variable frame rate, gets its exact position.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

SAMPLE_STEP_S = 0.005  # dense sampling step of every track


@dataclass(frozen=True)
class Track:
    """A position track: dense samples of position (0..1, 1 = top) over time."""

    kind: str  # generator name from TRACK_KINDS
    times_s: np.ndarray  # float64 [K], ascending, starting at 0
    positions: np.ndarray  # float64 [K] in 0..1

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])

    def at(self, times_s: np.ndarray | float) -> np.ndarray:
        """Positions at arbitrary times (clamped to the track's ends)."""
        return np.interp(np.asarray(times_s, dtype=np.float64), self.times_s, self.positions)


def _grid(seconds: float) -> np.ndarray:
    steps = int(np.ceil(seconds / SAMPLE_STEP_S)) + 1
    return np.arange(steps, dtype=np.float64) * SAMPLE_STEP_S


def _smooth_curve(rng: np.random.Generator, t: np.ndarray, low: float, high: float,
                  knot_every_s: float) -> np.ndarray:
    """A slowly varying value in [low, high]: random knots joined by cosine easing."""
    knots_t = np.arange(0.0, t[-1] + 2 * knot_every_s, knot_every_s)
    knots_v = rng.uniform(low, high, size=len(knots_t))
    idx = np.minimum((t // knot_every_s).astype(int), len(knots_t) - 2)
    frac = (t - knots_t[idx]) / knot_every_s
    ease = 0.5 - 0.5 * np.cos(np.pi * frac)
    return knots_v[idx] * (1 - ease) + knots_v[idx + 1] * ease


def sine_track(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Sine waves whose frequency, amplitude and centre drift over time."""
    t = _grid(seconds)
    freq = _smooth_curve(rng, t, 0.4, 2.0, knot_every_s=rng.uniform(2.0, 4.0))
    phase = 2 * np.pi * np.cumsum(freq) * SAMPLE_STEP_S + rng.uniform(0, 2 * np.pi)
    amplitude = _smooth_curve(rng, t, 0.15, 0.5, knot_every_s=3.0)
    centre = _smooth_curve(rng, t, 0.35, 0.65, knot_every_s=4.0)
    return centre + amplitude * np.sin(phase)


def _strokes(rng: np.random.Generator, seconds: float, duration: Callable[[], float],
             pause_chance: float) -> np.ndarray:
    """Eased moves between alternating high and low targets, with optional holds."""
    t = _grid(seconds)
    knot_t, knot_v = [0.0], [rng.uniform(0.0, 1.0)]
    going_up = bool(rng.integers(0, 2))
    while knot_t[-1] < seconds + 1.0:
        if rng.random() < pause_chance:
            knot_t.append(knot_t[-1] + rng.uniform(0.2, 0.8))
            knot_v.append(knot_v[-1])
        target = rng.uniform(0.55, 1.0) if going_up else rng.uniform(0.0, 0.45)
        knot_t.append(knot_t[-1] + duration())
        knot_v.append(target)
        going_up = not going_up
    kt, kv = np.array(knot_t), np.array(knot_v)
    idx = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2)
    frac = (t - kt[idx]) / (kt[idx + 1] - kt[idx])
    ease = 0.5 - 0.5 * np.cos(np.pi * frac)
    return kv[idx] * (1 - ease) + kv[idx + 1] * ease


def stroke_track(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Regular strokes at one tempo, pausing now and then at the top or bottom."""
    half = rng.uniform(0.25, 0.8)
    return _strokes(rng, seconds, lambda: half * rng.uniform(0.9, 1.1), pause_chance=0.2)


def irregular_track(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Strokes whose every half-stroke has its own duration: an uneven rhythm."""
    return _strokes(rng, seconds, lambda: rng.uniform(0.2, 1.0), pause_chance=0.1)


def random_walk_track(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A bounded, smoothed random walk (mean-reverting), no rhythm at all."""
    t = _grid(seconds)
    value, velocity = rng.uniform(0.3, 0.7), 0.0
    out = np.empty_like(t)
    for i in range(len(t)):
        velocity += (rng.normal(0.0, 6.0) - 1.5 * velocity - 4.0 * (value - 0.5)) * SAMPLE_STEP_S
        value += velocity * SAMPLE_STEP_S
        if not 0.02 <= value <= 0.98:
            value, velocity = float(np.clip(value, 0.02, 0.98)), -0.5 * velocity
        out[i] = value
    return out


def mixed_track(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Segments of the other kinds, a few seconds each, blended at the joins."""
    t = _grid(seconds)
    out = np.empty_like(t)
    start = 0
    kinds = [k for k in _PURE_KINDS]
    while start < len(t):
        length = int(rng.uniform(2.0, 5.0) / SAMPLE_STEP_S)
        piece = _PURE_KINDS[kinds[rng.integers(0, len(kinds))]](rng, length * SAMPLE_STEP_S + 1)
        end = min(start + length, len(t))
        piece = piece[: end - start]
        if start > 0:  # shift the new piece so it starts where the last one ended
            blend = np.exp(-np.arange(end - start) * SAMPLE_STEP_S / 0.3)
            piece = piece + (out[start - 1] - piece[0]) * blend
        out[start:end] = piece
        start = end
    return out


_PURE_KINDS: dict[str, Callable[[np.random.Generator, float], np.ndarray]] = {
    "sine": sine_track,
    "strokes": stroke_track,
    "irregular": irregular_track,
    "random_walk": random_walk_track,
}

TRACK_KINDS: dict[str, Callable[[np.random.Generator, float], np.ndarray]] = {
    **_PURE_KINDS,
    "mixed": mixed_track,
}


def make_track(kind: str, seconds: float, rng: np.random.Generator) -> Track:
    """A track of a named kind (see TRACK_KINDS), clipped to 0..1."""
    if kind not in TRACK_KINDS:
        raise ValueError(f"unknown track kind {kind!r}; valid: {', '.join(TRACK_KINDS)}")
    if seconds <= 0:
        raise ValueError("a track needs a positive duration")
    positions = np.clip(TRACK_KINDS[kind](rng, seconds), 0.0, 1.0)
    times = _grid(seconds)
    return Track(kind=kind, times_s=times, positions=positions[: len(times)])
