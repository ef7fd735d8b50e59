"""int8 recipes compared end to end: `python -m benchmarks int8 --package P --recipes all`.

For each package and quantization recipe (fsexport.quantize.RECIPES), in one process:
- quantize the package's fp32 encoder with the recipe (calibration frames decoded once),
- encoder speed: int8 against fp32 on the same decoded frames at the input size, in alternating
  rounds (ratios within the run are what count on a shared machine),
- embedding cosine similarity against fp32 on held-out decoded frames (clips the calibration
  never saw; both resize paths),
- ground truth (trained packages): fsrun's own pipeline on held-out synthetic clips, once with
  the fp32 encoder and once with the candidate int8 encoder (same decode, head, stitching and
  stride), Pearson r of each against the true positions.
Writes int8_configs.json and int8_configs.md (or --name) into the results folder.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.files import write_json_and_markdown
from fsexport.calibration import (CalibrationConfig, SynthClips, calibration_batches,
                                  calibration_videos, decode_videos, render_synth_clips)
from fsexport.quantize import RECIPES, cosine_similarity, embed_frames, get_recipe, quantize_encoder
from fsrun.backends import BackendOptions, create_backend
from fsrun.groundtruth.grade import TruthClip, grade
from benchmarks.seeds import seed
from fsrun.model.package import load_package
from fsrun.run.request import RunHooks, SessionSpec

HELD_OUT_SEED = seed("int8-held-out")  # graded and cosine clips (the one seed table)


@dataclass
class Int8BenchConfig:
    packages: list[Path]  # packages whose fp32 encoder is quantized
    recipes: list[str]  # keys of fsexport.quantize.RECIPES
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)  # as fsexport
    held_out: SynthClips = field(default_factory=lambda: SynthClips(
        count=6, seconds=8.0, size=(96, 72), seed=HELD_OUT_SEED))  # graded / cosine clips
    ground_truth: bool | None = None  # fsrun r against the truth; None = trained packages only
    cosine_frames: int = 96  # held-out frames the cosine is measured on (spread over clips)
    speed_frames: int = 32  # frames per timed round of the encoder speed test
    speed_rounds: int = 3  # alternating fp32/int8 rounds; medians are compared
    batch: int = 4  # frames per encoder call in the speed test
    threads: int = 0  # ONNX Runtime threads; 0 = all cores


def spread_frames(decoded: list[Any], count: int, full: bool) -> np.ndarray:
    """count frames spread over every clip (resized, or full size for the graph path)."""
    each = max(1, -(-count // max(1, len(decoded))))
    frames = []
    for item in decoded:
        source = item.full if full else item.resized
        picks = np.linspace(0, len(source) - 1, min(each, len(source))).round().astype(int)
        frames.append(source[picks])
    return np.concatenate(frames)[:count]


def _speed(fp32: Any, int8: Any, frames: np.ndarray, cfg: Int8BenchConfig) -> dict[str, Any]:
    """ms/frame of each encoder, alternating rounds after one warm-up call each."""
    batches = [frames[i:i + cfg.batch] for i in range(0, min(len(frames), cfg.speed_frames),
                                                       cfg.batch)]
    seconds: dict[str, list[float]] = {"fp32": [], "int8": []}
    for encoder in (fp32, int8):
        encoder.run(batches[0])
    for _ in range(cfg.speed_rounds):
        for name, encoder in (("fp32", fp32), ("int8", int8)):
            began = time.perf_counter()
            for batch in batches:
                encoder.run(batch)
            seconds[name].append((time.perf_counter() - began) / sum(len(b) for b in batches))
    ms = {k: 1000.0 * float(np.median(v)) for k, v in seconds.items()}
    return {"fp32_ms": ms["fp32"], "int8_ms": ms["int8"], "speedup": ms["fp32"] / ms["int8"],
            "rounds_ms": {k: [round(1000 * s, 2) for s in v] for k, v in seconds.items()}}


def _swap_encoder(int8_path: Path) -> Callable[[str, Path, BackendOptions], Any]:
    """fsrun backend factory that runs int8_path wherever the fp32 encoder would run."""
    def factory(name: str, path: Path, options: BackendOptions) -> Any:
        return create_backend(name, int8_path if Path(path).name == "encoder.onnx" else path,
                              options)

    return factory


def _grade(package: Path, clips: list[Any], int8_path: Path | None) -> list[dict[str, Any]]:
    spec = SessionSpec(precision="fp32", use_cache=False, backend="cpu")
    hooks = RunHooks(quiet=True, backend_factory=_swap_encoder(int8_path) if int8_path else None)
    graded = grade(package, [TruthClip(clip.video, clip.truth) for clip in clips], spec,
                   hooks=hooks)
    return [{"clip": g.clip.video.name, "r": g.raw.pearson_r, "mae": g.raw.mean_abs_error,
             "lag_ms": g.raw.lag_ms, "wall": g.result.report["wall"],
             "encode": g.result.report["encode"]} for g in graded]


def measure_package(path: Path, cfg: Int8BenchConfig, work: Path,
                    log: Callable[[str], None]) -> list[dict[str, Any]]:
    package = load_package(path)
    meta = package.meta
    fp32_path = package.graph("encoder", "fp32")
    graded = cfg.ground_truth if cfg.ground_truth is not None else meta.trained
    clips_dir = work / f"held_out_{meta.variant}_{path.name}"
    clips = render_synth_clips(clips_dir, cfg.held_out)
    held = decode_videos([c.video for c in clips], meta.fps, meta.input_size)
    resized = spread_frames(held, cfg.cosine_frames, full=False)
    full = spread_frames(held, max(8, cfg.cosine_frames // 4), full=True)
    options = BackendOptions(threads=cfg.threads)
    with create_backend("cpu", fp32_path, options) as fp32:
        reference = {"source": embed_frames(fp32, resized), "graph": embed_frames(fp32, full)}
    with calibration_videos(cfg.calibration) as (videos, description):
        batches = calibration_batches(decode_videos(videos, meta.fps, meta.input_size),
                                      cfg.calibration)
    base_rows = _grade(path, clips, None) if graded else []
    if graded:
        log(f"int8    {path.name} fp32: r " + ", ".join(f"{r['r']:.4f}" for r in base_rows))
    rows = []
    for name in cfg.recipes:
        try:
            row = _measure_recipe(path, name, batches, description, resized, full, reference,
                                  base_rows, clips, cfg, work)
        except Exception as exc:  # noqa: BLE001 - one failing recipe must not lose the table
            log(f"int8    {path.name} {name}: FAILED {type(exc).__name__}: {exc}")
            rows.append({"package": path.name, "recipe": name, "error": f"{exc}"[:300]})
            continue
        rows.append(row)
        log(f"int8    {path.name} {name}: {row['speedup']:.2f}x ({row['fp32_ms']:.1f} -> "
            f"{row['int8_ms']:.1f} ms/frame), cosine {row['cosine_mean']:.4f} (min "
            f"{row['cosine_min']:.4f})" + (f", r {row['r_fp32']:.4f} -> {row['r_int8']:.4f}"
                                           if "r_fp32" in row else ""))
    return rows


def _measure_recipe(path: Path, name: str, batches: list[np.ndarray], description: str,
                    resized: np.ndarray, full: np.ndarray, reference: dict[str, np.ndarray],
                    base_rows: list[dict[str, Any]], clips: list[Any], cfg: Int8BenchConfig,
                    work: Path) -> dict[str, Any]:
    package = load_package(path)
    meta = package.meta
    fp32_path = package.graph("encoder", "fp32")
    recipe = get_recipe(name)
    target = work / f"{path.name}.{name}.int8.onnx"
    scratch = work / f"prepared_{path.name}"  # shared: pre-processed graph, calibrated ranges
    scratch.mkdir(exist_ok=True)
    options = BackendOptions(threads=cfg.threads)
    try:
        info = quantize_encoder(fp32_path, target, batches, recipe, scratch, cfg.threads)
        with create_backend("cpu", fp32_path, options) as fp32, \
                create_backend("cpu", target, options) as int8:
            speed = _speed(fp32, int8, resized, cfg)
            cos = {k: cosine_similarity(reference[k], embed_frames(int8, frames))
                   for k, frames in (("source", resized), ("graph", full))}
        row = {"package": path.name, "variant": meta.variant, "input_size": meta.input_size,
               "trained": meta.trained, "recipe": name, "description": recipe.describe(),
               "calibration": description, **speed,
               "cosine_mean": float(cos["source"].mean()),
               "cosine_min": float(cos["source"].min()),
               "cosine_graph_mean": float(cos["graph"].mean()),
               "cosine_frames": int(len(cos["source"])), "quantize_s": info["seconds"],
               "kept_float": info["kept_float"], "quantized_nodes": info["quantized_nodes"]}
        if base_rows:
            int8_rows = _grade(path, clips, target)
            drops = [b["r"] - q["r"] for b, q in zip(base_rows, int8_rows)]
            row.update({"r_fp32": float(np.mean([b["r"] for b in base_rows])),
                        "r_int8": float(np.mean([q["r"] for q in int8_rows])),
                        "r_drop_mean": float(np.mean(drops)), "r_drop_max": float(max(drops)),
                        "per_clip": {"fp32": base_rows, "int8": int8_rows}})
        return row
    finally:
        target.unlink(missing_ok=True)


def measure(cfg: Int8BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    import os  # noqa: PLC0415

    from benchmarks.sysinfo import collect  # noqa: PLC0415

    info = collect()
    rows: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fsrun-int8-bench-") as scratch:
        for path in cfg.packages:
            rows += measure_package(Path(path), cfg, Path(scratch), log)
    return {"rows": rows, "recipes": {k: RECIPES[k].describe() for k in cfg.recipes},
            "system": {k: info.get(k) for k in ("machine", "cpu_model", "cpu_count",
                                                 "libraries", "command")},
            "cpu_flags": _cpu_flags(), "load_average_start": info.get("load_average_start"),
            "load_average_end": list(os.getloadavg()),
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "config": {"held_out": vars(cfg.held_out), "cosine_frames": cfg.cosine_frames,
                       "speed_frames": cfg.speed_frames, "speed_rounds": cfg.speed_rounds,
                       "batch": cfg.batch, "calibration_frames": cfg.calibration.frames}}


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return sorted(f for f in flags if "vnni" in f or f in ("avx2", "avx512f", "avx512bw"))


def to_markdown(results: dict[str, Any]) -> str:
    lines = ["# int8 encoder: recipes measured end to end", "",
             f"Measured {results['started']} ({results['duration_s']:.0f} s), CPU "
             f"{results['system'].get('cpu_model')} with {', '.join(results['cpu_flags'])}; load "
             f"average {results['load_average_start']} at start, "
             f"{[round(v, 2) for v in results['load_average_end']]} at end. Speed: encoder "
             "alone on decoded frames at the input size, int8 against fp32 in alternating "
             "rounds of the same run (median ms/frame). Cosine: embeddings against fp32 on "
             "held-out decoded frames (mean / min). r: fsrun on held-out synthetic clips against "
             "the true positions, fp32 -> int8 (mean; drop = fp32 - int8, mean / worst clip).", "",
             "| package | size | recipe | fp32 ms | int8 ms | speed-up | cosine mean / min | "
             "r fp32 -> int8 | r drop mean / max |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        if "error" in row:
            lines.append(f"| {row['package']} | | {row['recipe']} | failed: {row['error'][:80]} "
                         "| | | | | |")
            continue
        graded = "r_fp32" in row
        lines.append(
            f"| {row['package']} | {row['input_size']} | {row['recipe']} | {_ms(row['fp32_ms'])} | "
            f"{_ms(row['int8_ms'])} | {row['speedup']:.2f}x | {row['cosine_mean']:.4f} / "
            f"{row['cosine_min']:.4f} | "
            + (f"{row['r_fp32']:.4f} -> {row['r_int8']:.4f} | {row['r_drop_mean']:+.4f} / "
               f"{row['r_drop_max']:+.4f} |" if graded else "- | - |"))
    if results["system"].get("command"):
        lines += ["", f"Command: `{results['system']['command']}`"]
    lines += ["", "Recipes:", ""]
    lines += [f"- `{name}`: {text}" for name, text in results["recipes"].items()]
    return "\n".join(lines) + "\n"


def _ms(value: float) -> str:
    """ms/frame with three significant digits (tiny models run well under a millisecond)."""
    return f"{value:.3g}"


def write(out: Path, results: dict[str, Any], name: str = "int8_configs") -> tuple[Path, Path]:
    return write_json_and_markdown(out, name, results, to_markdown(results))

