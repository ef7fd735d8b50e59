"""The axes a model may write: one funscript per axis, named the way multi-axis players read them.

Multi-axis devices (OSR2, SR6) move along T-code channels; OpenFunscripter writes one file per
axis beside the video and MultiFunPlayer reads them by name: `VIDEO.funscript` is the stroke,
`VIDEO.roll.funscript` the roll, and so on. A package's meta.json lists its head's axes in output
order (`"axes": ["stroke", "roll"]`); a package without the list writes the stroke alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fsrun.errors import UsageError


@dataclass(frozen=True)
class Axis:
    name: str  # the name in file names (VIDEO.NAME.funscript) and in meta.json
    tcode: str  # the T-code channel multi-axis players drive with it
    mirrored: bool  # a left-right mirror of the picture turns pos into 100 - pos
    meaning: str  # what pos 100 means, for people


AXES: dict[str, Axis] = {axis.name: axis for axis in (
    Axis("stroke", "L0", False, "100 = target at the top of its travel, 0 = bottom"),
    Axis("surge", "L1", False, "100 = forward (toward the viewer, larger), 0 = back"),
    Axis("sway", "L2", True, "100 = to the viewer's right, 0 = left"),
    Axis("twist", "R0", True, "100 = turned clockwise seen from above, 0 = anticlockwise"),
    Axis("roll", "R1", True, "100 = the top tilted to the viewer's right (clockwise on screen), "
                             "50 = upright, 0 = tilted left"),
    Axis("pitch", "R2", False, "100 = the top tilted toward the viewer, 0 = away"),
)}
STROKE = "stroke"
SINGLE = (STROKE,)  # the axes of a package that names none


def parse_axes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'stroke,roll' -> ('stroke', 'roll'); UsageError for an unknown or repeated name."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in AXES]
    if unknown or not names:
        raise UsageError(f"unknown axis {unknown[0]!r}; valid: {', '.join(AXES)}" if unknown
                         else "no axis given; valid: " + ", ".join(AXES))
    if len(set(names)) != len(names):
        raise UsageError(f"an axis is named twice in {','.join(names)}")
    return tuple(names)


def axis_suffix(axis: str) -> str:
    """'' for the stroke (VIDEO.funscript), '.roll' for the roll (VIDEO.roll.funscript)."""
    return "" if axis == STROKE else f".{axis}"


def axis_of(path: Path | str) -> str:
    """The axis a funscript's name says (VIDEO.roll.funscript -> 'roll'; else the stroke)."""
    parts = Path(path).name.split(".")
    if len(parts) >= 3 and parts[-2] == "truth":
        parts = parts[:-1]
    return parts[-2] if len(parts) >= 3 and parts[-2] in AXES else STROKE
