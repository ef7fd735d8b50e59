"""`fsrun synth OUTDIR`: render clips with known motion, each beside its true funscript
(VIDEO.truth.funscript, so that fsrun's own VIDEO.funscript never collides with it)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import numpy as np

from fsrun.errors import UsageError
from fsrun.axes import parse_axes
from fsrun.groundtruth.synth.axes import ROLL_DEGREES, SYNTH_AXES
from fsrun.groundtruth.synth.clips import (CODECS, Clip, ClipSpec, axis_truth_paths, check_axes,
                                           clip_paths, parse_fps, refuse_existing, write_clip)
from fsrun.groundtruth.synth.families import FAMILIES
from fsrun.groundtruth.synth.tracks import TRACK_KINDS

ALL_FPS = ("24", "25", "29.97", "30", "60")  # the rates the ground truth covers
TRACK_CYCLE = ("mixed", "sine", "strokes", "irregular", "random_walk")  # --track any cycles these


def _quiet_svt() -> None:
    """SVT-AV1 prints its whole configuration for every clip unless told to log errors only."""
    os.environ.setdefault("SVT_LOG", "1")


def write_clips(out_dir: Path, count: int, seconds: float, fps: list[str], codecs: list[str],
                seed: int, size: tuple[int, int], layout: str = "flat", track: str = "any",
                progress: bool = False, force: bool = False,
                family: str = "classic", axes: tuple[str, ...] = ("stroke",)) -> list[Clip]:
    """count clips, cycling through the given rates, codecs and track kinds; seeds seed, seed+1...

    Without force, every name is checked before the first clip is rendered: an existing video or
    truth file stops the run with nothing written."""
    _quiet_svt()
    for value in fps:
        parse_fps(value)
    tracks = TRACK_CYCLE if track == "any" else (track,)
    rng = np.random.default_rng(seed)  # codec and track drawn independently of the rate cycle
    specs = [ClipSpec(seconds=seconds, fps=fps[i % len(fps)],
                      codec=codecs[int(rng.integers(0, len(codecs)))] if i >= len(codecs)
                      else codecs[i],
                      width=size[0], height=size[1], layout=layout,
                      track=tracks[int(rng.integers(0, len(tracks)))], seed=seed + i,
                      family=family, axes=tuple(axes))
             for i in range(count)]
    if not force:
        refuse_existing([path for spec in specs
                         for path in [*clip_paths(spec, out_dir), *axis_truth_paths(spec, out_dir)]])
    clips = []
    with click.progressbar(specs, label="rendering", hidden=not progress,
                           file=sys.stderr) as bar:
        for spec in bar:
            clips.append(write_clip(spec, out_dir, force=force))
    return clips


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 160x120, got {text!r}") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise UsageError("--size needs even width and height of at least 16")
    return width, height


def _split(values: tuple[str, ...], everything: tuple[str, ...]) -> list[str]:
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return list(everything) if not items or items == ["all"] else items


@click.command("synth")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 10000), default=5, show_default=True,
              help="Number of clips.")
@click.option("--seconds", type=click.FloatRange(1, 3600), default=10.0, show_default=True,
              help="Length of each clip.")
@click.option("--fps", "fps", multiple=True,
              help="Frame rate(s), comma separated: 24, 25, 29.97, 30, 60, vfr or all "
                   "[default: 30].")
@click.option("--codec", "codecs", multiple=True,
              help=f"Codec(s), comma separated: {', '.join(CODECS)} or all [default: h264].")
@click.option("--track", type=click.Choice(["any", *TRACK_KINDS]), default="any",
              show_default=True, help="Kind of motion; 'any' cycles through all kinds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first clip.")
@click.option("--size", default="160x120", show_default=True, help="WxH of one view.")
@click.option("--layout", type=click.Choice(["flat", "sbs"]), default="flat", show_default=True,
              help="sbs: side-by-side VR, two views (use fsrun --crop sbs-left).")
@click.option("--family", type=click.Choice(list(FAMILIES)), default="classic", show_default=True,
              help="Renderer: " + "; ".join(f"{k}: {v.summary}" for k, v in FAMILIES.items())
              + ".")
@click.option("--axes", "axes_text", default="stroke", show_default=True,
              help=f"Truth files to write, comma separated, the stroke first: "
              f"{', '.join(SYNTH_AXES)}. With roll the target is drawn elongated and tilts "
              f"(pos 50 upright, 100 = its top {ROLL_DEGREES:g} degrees to the viewer's right, "
              f"0 = to the left): VIDEO.roll.truth.funscript; sway (sideways place) and surge "
              f"(size) are the scene's own motion.")
@click.option("--force", "-f", is_flag=True,
              help="Replace clips and truth files that exist (refused otherwise).")
def synth_command(outdir: Path, count: int, seconds: float, fps: tuple[str, ...],
                  codecs: tuple[str, ...], track: str, seed: int, size: str, layout: str,
                  family: str, axes_text: str, force: bool) -> None:
    """Render clips whose target moves along a known track, each with its true funscript
    VIDEO.truth.funscript (pos 100 is the target at the top of its travel, 0 at the bottom).
    """
    rates = _split(fps, ALL_FPS) if fps else ["30"]
    names = _split(codecs, tuple(CODECS)) if codecs else ["h264"]
    unknown = [c for c in names if c not in CODECS]
    if unknown:
        raise UsageError(f"unknown codec {unknown[0]!r}; valid: {', '.join(CODECS)}")
    axes = parse_axes(axes_text)
    try:
        check_axes(axes)
        clips = write_clips(outdir, count, seconds, rates, names, seed, _parse_size(size),
                            layout, track, progress=True, force=force, family=family, axes=axes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for clip in clips:
        names = ", ".join(path.name for path in clip.truths.values())
        click.echo(f"{clip.video}  ({len(clip.times_s)} frames, truth {names})")
