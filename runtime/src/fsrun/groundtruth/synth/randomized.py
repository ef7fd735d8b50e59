"""The randomized synthetic family: a different world in every clip, the same known motion.

Where the classic family always draws an outlined saturated disc over a drifting grating, here
each clip draws its own target (a disc, ellipse, rectangle, textured blob or an object of
several parts; any colour, solid, shaded or textured, with or without an outline; any size),
its own background (procedural noise, gratings, gradients, stripes, a cluttered scene or a
mosaic of irregular hard-edged cells),
distractors that move on their own (smaller than the target, without a rim, some passing in front of it), a
camera that pans, shakes and zooms, changing light and tint, blur and sensor noise. Only the
target's height follows the track (pos 1 = high in the frame), so what a model can learn from
these clips is where the object is, not what it looks like.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from fsrun.groundtruth.synth.axes import Tilt, elongated, roll_angle
from fsrun.groundtruth.synth.render import check_view, grating_texture
from fsrun.groundtruth.synth.shapes import Primitive, Shape, paint
from fsrun.groundtruth.synth.tracks import Track, make_track

TARGET_KINDS = ("disc", "ellipse", "rectangle", "blob", "parts")
BACKGROUND_KINDS = ("grating", "noise", "gradient", "stripes", "clutter", "mosaic")
MARGIN = 0.25  # canvas border around the view, as a fraction of each side, for pan and zoom


@dataclass
class Mover:
    """A distractor: a small shape on a path of its own."""

    shape: Shape  # what it looks like
    size: float  # size unit as a fraction of frame height
    x_track: Track  # 0..1 of the width over time
    y_track: Track  # 0..1 of the height over time
    in_front: bool  # drawn over the target


@dataclass
class RandomScene:
    """Everything random about one clip of the randomized family, drawn once from a seed."""

    width: int  # width of one view in pixels
    height: int  # height of one view
    layout: str  # "flat" or "sbs"
    target_kind: str  # one of TARGET_KINDS
    background_kind: str  # one of BACKGROUND_KINDS
    canvas: np.ndarray  # float32 [(1+2m)H, (1+2m)W, 3] background, larger than the view
    target: Shape  # the object whose height is the position
    size: float  # target size unit as a fraction of frame height
    motion: TargetMotion  # how the target moves besides its position
    movers: list[Mover] = field(default_factory=list)  # moving distractors
    camera: Camera = field(default_factory=lambda: Camera())  # zoom, pan, shake
    look: Look = field(default_factory=lambda: Look())  # light, colour, blur, noise
    disparity: float = 0.03  # sbs: the right view shifts the target by this fraction of width
    tilt: Tilt | None = None  # roll (synth/axes.py): the target elongated, tilting instead of
    # spinning


def add_roll(scene: RandomScene, roll: Track, rng: np.random.Generator) -> None:
    """Make the target elongated, in its own colours, and tilt it along roll instead of spin."""
    scene.target = elongated(rng, scene.target)
    scene.tilt = Tilt(roll, scene.target)


def side_tracks(scene: RandomScene) -> dict[str, Track]:
    """Sway (horizontal place, 1 = right) and surge (size, 1 = largest) of the target."""
    return {"sway": scene.motion.sway, "surge": scene.motion.scale}


@dataclass
class TargetMotion:
    """The target's motion besides its height (which is the position)."""

    travel: tuple[float, float]  # target centre height (fraction of H) at pos 1 and pos 0
    sway: Track  # horizontal centre over time (0..1 maps to 0.25..0.75 of the width)
    scale: Track  # size multiplier over time (0..1 maps to 0.85..1.2)
    spin: Track  # rotation over time (0..1 maps to -spin_range..+spin_range)
    spin_range: float  # radians


@dataclass
class Camera:
    """The camera: zoom, pan and shake over time."""

    zoom: Track | None = None  # zoom over time (0..1 maps to zoom_range); None: fixed
    zoom_range: tuple[float, float] = (1.0, 1.0)
    pan: Track | None = None  # pan over time (0..1 maps to -pan_px..+pan_px horizontally)
    pan_px: float = 0.0
    shake: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (Hz, px, phase) per row


@dataclass
class Look:
    """Light and picture quality over the whole frame."""

    light: Track | None = None  # gain over time (0..1 maps to 0.6..1.3)
    tint: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))  # colour cast
    haze: float = 0.0  # added to every pixel (0..255 units)
    blur: bool = False  # a 3x3 box blur on every frame
    noise_sigma: float = 3.0  # per-pixel Gaussian noise, 0..255 units


