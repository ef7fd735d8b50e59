"""Where a demo package's misses come from: the scenes it learned, or the frame rate.

`python -m benchmarks demo-fit` grades a package on the clips it was trained on (the data folder
of `demo_model --work W`, split again exactly as training split it): every validation clip and
every Nth training clip of one family. A scene missed although trained on says the network did
not fit it (capacity, training length); a scene missed only when never seen says it did not
generalize (scenes, regularization).

`python -m benchmarks demo-rates` renders demo-wide's variable-frame-rate clips again at
constant rates. The seed draws the scene and the track before the frame times, so each pair
differs only in when the frames are sampled: a rate effect shows apart from the scenes' draw.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.experiments.demo_wide import (GOOD_R, describe, ensure_clip, miss_rates,
                                              save_miss_bars, wide_spec)
from benchmarks.files import write_json_and_markdown
from fsrun.files.funscript import read_funscript
from fsrun.groundtruth.grade import TruthClip, grade, share
from fsrun.groundtruth.synth.clips import VFR, spec_from_truth

SPLITS = ("trained on", "validation")  # the two sides of the training split, in table order
FIT_BREAKDOWN = {"randomized": "background", "classic": "track"}  # misses grouped by, per family


@dataclass
class FitConfig:
    package: Path  # the model package to grade
    data: Path  # the clips it was trained on (demo_model --work W: W/data), nothing else
    val_fraction: float = 0.15  # as the training had it (DemoRecipe.val_fraction)
    seed: int = 0  # the training seed: it draws the split
    train_every: int = 3  # grade every Nth training clip; every validation clip is graded
    family: str = "randomized"  # the synthetic family graded


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    rs = [row["r"] for row in rows]
    good, good_se = share(rs, GOOD_R)
    return {"clips": len(rs), "share_ge_095": good, "se_095": good_se,
            "mean_r": float(np.mean(rs)), "median_r": float(np.median(rs)),
            "min_r": float(np.min(rs)), "missed_by": miss_rates(rows, rs, key)}


def measure_fit(cfg: FitConfig, log: Any = print) -> dict[str, Any]:
    from fsexport.train.dataset import find_pairs, split_by_video  # noqa: PLC0415

    pairs = find_pairs(cfg.data)
    train, val = split_by_video(pairs, cfg.val_fraction, cfg.seed)
    log(f"{len(train)} training and {len(val)} validation clips in {cfg.data}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fsrun-demo-fit-") as scratch:
        for split, chosen in zip(SPLITS, (train[::cfg.train_every], val)):
            started = time.perf_counter()
            clips = []
            for pair in chosen:
                spec = spec_from_truth(read_funscript(pair.funscript)["metadata"])
                if spec is not None and spec.family == cfg.family:
                    clips.append(TruthClip(pair.video, pair.funscript, {
                        "split": split, "video": pair.video.name, "seed": spec.seed,
                        **describe(spec)}))
            rows += [{**g.clip.labels, "r": round(g.r, 4)}
                     for g in grade(cfg.package, clips, scripts_dir=Path(scratch))]
            log(f"{split}: {len(clips)} clips graded ({time.perf_counter() - started:.0f} s)")
    if not rows:
        raise ValueError(f"{cfg.data}: no {cfg.family} clip of fsrun synth among the clips")
    key = FIT_BREAKDOWN[cfg.family]
    return {"package": str(cfg.package), "data": str(cfg.data), "family": cfg.family,
            "training_clips": len(train), "validation_clips": len(val),
            "train_every": cfg.train_every, "seed": cfg.seed, "val_fraction": cfg.val_fraction,
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "breakdown": key,
            "summary": {split: _summary([r for r in rows if r["split"] == split], key)
                        for split in SPLITS if any(r["split"] == split for r in rows)},
            "rows": rows}


def _one_in(n: int) -> str:
    return "all" if n == 1 else f"one in {n} of the"


def fit_markdown(results: dict[str, Any]) -> str:
    summary, key = results["summary"], results["breakdown"]
    lines = [f"# A demo package on the {results['family']} clips it trained on",
             "",
             f"`{results['package']}` graded on `{results['data']}` "
             f"({results['training_clips']} training and {results['validation_clips']} validation "
             f"clips, split again with seed {results['seed']}; graded: "
             f"{_one_in(results['train_every'])} training clips and every validation clip of "
             f"the family), measured {results['measured_at']}; raw per-frame positions against the "
             "truth, +- one standard error.", "",
             "| clips | graded | r >= 0.95 | mean r | median r | worst r |",
             "| --- | --- | --- | --- | --- | --- |"]
    for split, row in summary.items():
        lines.append(f"| {split} | {row['clips']} | {row['share_ge_095']:.3f} +- "
                     f"{row['se_095']:.3f} | {row['mean_r']:.3f} | {row['median_r']:.3f} | "
                     f"{row['min_r']:.3f} |")
    kinds = sorted({k for row in summary.values() for k in row["missed_by"]})
    lines += ["", f"Share of clips under {GOOD_R}, by {key} (clips in brackets):", "",
              "| clips | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
    for split, row in summary.items():
        cells = [f"{row['missed_by'][k][1]:.2f} ({row['missed_by'][k][0]})"
                 if k in row["missed_by"] else "-" for k in kinds]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class RatesConfig:
    package: Path  # the model package to grade
    clips: int = 240  # demo-wide's clip set; its VFR clips are rendered again
    seconds: float = 8.0  # as demo-wide's clips
    rates: tuple[str, ...] = ("24", "30", "60")  # constant rates each VFR clip is rendered at
    clips_dir: Path | None = None  # demo-wide's clips (reused) and these (kept); None: temp
    family: str = "randomized"  # the synthetic family


def measure_rates(cfg: RatesConfig, log: Any = print) -> dict[str, Any]:
    specs = [s for s in (wide_spec(i, cfg.seconds, cfg.family) for i in range(cfg.clips))
             if s.fps == VFR]
    if not specs:
        raise ValueError(f"demo-wide's first {cfg.clips} clips hold no VFR clip")
    columns = (VFR, *cfg.rates)
    r: dict[str, list[float]] = {rate: [] for rate in columns}
    with tempfile.TemporaryDirectory(prefix="fsrun-demo-rates-") as scratch:
        folder = Path(cfg.clips_dir or scratch)
        clips = [TruthClip(*ensure_clip(replace(spec, fps=rate), folder), {"rate": rate})
                 for spec in specs for rate in columns]
        for graded in grade(cfg.package, clips, scripts_dir=Path(scratch)):
            r[graded.clip.labels["rate"]].append(round(graded.r, 4))
        log(f"{len(specs)} scenes at {len(columns)} rates graded")
    vfr = np.asarray(r[VFR])
    summary = {}
    for rate in columns:
        values = np.asarray(r[rate])
        good, good_se = share(list(values), GOOD_R)
        summary[rate] = {"share_ge_095": good, "se_095": good_se, "mean_r": float(values.mean()),
                         "mean_abs_diff_from_vfr": float(np.abs(values - vfr).mean()),
                         "max_abs_diff_from_vfr": float(np.abs(values - vfr).max()),
                         "verdict_changes": int(np.sum((values >= GOOD_R) != (vfr >= GOOD_R)))}
    return {"package": str(cfg.package), "family": cfg.family, "seconds": cfg.seconds,
            "seeds": [s.seed for s in specs], "codecs": [s.codec for s in specs],
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "summary": summary, "r": r}


def rates_markdown(results: dict[str, Any]) -> str:
    n = len(results["seeds"])
    lines = [f"# The same {results['family']} scenes at a variable and at constant frame rates",
             "",
             f"demo-wide's {n} VFR clips ({results['seconds']:g} s) rendered again at each "
             "constant rate from the same seed (same scene, same track, other frame times), "
             f"`{results['package']}`, measured {results['measured_at']}; raw per-frame "
             "positions against the truth.", "",
             f"| frame rate | r >= {GOOD_R} | mean r | mean abs difference from VFR | largest "
             f"| clips whose verdict at {GOOD_R} changes |",
             "| --- | --- | --- | --- | --- | --- |"]
    for rate, row in results["summary"].items():
        label = "VFR" if rate == VFR else f"{rate} fps"
        lines.append(f"| {label} | {row['share_ge_095']:.3f} +- {row['se_095']:.3f} | "
                     f"{row['mean_r']:.3f} | {row['mean_abs_diff_from_vfr']:.4f} | "
                     f"{row['max_abs_diff_from_vfr']:.4f} | {row['verdict_changes']} of {n} |")
    return "\n".join(lines) + "\n"


def write_fit_plot(results: dict[str, Any], out: Path, stem: str) -> str:
    summary = results["summary"]
    kinds = sorted({k for row in summary.values() for k in row["missed_by"]})
    series = {f"{split} ({row['clips']} clips)":
              [row["missed_by"].get(k, (0, 0.0))[1] for k in kinds]
              for split, row in summary.items()}
    return save_miss_bars(out, stem, kinds, series,
                          f"Demo package on its own {results['family']} clips, by "
                          f"{results['breakdown']}", figsize=(8, 3.8))


def write_fit(out: Path, results: dict[str, Any], stem: str = "demo_fit") -> list[Path]:
    paths = list(write_json_and_markdown(out, stem, results, fit_markdown(results)))
    return paths + [out / write_fit_plot(results, out, stem)]


def write_rates(out: Path, results: dict[str, Any], stem: str = "demo_rates") -> list[Path]:
    return list(write_json_and_markdown(out, stem, results, rates_markdown(results)))
