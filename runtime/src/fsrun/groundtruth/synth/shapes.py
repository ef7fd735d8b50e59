"""Anti-aliased shapes for the randomized synthetic family: signed distances and coverage.

A shape is a union of primitives (ellipses, rounded boxes, wobbly blobs), each with an offset,
radii and an angle in units of the shape's size, so one Shape draws a disc, an ellipse, a
rectangle, an irregular blob or an object of several parts. Painting evaluates signed distances
(pixels, negative inside) only on the shape's bounding patch; coverage is the distance clipped
to one pixel of ramp, which anti-aliases the edge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PRIMITIVES = ("ellipse", "box", "blob")


@dataclass
class Primitive:
    kind: str  # one of PRIMITIVES
    offset: tuple[float, float]  # centre relative to the shape's centre, in units of its size
    radii: tuple[float, float]  # half width and half height, in units of the shape's size
    angle: float = 0.0  # rotation in radians
    rounding: float = 0.0  # box: corner radius as a fraction of the smaller half side
    harmonics: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # blob: (k, amp, phase)


@dataclass
class Shape:
    parts: list[Primitive]  # the union of these is the shape
    fill: np.ndarray  # float32 [3]: main colour
    fill2: np.ndarray  # float32 [3]: second colour (gradient or texture)
    style: str = "solid"  # "solid", "gradient" (along the shape's own vertical) or "texture"
    outline: np.ndarray | None = None  # float32 [3] rim colour, or None for no outline
    outline_px: float = 1.5  # rim width in pixels
    texture: np.ndarray | None = None  # float32 [K, K] in 0..1, for style "texture"

    def extent(self) -> float:
        """Largest reach from the centre, in units of the size."""
        return max(np.hypot(*p.offset) + max(p.radii) * (1.0 + np.abs(p.harmonics[:, 1]).sum()
                                                          if len(p.harmonics) else 1.0)
                   for p in self.parts)


def _signed_distance(p: Primitive, dx: np.ndarray, dy: np.ndarray, size: float) -> np.ndarray:
    ox, oy = p.offset[0] * size, p.offset[1] * size
    c, s = np.cos(p.angle), np.sin(p.angle)
    x, y = dx - ox, dy - oy
    u, v = c * x + s * y, -s * x + c * y
    rx, ry = max(p.radii[0] * size, 0.5), max(p.radii[1] * size, 0.5)
    if p.kind == "ellipse":
        return (np.sqrt((u / rx) ** 2 + (v / ry) ** 2) - 1.0) * min(rx, ry)
    if p.kind == "box":
        r = p.rounding * min(rx, ry)
        qx, qy = np.abs(u) - (rx - r), np.abs(v) - (ry - r)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0) - r
    if p.kind == "blob":
        theta = np.arctan2(v / ry, u / rx)
        wobble = 1.0 + sum(a * np.cos(k * theta + ph) for k, a, ph in p.harmonics)
        return (np.sqrt((u / rx) ** 2 + (v / ry) ** 2) - wobble) * min(rx, ry)
    raise ValueError(f"unknown primitive {p.kind!r}")


def paint(img: np.ndarray, shape: Shape, cx: float, cy: float, size: float,
          angle: float = 0.0) -> None:
    """Draw shape into img (float32 [H, W, 3]) centred at (cx, cy), size in pixels, rotated."""
    h, w = img.shape[:2]
    reach = shape.extent() * size + shape.outline_px + 2
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, w)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    dist = np.min([_signed_distance(p, dx, dy, size) for p in shape.parts], axis=0)
    cover = np.clip(0.5 - dist, 0.0, 1.0)[..., None]
    if shape.style == "gradient":
        g = np.clip(0.5 + dy / (2 * size), 0.0, 1.0)[..., None]
        color = shape.fill * (1 - g) + shape.fill2 * g
    elif shape.style == "texture" and shape.texture is not None:
        k = shape.texture.shape[0]
        tu = ((dx / size + 2.0) * k / 4).astype(int) % k
        tv = ((dy / size + 2.0) * k / 4).astype(int) % k
        g = shape.texture[tv, tu][..., None]
        color = shape.fill * (1 - g) + shape.fill2 * g
    else:
        color = shape.fill
    if shape.outline is not None:
        inner = np.clip(0.5 - (dist + shape.outline_px), 0.0, 1.0)[..., None]
        color = color * inner + shape.outline * (1 - inner)
    patch = img[y0:y1, x0:x1]
    patch *= 1 - cover
    patch += cover * color