def _color(rng: np.random.Generator) -> np.ndarray:
    """Any colour; a third of the time a light or dark grey."""
    if rng.random() < 0.33:
        return (np.full(3, rng.choice([rng.uniform(170, 250), rng.uniform(5, 70)]))
                + rng.uniform(-12, 12, 3)).astype(np.float32)
    return rng.uniform(0, 255, 3).astype(np.float32)


def _upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a coarse [gh, gw] grid to [h, w]."""
    gh, gw = grid.shape
    ys, xs = np.linspace(0, gh - 1, h), np.linspace(0, gw - 1, w)
    rows = np.array([np.interp(xs, np.arange(gw), r) for r in grid])
    return np.array([np.interp(ys, np.arange(gh), c) for c in rows.T]).T


def _palette(rng: np.random.Generator, value: np.ndarray, stops: int) -> np.ndarray:
    """Map value (0..1) through `stops` random colours."""
    colors = np.stack([_color(rng) for _ in range(stops)])
    pos = value * (stops - 1)
    i = np.clip(pos.astype(int), 0, stops - 2)
    f = (pos - i)[..., None]
    return (colors[i] * (1 - f) + colors[i + 1] * f).astype(np.float32)


def _angle_coord(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    return (np.cos(a) * xx + np.sin(a) * yy) / max(h, w)


def _background(kind: str, rng: np.random.Generator, h: int, w: int, view_h: int) -> np.ndarray:
    if kind == "grating":
        return grating_texture(rng, h, w)
    if kind == "noise":
        value = sum(rng.uniform(0.3, 1.0) * _upsample(rng.random((n + 1, n + 1)), h, w)
                    for n in rng.choice([2, 4, 8, 16, 32], size=3, replace=False))
        value = (value - value.min()) / (np.ptp(value) + 1e-6)
        return _palette(rng, value, int(rng.integers(2, 4)))
    if kind == "gradient":
        coord = _angle_coord(rng, h, w)
        value = (coord - coord.min()) / (np.ptp(coord) + 1e-6)
        return _palette(rng, value, int(rng.integers(2, 4)))
    if kind == "stripes":
        period = rng.uniform(0.04, 0.3) * view_h / max(h, w)
        wave = np.sin(2 * np.pi * _angle_coord(rng, h, w) / period)
        value = 0.5 + 0.5 * np.tanh(rng.uniform(0.5, 8.0) * wave)
        return _palette(rng, value, 2)
    if kind == "mosaic":  # irregular cells with hard, high-contrast edges (Voronoi, not a grid)
        cell = rng.uniform(0.06, 0.25) * view_h
        n = int(np.clip(h * w / cell ** 2, 4, 400))
        sy, sx = rng.uniform(0, h, n).astype(np.float32), rng.uniform(0, w, n).astype(np.float32)
        step = max(1, h // 160)  # large frames: cells found on a coarser grid, memory bounded
        ys, xs = np.arange(0, h, step, dtype=np.float32), np.arange(0, w, step, dtype=np.float32)
        nearest = np.argmin((ys[:, None, None] - sy) ** 2 + (xs[None, :, None] - sx) ** 2, -1)
        nearest = nearest.repeat(step, 0).repeat(step, 1)[:h, :w]
        return _palette(rng, rng.random(n)[nearest], int(rng.integers(2, 4)))
    if kind == "clutter":  # static things, clearly smaller or larger than any target
        img = _background(str(rng.choice(["gradient", "noise"])), rng, h, w, view_h)
        for _ in range(int(rng.integers(15, 45))):
            big = rng.random() < 0.3
            size = view_h * (rng.uniform(0.3, 0.6) if big else rng.uniform(0.015, 0.05))
            thing = _make_shape(rng, str(rng.choice(["disc", "ellipse", "rectangle", "blob"])))
            faded = img.copy()
            paint(faded, thing, rng.uniform(0, w), rng.uniform(0, h), size, rng.uniform(0, np.pi))
            mix = rng.uniform(0.4, 0.8)
            img = img * (1 - mix) + faded * mix
        return img.astype(np.float32)
    raise ValueError(f"unknown background {kind!r}")


def _make_shape(rng: np.random.Generator, kind: str, outline: bool = True) -> Shape:
    """A shape of one of TARGET_KINDS; outline=False never draws a rim."""
    aspect = float(rng.uniform(0.45, 2.0))
    if kind == "disc":
        parts = [Primitive("ellipse", (0, 0), (1, 1))]
    elif kind == "ellipse":
        parts = [Primitive("ellipse", (0, 0), (aspect, 1), rng.uniform(-0.4, 0.4))]
    elif kind == "rectangle":
        parts = [Primitive("box", (0, 0), (aspect, 1), rng.uniform(-0.3, 0.3),
                           rounding=rng.uniform(0, 0.6))]
    elif kind == "blob":
        k = rng.choice(np.arange(2, 7), size=int(rng.integers(2, 5)), replace=False)
        harmonics = np.stack([k, rng.uniform(0.04, 0.16, len(k)), rng.uniform(0, 6.3, len(k))], 1)
        parts = [Primitive("blob", (0, 0), (rng.uniform(0.8, 1.25), 1), harmonics=harmonics)]
    elif kind == "parts":
        parts = [Primitive(str(rng.choice(["ellipse", "box"])),
                           (rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)),
                           (rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.8)), rng.uniform(-0.5, 0.5),
                           rounding=rng.uniform(0, 0.5))
                 for _ in range(int(rng.integers(2, 5)))]
    else:
        raise ValueError(f"unknown target kind {kind!r}")
    style = "texture" if kind == "blob" and rng.random() < 0.7 else str(
        rng.choice(["solid", "solid", "gradient", "texture"]))
    texture = np.clip(_upsample(rng.random((5, 5)), 16, 16), 0, 1).astype(np.float32)
    rim = _color(rng) if rng.random() < 0.4 else None
    outline = rim if outline else None
    return Shape(parts, _color(rng), _color(rng), style, outline, float(rng.uniform(1.0, 2.5)),
                 texture)


def _stands_out(shape: Shape, canvas: np.ndarray) -> bool:
    """The target's colour as drawn (a gradient or texture shows the mix of its two colours),
    or its rim's, is far from the background's average and rare in it (under a tenth of the
    background lies within 60 of it): it can be told from its surroundings in a single frame."""
    pixels = canvas[::2, ::2].reshape(-1, 3)
    mean = pixels.mean(0)
    body = shape.fill if shape.style == "solid" else (shape.fill + shape.fill2) / 2
    colors = [body] + ([shape.outline] if shape.outline is not None else [])
    return any(float(np.linalg.norm(c - mean)) > 80.0
               and float(np.mean(np.linalg.norm(pixels - c, axis=1) < 60.0)) < 0.1
               for c in colors)


def make_scene(rng: np.random.Generator, width: int, height: int, seconds: float,
               layout: str = "flat") -> RandomScene:
    """Draw a random scene of this family; the same rng state gives the same scene."""
    check_view(width, height, layout)
    span = seconds + 1.0
    ch, cw = int(round(height * (1 + 2 * MARGIN))), int(round(width * (1 + 2 * MARGIN)))
    background_kind = str(rng.choice(BACKGROUND_KINDS))
    canvas = _background(background_kind, rng, ch, cw, height)
    kind = str(rng.choice(TARGET_KINDS))
    for _ in range(30):
        target = _make_shape(rng, kind)
        if _stands_out(target, canvas):
            break
    size = float(rng.uniform(0.08, 0.17))
    movers = [Mover(_make_shape(rng, str(rng.choice(["disc", "ellipse", "rectangle", "blob"])),
                                outline=False),
                    size * float(rng.uniform(0.15, 0.4)), make_track("random_walk", span, rng),
                    make_track("random_walk", span, rng), bool(rng.random() < 0.3))
              for _ in range(int(rng.integers(0, 4)))]
    shake = np.zeros((0, 3))
    if rng.random() < 0.5:
        n = int(rng.integers(1, 4))
        shake = np.stack([rng.uniform(2, 9, n), rng.uniform(0.2, 1.2, n) * height / 100,
                          rng.uniform(0, 6.3, n)], 1)
    zoomed = rng.random() < 0.6
    return RandomScene(
        width=width, height=height, layout=layout, target_kind=kind,
        background_kind=background_kind, canvas=canvas, target=target, size=size,
        # Every value is drawn in the order it always was: the same seed, the same clip.
        motion=TargetMotion(
            travel=(float(rng.uniform(0.17, 0.25)), float(rng.uniform(0.75, 0.83))),
            sway=make_track("random_walk", span, rng), scale=make_track("sine", span, rng),
            spin=make_track("random_walk", span, rng),
            spin_range=0.0 if kind == "disc" else float(rng.uniform(0, 0.35))),
        movers=movers,
        camera=Camera(
            zoom=make_track("random_walk", span, rng) if zoomed else None,
            zoom_range=(float(rng.uniform(0.9, 1.0)), float(rng.uniform(1.0, 1.12))),
            pan=make_track("sine", span, rng) if rng.random() < 0.6 else None,
            pan_px=float(rng.uniform(0, 0.08) * width), shake=shake),
        look=Look(
            light=make_track("random_walk", span, rng),
            tint=rng.uniform(0.8, 1.2, 3).astype(np.float32), haze=float(rng.uniform(-15, 25)),
            blur=bool(rng.random() < 0.3), noise_sigma=float(rng.uniform(0.0, 9.0))))


def _camera(scene: RandomScene, t_s: float) -> tuple[float, float, float]:
    """(zoom, dx, dy): world point p appears at (p - centre - d) * zoom + centre."""
    camera = scene.camera
    lo, hi = camera.zoom_range
    zoom = lo + (hi - lo) * float(camera.zoom.at(t_s)) if camera.zoom is not None else 1.0
    dx = camera.pan_px * (2 * float(camera.pan.at(t_s)) - 1) if camera.pan is not None else 0.0
    dy = 0.0
    for hz, px, phase in camera.shake:
        dx += px * np.sin(2 * np.pi * hz * t_s + phase)
        dy += px * np.sin(2 * np.pi * hz * 1.37 * t_s + phase + 1.0)
    return zoom, float(dx), float(dy)


def _sample(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear lookup of canvas at float coordinates (clamped to its edges)."""
    h, w = canvas.shape[:2]
    xs, ys = np.clip(xs, 0, w - 1.001), np.clip(ys, 0, h - 1.001)
    x0, y0 = xs.astype(int), ys.astype(int)
    fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
    top = canvas[y0, x0] * (1 - fx) + canvas[y0, x0 + 1] * fx
    bottom = canvas[y0 + 1, x0] * (1 - fx) + canvas[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _target_pose(scene: RandomScene, t_s: float, position: float,
                 x_shift: float = 0.0) -> tuple[float, float, float]:
    """(centre x, centre y, size unit) of the target in pixels of one view, camera applied."""
    h, w = scene.height, scene.width
    zoom, dx, dy = _camera(scene, t_s)
    top, bottom = scene.motion.travel
    x = w * (0.25 + 0.5 * float(scene.motion.sway.at(t_s)) + x_shift)
    y = h * (bottom + (top - bottom) * position)
    size = scene.size * h * zoom * (0.85 + 0.35 * float(scene.motion.scale.at(t_s)))
    return (x - w / 2 - dx) * zoom + w / 2, (y - h / 2 - dy) * zoom + h / 2, size


def target_place(scene: RandomScene, t_s: float, position: float) -> tuple[float, float, float]:
    """Where the target is drawn in the (left) view: centre x as a fraction of the width,
    centre y and size unit as fractions of the height."""
    x, y, size = _target_pose(scene, t_s, position)
    return x / scene.width, y / scene.height, size / scene.height


def _view(scene: RandomScene, t_s: float, position: float, x_shift: float,
          rng: np.random.Generator) -> np.ndarray:
    h, w = scene.height, scene.width
    zoom, dx, dy = _camera(scene, t_s)
    cx0, cy0 = w / 2, h / 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    img = _sample(scene.canvas, (xs - cx0) / zoom + cx0 + dx + MARGIN * w - 0.5,
                  (ys - cy0) / zoom + cy0 + dy + MARGIN * h - 0.5).astype(np.float32)

    def place(x: float, y: float) -> tuple[float, float]:
        return (x - cx0 - dx) * zoom + cx0, (y - cy0 - dy) * zoom + cy0

    def draw_movers(in_front: bool) -> None:
        for m in scene.movers:
            if m.in_front == in_front:
                paint(img, m.shape, *place(float(m.x_track.at(t_s)) * w,
                                           float(m.y_track.at(t_s)) * h), m.size * h * zoom)

    draw_movers(False)
    x, y, size = _target_pose(scene, t_s, position, x_shift)
    angle = (scene.motion.spin_range * (2 * float(scene.motion.spin.at(t_s)) - 1)
             if scene.tilt is None else roll_angle(float(scene.tilt.roll.at(t_s))))
    paint(img, scene.target, x, y, size, angle)
    draw_movers(True)
    look = scene.look
    gain = 0.6 + 0.7 * float(look.light.at(t_s)) if look.light is not None else 1.0
    img = img * (gain * look.tint) + look.haze
    if look.blur:
        padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        img = sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    if look.noise_sigma > 0:
        img = img + rng.normal(0.0, look.noise_sigma, img.shape).astype(np.float32)
    return img


def render_frame(scene: RandomScene, t_s: float, position: float,
                 rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 frame [H, W, 3] ([H, 2W, 3] for sbs) at time t_s showing position."""
    img = _view(scene, t_s, position, 0.0, rng)
    if scene.layout == "sbs":
        img = np.concatenate([img, _view(scene, t_s, position, -scene.disparity, rng)], axis=1)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_frames(scene: RandomScene, track: Track, times_s: np.ndarray,
                  rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Frames at the given timestamps, the target following the track."""
    for t_s, position in zip(times_s, track.at(times_s)):
        yield render_frame(scene, float(t_s), float(position), rng)

