"""Training augmentation with torchvision transforms v2: one random draw per call.

A call takes a stack of frames (a window, a segment of a video, or a group of single frames)
and changes every frame of it the same way: colour, brightness, contrast, saturation and hue
jitter, sometimes grey or with its channels swapped; a crop that zooms in or out and moves
(edges replicated, so no black border appears); a left-right mirror; blur, sensor noise and
JPEG re-compression. v2 transforms draw their parameters once per call for the whole batch,
which is what keeps a window's frames consistent: motion stays motion, and only the look of
the clip changes. Draws come from a seeded generator, so a run repeats exactly.

`colour` says which frames the colour changes reach: all, none, or stroke-only (frames labelled
on another axis, such as a tilting target's roll, keep their colours, while the stroke-only
frames change as ever). A stroke encoder learns a tilt far faster without colour changes; with
them on the stroke-only half of its batches it learnt none (README's multi-axis notes).

Every transform keeps the labels valid as long as the position does not depend on left and
right: the mirror is for vertical motion (turn it off with `--no-flip` when the motion runs
across the picture). The crop moves the target by at most a few percent of the frame.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass
class AugmentConfig:
    brightness: float = 0.4  # brightness factor drawn from 1 +- this
    contrast: float = 0.4  # contrast factor drawn from 1 +- this
    saturation: float = 0.5  # saturation factor drawn from 1 +- this
    hue: float = 0.1  # hue shift, fraction of the colour circle (at most 0.5)
    color_chance: float = 0.8  # chance that the colour jitter applies at all
    gray_chance: float = 0.1  # chance of a grey picture
    swap_chance: float = 0.2  # chance of permuting the colour channels
    pad: float = 0.1  # edge-replicated border (fraction of the side) the crop may reach into
    crop_area: tuple[float, float] = (0.7, 1.0)  # crop area as a fraction of the padded frame
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # crop aspect ratio range
    flip: bool = True  # mirror left-right half the time (keeps labels of vertical motion)
    blur_chance: float = 0.3  # chance of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # its sigma in pixels
    noise_chance: float = 0.3  # chance of Gaussian sensor noise
    noise_sigmas: tuple[float, ...] = (0.01, 0.02, 0.04)  # one is picked (fraction of 255)
    jpeg_chance: float = 0.3  # chance of JPEG re-compression
    jpeg_quality: tuple[int, int] = (25, 90)  # its quality range
    colour: str = "all"  # frames the colour changes reach: one of COLOUR_FRAMES

    def __post_init__(self) -> None:
        if self.colour not in COLOUR_FRAMES:
            raise ValueError(f"colour must be one of {', '.join(COLOUR_FRAMES)}, "
                             f"not {self.colour!r}")

    def without_colour(self) -> AugmentConfig:
        """The same changes less the colour ones (jitter, grey, swapped channels): a target's
        tilt is learnt several times faster from a stroke encoder without them (measured in the
        multi-axis notes of README)."""
        return dataclasses.replace(self, color_chance=0.0, gray_chance=0.0, swap_chance=0.0,
                                   colour="all")


# which frames colour changes reach: every frame, none, or frames labelled on the stroke alone
COLOUR_FRAMES = ("all", "none", "stroke-only")


def other_axis_known(labels: np.ndarray) -> np.ndarray:
    """Per frame of labels [N] or [N, C]: whether a label beyond the stroke (column 0) is known."""
    if labels.ndim < 2 or labels.shape[1] < 2:
        return np.zeros(len(labels), bool)
    return np.isfinite(labels[:, 1:]).any(1)


class Augmenter:
    """augment(frames uint8 [N, H, W, 3]) -> uint8 frames of the same shape, one draw per call."""

    def __init__(self, config: AugmentConfig | None = None, seed: int | list[int] = 0):
        import torch  # noqa: PLC0415  (export side only; the option tables stay light)
        from torchvision.transforms import v2  # noqa: PLC0415

        self._torch = torch
        config = config or AugmentConfig()
        self.config = config.without_colour() if config.colour == "none" else config
        seeds = np.atleast_1d(seed).tolist()
        self._rng = np.random.default_rng([*seeds, 0xA0])
        # stroke-only: frames labelled on another axis go through a colourless twin
        self._plain = (Augmenter(config.without_colour(), [*seeds, 0xC0])
                       if config.colour == "stroke-only" else None)
        self._v2 = v2
        self._size: int | None = None
        self._pipeline = None
        self.calls = 0  # draws made so far

    def _build(self, size: int):
        v2, c, torch = self._v2, self.config, self._torch
        steps = [
            v2.RandomApply([v2.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue)],
                           p=c.color_chance),
            v2.RandomGrayscale(c.gray_chance),
            v2.RandomApply([v2.RandomChannelPermutation()], p=c.swap_chance),
            v2.Pad(max(int(round(c.pad * size)), 0), padding_mode="edge"),
            v2.RandomResizedCrop(size, scale=c.crop_area, ratio=c.crop_ratio, antialias=True),
        ]
        if c.flip:
            steps.append(v2.RandomHorizontalFlip())
        kernel = 2 * max(int(round(2 * c.blur_sigma[1])), 1) + 1
        steps += [
            v2.RandomApply([v2.GaussianBlur(kernel, c.blur_sigma)], p=c.blur_chance),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomApply([v2.RandomChoice([v2.GaussianNoise(sigma=s) for s in c.noise_sigmas])],
                           p=c.noise_chance),
            v2.ToDtype(torch.uint8, scale=True),
            v2.RandomApply([v2.JPEG(c.jpeg_quality)], p=c.jpeg_chance),
        ]
        return v2.Compose(steps)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.with_places(frames, None)[0]

    def for_labels(self, labels: np.ndarray) -> Augmenter:
        """The augmenter for one stretch of a video with these labels: the colourless twin where
        colour changes reach the stroke-only frames and the stretch is labelled on another
        axis."""
        return self._plain if self._plain is not None and other_axis_known(labels).any() else self

    def with_places(self, frames: np.ndarray,
                    places: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment frames and move the target places [N, 3] (centre x, y, size as fractions of
        the picture) with the crop and the mirror. The frames come out as without places."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [N, H, W, 3], got {frames.dtype} "
                             f"{frames.shape}")
        if frames.shape[1] != frames.shape[2]:
            raise ValueError("augmentation expects square frames (already at the input size)")
        if self._pipeline is None or self._size != frames.shape[1]:
            self._size, self._pipeline = frames.shape[1], self._build(frames.shape[1])
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        seed = int(self._rng.integers(0, 2 ** 62))
        with torch.random.fork_rng(devices=[]):  # v2 draws from torch's global generator
            torch.manual_seed(seed)
            if places is None:
                y = self._pipeline(x)
            else:
                y, places = self._run_with_places(x, places)
        self.calls += 1
        return y.permute(0, 2, 3, 1).contiguous().numpy(), places

    def _run_with_places(self, x: torch.Tensor, places: np.ndarray) -> tuple[torch.Tensor,
                                                                             np.ndarray]:
        """The pipeline's steps one by one (the same draws as the whole pipeline), the places as
        key points: each target's centre and a point one size unit below it. v2 cannot pad key
        points with replicated edges, so that step shifts them here."""
        tv_tensors, torch = self._tv_tensors(), self._torch
        side = float(x.shape[-1])
        # v2 counts key points in pixel indices (pixel i's centre is i; a mirror maps i to W-1-i)
        centre = torch.from_numpy(np.asarray(places[:, :2], np.float32)) * side - 0.5
        below = centre + torch.stack([torch.zeros(len(places)),
                                      torch.from_numpy(np.asarray(places[:, 2], np.float32))],
                                     1) * side
        points = torch.cat([centre, below])
        for step in self._pipeline.transforms:
            if isinstance(step, self._v2.Pad):
                x = step(x)
                points = points + float(np.ravel(step.padding)[0])  # the same on every side
                continue
            x, points = step(x, tv_tensors.KeyPoints(points, canvas_size=tuple(x.shape[-2:])))
            points = points.as_subclass(torch.Tensor)
        side = float(x.shape[-1])
        n = len(places)
        moved = np.empty((n, 3), np.float32)
        moved[:, :2] = ((points[:n] + 0.5) / side).numpy()
        moved[:, 2] = (torch.linalg.vector_norm(points[n:] - points[:n], dim=1) / side).numpy()
        return x, moved

    def _tv_tensors(self):
        from torchvision import tv_tensors  # noqa: PLC0415  (export side only)

        return tv_tensors

    def groups(self, frames: np.ndarray, group: int, places: np.ndarray | None = None,
               labels: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None] | np.ndarray:
        """One draw per `group` consecutive frames (for batches of unrelated single frames);
        with places, (frames, moved places). With labels and a colourless twin, the frames
        labelled on another axis are drawn in groups of their own by the twin and put back in
        their places."""
        if labels is not None and self._plain is not None and other_axis_known(labels).any():
            return self._split_groups(frames, group, places, other_axis_known(labels))
        parts = [self.with_places(frames[i:i + group],
                                  None if places is None else places[i:i + group])
                 for i in range(0, len(frames), group)]
        out = np.concatenate([f for f, _ in parts])
        return out if places is None else (out, np.concatenate([p for _, p in parts]))

    def _split_groups(self, frames: np.ndarray, group: int, places: np.ndarray | None,
                      plain: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | np.ndarray:
        out = np.empty_like(frames)
        moved = None if places is None else np.empty_like(places, dtype=np.float32)
        for augmenter, rows in ((self, np.flatnonzero(~plain)),
                                (self._plain, np.flatnonzero(plain))):
            if not len(rows):
                continue
            done = augmenter.groups(frames[rows], group, None if places is None else places[rows])
            if places is None:
                out[rows] = done
            else:
                out[rows], moved[rows] = done
        return out if places is None else (out, moved)
