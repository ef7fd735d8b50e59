"""Where a video's axes go: one funscript per axis beside the video, or one file in the
funscript 1.1 form.

A package that names several axes (meta.json "axes") gives a position per frame on each; the
request picks which to write (`--axes`, default all of them). Each axis is its own funscript:
VIDEO.funscript for the stroke, VIDEO.roll.funscript for the roll (an --output NAME.funscript
puts the roll in NAME.roll.funscript), each post-processed on its own and naming its axis in its
metadata. `--multi-axis-file` writes one file instead: the stroke as its root actions and every
other axis under "axes" as {"id": T-code, "actions": [...]}, the 1.1 form MultiFunPlayer reads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fsrun.axes import AXES, SINGLE, STROKE, axis_suffix
from fsrun.errors import UsageError
from fsrun.files.funscript import SUFFIX, default_output


def chosen_axes(asked: tuple[str, ...] | None, model_axes: tuple[str, ...],
                single_file: bool = False) -> tuple[str, ...]:
    """The axes to write, in the model's order; UsageError for one the model does not give."""
    if asked is None:
        return model_axes
    missing = [a for a in asked if a not in model_axes]
    if missing:
        raise UsageError(f"the model gives {', '.join(model_axes)}; it has no {missing[0]} axis")
    if single_file and STROKE not in asked:
        raise UsageError("--multi-axis-file carries the stroke at its root: --axes must name it")
    return tuple(a for a in model_axes if a in asked)


def axis_output(stroke_output: Path, axis: str) -> Path:
    """The file of `axis` beside the stroke's: VIDEO.funscript -> VIDEO.roll.funscript; a name
    without .funscript gets .roll before its last suffix."""
    stroke_output = Path(stroke_output)
    if axis == STROKE:
        return stroke_output
    name = stroke_output.name
    if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
        return stroke_output.with_name(name[:-len(SUFFIX)] + axis_suffix(axis) + SUFFIX)
    return stroke_output.with_suffix(axis_suffix(axis) + stroke_output.suffix)


def output_paths(video: Path, output: Path | None, axes: tuple[str, ...],
                 single_file: bool = False) -> dict[str, Path]:
    """axis -> the file it is written to (with single_file: the stroke's file alone)."""
    stroke = Path(output) if output else default_output(video)
    if single_file or axes == SINGLE:
        return {STROKE: stroke}
    return {axis: axis_output(stroke, axis) for axis in axes}


def single_file_axes(actions: dict[str, list[dict[str, int]]]) -> list[dict[str, Any]]:
    """The 1.1 form's "axes": every axis but the stroke, by its T-code."""
    return [{"id": AXES[axis].tcode, "actions": list(points)}
            for axis, points in actions.items() if axis != STROKE]
