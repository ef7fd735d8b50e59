"""Stride and postprocessing against ground truth: how fsrun's defaults were chosen.

`python -m benchmarks.experiments stride` renders held-out synthetic clips with known motion, runs fsrun on
each at several strides (encoder on every run, no cache, so the wall is the whole run) and then
with several postprocessing settings at the default stride, and grades every output against the
truth: Pearson r and mean absolute error of the per-frame positions and of the written actions.
Writes stride_accuracy.json and stride_accuracy.md into the results folder.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.files import write_json_and_markdown
from fsrun.config import demo_model_dir
from fsrun.groundtruth.grade import Graded, TruthClip, grade
from benchmarks.seeds import seed_range
from fsrun.groundtruth.synth.cli import _quiet_svt
from fsrun.groundtruth.synth.clips import ClipSpec, write_clip
from fsrun.run.postprocess import PostprocessOptions
from fsrun.defaults import DEFAULT_STRIDE

CLIPS = [  # (fps, codec, track): every track kind, a spread of rates and codecs
    ("30", "h264", "sine"), ("60", "vp9", "strokes"), ("25", "hevc", "irregular"),
    ("29.97", "av1", "random_walk"), ("24", "h264", "strokes"), ("vfr", "hevc", "sine"),
]
STRIDES = (60, 30, 20, 15, 10, 5, 1)
POSTPROCESS = {  # label -> options compared at the default stride
    "raw (every frame)": PostprocessOptions(raw=True),
    "min-amplitude 0": PostprocessOptions(min_amplitude=0.0, rdp_epsilon=0.0),
    "min-amplitude 5": PostprocessOptions(min_amplitude=5.0, rdp_epsilon=0.0),
    "min-amplitude 10": PostprocessOptions(rdp_epsilon=0.0),
    "min-amplitude 20": PostprocessOptions(min_amplitude=20.0, rdp_epsilon=0.0),
    "min-amplitude 10 + rdp 1": PostprocessOptions(rdp_epsilon=1.0),
    "min-amplitude 10 + rdp 2": PostprocessOptions(rdp_epsilon=2.0),
    "min-amplitude 10 + rdp 4": PostprocessOptions(rdp_epsilon=4.0),
}


@dataclass
class StrideConfig:
    package: Path  # model package graded
    seconds: float = 20.0  # length of each held-out clip
    size: tuple[int, int] = (96, 72)  # clip WxH
    seed: int = seed_range("stride-accuracy").first  # clip seeds start here (held out)


def _row(graded: Graded) -> dict[str, float]:
    frames, written, result = graded.raw, graded.written, graded.result
    return {"r_frames": frames.pearson_r, "mae_frames": frames.mean_abs_error,
            "lag_ms": frames.lag_ms, "r_written": written.pearson_r,
            "mae_written": written.mean_abs_error, "actions": result.actions,
            "frames": result.report["frames"], "wall": result.report["wall"],
            "head": result.report.get("head", 0.0)}


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float))]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out["r_frames_min"] = float(min(r["r_frames"] for r in rows))
    out["r_written_min"] = float(min(r["r_written"] for r in rows))
    out["abs_lag_ms_max"] = float(max(abs(r["lag_ms"]) for r in rows))
    return out


def measure(cfg: StrideConfig, log: Any = print) -> dict[str, Any]:
    """Strides and postprocessing settings, each graded on every held-out clip."""
    by_stride: dict[int, list[dict]] = {s: [] for s in STRIDES}
    by_post: dict[str, list[dict]] = {k: [] for k in POSTPROCESS}
    _quiet_svt()
    variants = {**{f"stride {s}": {"stride": s} for s in STRIDES},
                **{label: {"postprocess": options} for label, options in POSTPROCESS.items()}}
    with tempfile.TemporaryDirectory(prefix="fsrun-stride-") as scratch:
        folder = Path(scratch)
        clips = []
        for i, (fps, codec, track) in enumerate(CLIPS):
            clip = write_clip(ClipSpec(seconds=cfg.seconds, fps=fps, codec=codec,
                                       width=cfg.size[0], height=cfg.size[1], track=track,
                                       seed=cfg.seed + i), folder)
            clips.append(TruthClip(clip.video, clip.truth))
        for graded in grade(cfg.package, clips, variants=variants, written=True, log=log):
            name = graded.variant
            if name.startswith("stride "):
                by_stride[int(name.split()[1])].append(_row(graded))
            else:
                by_post[name].append(_row(graded))
    return {"package": str(cfg.package), "clips": [list(c) for c in CLIPS],
            "seconds": cfg.seconds, "size": list(cfg.size), "default_stride": DEFAULT_STRIDE,
            "default_postprocess": next((k for k, v in POSTPROCESS.items()
                                         if v == PostprocessOptions()), None),
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "strides": {str(s): _mean_rows(rows) for s, rows in by_stride.items()},
            "postprocess": {k: _mean_rows(rows) for k, rows in by_post.items()},
            "per_clip": {"strides": {str(s): rows for s, rows in by_stride.items()},
                         "postprocess": by_post}}


def to_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Stride and postprocessing against ground truth",
        "",
        f"Model `{Path(results['package']).name}`, {len(results['clips'])} held-out synthetic "
        f"clips of {results['seconds']:g} s at {results['size'][0]}x{results['size'][1]} "
        f"({', '.join(f'{f} fps {c} {t}' for f, c, t in results['clips'])}), measured "
        f"{results['measured_at']}. Means over the clips; r and error against the true positions. "
        "Per-frame: the network's positions at every sampled frame; written: the funscript's "
        "actions after postprocessing. Wall: whole run, encoder included (no cache).",
        "",
        "| stride | per-frame r (mean / min) | per-frame error | max abs lag ms | written r (mean / min) | head s | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stride, row in results["strides"].items():
        mark = " (default)" if int(stride) == results["default_stride"] else ""
        lines.append(f"| {stride}{mark} | {row['r_frames']:.4f} / {row['r_frames_min']:.4f} | "
                     f"{row['mae_frames']:.2f} | {row['abs_lag_ms_max']:.0f} | "
                     f"{row['r_written']:.4f} / {row['r_written_min']:.4f} | "
                     f"{row['head']:.3f} | {row['wall']:.2f} |")
    lines += ["", f"Postprocessing at stride {results['default_stride']}:", "",
              "| setting | written r (mean / min) | written error | actions per clip |",
              "| --- | --- | --- | --- |"]
    default = results.get("default_postprocess")
    for label, row in results["postprocess"].items():
        mark = " (default)" if label == default else ""
        lines.append(f"| {label}{mark} | {row['r_written']:.4f} / {row['r_written_min']:.4f} | "
                     f"{row['mae_written']:.2f} | {row['actions']:.0f} |")
    return "\n".join(lines) + "\n"


def write(out: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    return write_json_and_markdown(out, "stride_accuracy", results, to_markdown(results))


def default_package() -> Path:
    return demo_model_dir()
