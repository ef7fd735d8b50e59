"""The synthetic families `fsrun synth --family` chooses from: one renderer each.

Both draw a scene from the clip's seed and render frames along the same kind of track, so a
family is a set of functions with the same signatures; `target_place` says where the target
is drawn, which training can use as a second, auxiliary answer beside the position. The classic family is the original
renderer and keeps every existing seed's clip as it was.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from fsrun.groundtruth.synth import randomized, render
from fsrun.groundtruth.synth.tracks import Track


@dataclass(frozen=True)
class Family:
    make_scene: Callable[[np.random.Generator, int, int, float, str], Any]  # rng, W, H, s, layout
    render_frames: Callable[[Any, Track, np.ndarray, np.random.Generator], Iterator[np.ndarray]]
    target_place: Callable[[Any, float, float], tuple[float, float, float]]  # scene, t, pos
    summary: str  # one line for --help
    add_roll: Callable[[Any, Track, np.random.Generator], None]  # scene, roll track, rng
    side_tracks: Callable[[Any], dict[str, Track]]  # scene -> {"sway": ..., "surge": ...}


FAMILIES: dict[str, Family] = {
    "classic": Family(render.make_scene, render.render_frames, render.target_place,
                      "an outlined saturated disc over a drifting grating, small squares",
                      render.add_roll, render.side_tracks),
    "randomized": Family(randomized.make_scene, randomized.render_frames,
                         randomized.target_place,
                         "a new target, background, distractors, camera and light per clip",
                         randomized.add_roll, randomized.side_tracks),
}
