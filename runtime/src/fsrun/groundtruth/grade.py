"""The one grading loop: clips with known motion through one model session, agreement per clip,
and the tables and shares every report draws from them.

    clips = [TruthClip(video, truth, {"fps": "30", "codec": "h264"}), ...]
    graded = grade(package, clips)                  # one ModelSession for all of them
    rows = [g.row() for g in graded]                # {"fps", "codec", "r", "lag_ms", "mae", ...}
    rows = [r for g in graded for r in g.rows()]    # and a row per other axis ({"axis": "roll"})
    print(r_table(rows)); share([g.r for g in graded], 0.95)

A clip's raw per-frame positions are compared with its truth (metrics.compare); with
`written=True` the funscript as written is compared too. Variants (other strides, other
post-processing) run on the same session: only per-video options may differ.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from fsrun.files.funscript import read_actions
from fsrun.groundtruth.metrics import Agreement, compare
from fsrun.run.request import RunHooks, RunResult, SessionSpec, VideoRequest

GOOD_R = 0.95  # a clip "passes" the training renderer's target at this r
FAIR_R = 0.9  # the independent renderer's target


@dataclass(frozen=True)
class TruthClip:
    video: Path  # the clip
    truth: Path  # its true funscript (VIDEO.truth.funscript)
    labels: Mapping[str, Any] = field(default_factory=dict)  # what it is: rate, codec, scene...
    axis_truths: Mapping[str, Path] = field(default_factory=dict)  # other axes' truth files
    # (VIDEO.roll.truth.funscript): graded where the model gives the axis


@dataclass
class Graded:
    clip: TruthClip  # what was graded
    variant: str  # which options (a key of grade's variants; "" without variants)
    raw: Agreement  # the raw per-frame positions against the truth
    written: Agreement | None  # the written funscript against the truth, when asked for
    result: RunResult  # the run itself (positions, report, the funscript written)
    seconds: float  # wall time of the run and the comparison
    axes: dict[str, Agreement] = field(default_factory=dict)  # every other axis the clip has
    # a truth for and the model gives: its raw positions against that truth

    @property
    def r(self) -> float:
        return self.raw.pearson_r

    def row(self) -> dict[str, Any]:
        """The clip's labels, then r, lag and error (rounded as every results file keeps them)."""
        row = {**self.clip.labels, **({"variant": self.variant} if self.variant else {}),
               "r": round(self.raw.pearson_r, 4), "lag_ms": self.raw.lag_ms,
               "mae": round(self.raw.mean_abs_error, 2)}
        if self.written is not None:
            row.update(r_written=round(self.written.pearson_r, 4),
                       mae_written=round(self.written.mean_abs_error, 2))
        return row

    def rows(self) -> list[dict[str, Any]]:
        """row(), then one row per other axis graded, each with its "axis"."""
        rows = [self.row()]
        for axis, agreement in self.axes.items():
            rows.append({**self.clip.labels, "axis": axis,
                         **({"variant": self.variant} if self.variant else {}),
                         "r": round(agreement.pearson_r, 4), "lag_ms": agreement.lag_ms,
                         "mae": round(agreement.mean_abs_error, 2)})
        return rows


def grade(package: Path, clips: Iterable[TruthClip], spec: SessionSpec | None = None,
          options: Mapping[str, Any] | None = None,
          variants: Mapping[str, Mapping[str, Any]] | None = None, written: bool = False,
          scripts_dir: Path | None = None, log: Callable[[str], None] | None = None,
          hooks: RunHooks | None = None) -> list[Graded]:
    """Run every clip (under every variant of per-video options) through one model session on
    `package`, by the one runner, and compare with the truth. spec: how the session runs
    (default: no cache); options: VideoRequest fields every clip gets (default: force);
    hooks: default quiet. Each clip's funscript is written beside it, or into scripts_dir."""
    from fsrun.run.runner import OK, run_video  # noqa: PLC0415 - the runner imports the session
    from fsrun.run.session import ModelSession  # noqa: PLC0415 - the session imports the backends

    spec = dataclasses.replace(spec or SessionSpec(use_cache=False), model=Path(package))
    hooks = hooks or RunHooks(quiet=True)
    base = {"force": True, **dict(options or {})}
    graded: list[Graded] = []
    with ModelSession.open(spec, hooks, start=False) as session:
        for clip in clips:
            truth = read_actions(clip.truth)
            for name, changes in dict(variants or {"": {}}).items():
                began = time.perf_counter()
                output = (None if scripts_dir is None
                          else Path(scripts_dir) / f"{Path(clip.video).stem}{name}.funscript")
                request = VideoRequest(video=Path(clip.video), output=output,
                                       **{**base, **changes})
                outcome = run_video(session, request, hooks)
                if outcome.status != OK:
                    raise outcome.error or RuntimeError(f"{clip.video}: {outcome.detail}")
                result = outcome.result
                raw = compare(result.pts_ms, 100.0 * result.positions, *truth)
                as_written = compare(*read_actions(result.output), *truth) if written else None
                axes = {axis: compare(result.pts_ms, 100.0 * result.axis_positions[axis],
                                      *read_actions(path))
                        for axis, path in clip.axis_truths.items()
                        if axis in result.axis_positions}
                graded.append(Graded(clip, name, raw, as_written, result,
                                     time.perf_counter() - began, axes))
            if log is not None:
                log(f"graded {Path(clip.video).name}: r {graded[-1].r:.3f}")
    return graded


def share(values: Iterable[float], bound: float) -> tuple[float, float]:
    """(share of values >= bound, its standard error)."""
    values = np.asarray(list(values), dtype=float)
    p = float(np.mean(values >= bound)) if len(values) else 0.0
    return p, float(np.sqrt(p * (1 - p) / max(len(values), 1)))


def miss_rates(rows: Iterable[Mapping[str, Any]], key: str, bound: float = GOOD_R,
               r_key: str = "r") -> dict[str, tuple[int, float]]:
    """Per value of rows[key]: (clips, share of them under bound)."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(float(row[r_key]))
    return {k: (len(v), float(np.mean(np.asarray(v) < bound))) for k, v in sorted(groups.items())}


CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "vp9": "VP9", "av1": "AV1"}


def r_table(rows: Iterable[Mapping[str, Any]], row_key: str = "fps",
            column_key: str = "codec") -> str:
    """Markdown: r per frame rate (rows) and codec (columns)."""
    rows = list(rows)
    columns = list(dict.fromkeys(row[column_key] for row in rows))
    lines = ["| fps | " + " | ".join(CODEC_NAMES.get(c, c) for c in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for value in dict.fromkeys(row[row_key] for row in rows):
        cells = {row[column_key]: f"{row['r']:.3f}" for row in rows if row[row_key] == value}
        label = "VFR" if value == "vfr" else value
        lines.append(f"| {label} | " + " | ".join(cells.get(c, "-") for c in columns) + " |")
    return "\n".join(lines)
