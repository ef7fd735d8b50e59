"""Runs every measurement in order and writes results.json, report.md and the plots."""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks import sysinfo
from benchmarks.files import atomic_write
from benchmarks.devices import available_backends
from benchmarks.encoder_throughput import RUN_PRECISIONS, ThroughputConfig, measure_package
from benchmarks.probe import run_probe
from benchmarks.stages import StageConfig, measure_stages
from benchmarks.targets import evaluate_targets
from benchmarks.videos import ClipParams, make_clip
from fsrun.model.package import load_package

SCHEMA_VERSION = 1
# Decoders measured on their own per backend: NVDEC only feeds GPU backends.
DECODERS: dict[str, list[str]] = {"cpu": ["pyav"], "cuda": ["pyav", "nvdec"],
                                  "tensorrt": ["pyav", "nvdec"], "trt-native": ["pyav", "nvdec"]}
GPU_BACKENDS = ("cuda", "tensorrt", "trt-native")


@dataclass
class BenchConfig:
    packages: list[Path]  # model packages to measure, one per variant
    out: Path  # results folder (results.json, report.md, *.png)
    clips_dir: Path  # where synthetic clips are rendered (reused between runs)
    backends: list[str] | None = None  # None = every backend available here
    throughput: ThroughputConfig = field(default_factory=ThroughputConfig)  # encoder sweep
    throughput_frames: dict[str, int] = field(default_factory=dict)  # variant -> frames/repeat
    stage: StageConfig = field(default_factory=StageConfig)  # isolated stages
    stage_frames: dict[str, int] = field(default_factory=dict)  # variant -> encoder frames
    clip: ClipParams = field(default_factory=ClipParams)  # end-to-end clip (size, codec)
    e2e_seconds: dict[str, float] = field(default_factory=dict)  # variant -> clip seconds
    strides: tuple[int, ...] = (60, 30)  # strides of the fsrun vs baseline comparison
    baseline_variants: tuple[str, ...] = ("tiny", "effv2s")  # variants that get the baseline
    e2e_repeats: int = 1  # alternating fsrun/baseline rounds; medians are compared
    rss_package: Path | None = None  # package for the short vs long memory check (first if None)
    rss_seconds: float = 6.0  # short clip for the memory check; the long one is 10x
    rss_factor: int = 10  # long clip length / short clip length
    spin_variants: tuple[str, ...] = ("tiny",)  # variants whose CPU runs compare ORT spin-waiting
    graph_resize_variants: tuple[str, ...] = ("tiny", "effv2s")  # CPU: also fsrun --resize graph
    spin_rounds: int = 3  # alternating spin on/off runs per variant
    torch_eager: bool = True  # on a GPU, also time a PyTorch eager fp16 pipeline
    append: bool = False  # add to the results.json already in `out` (variants measured later)
    threads: int = 0  # ONNX Runtime CPU threads; 0 = all cores
    precisions: tuple[str, ...] = ()  # stage and end-to-end precisions; () = every one packaged


def _clip(cfg: BenchConfig, seconds: float) -> tuple[Path, ClipParams]:
    params = ClipParams(**{**asdict(cfg.clip), "seconds": seconds})
    return make_clip(params, cfg.clips_dir), params


def _median(values: list[float]) -> float:
    """The median; with an even count the mean of the middle two (not the upper one)."""
    return statistics.median(values) if values else float("nan")


def run_precisions(package: Any, backend: str, wanted: tuple[str, ...] = ()) -> list[str]:
    """The precisions the stage and end-to-end runs measure for this package and backend (only
    those in `wanted`, when given: a short GPU session measures fp16 alone for M and L)."""
    found = [p for p in RUN_PRECISIONS.get(backend, ("fp32",)) if package.has_graph("encoder", p)
             and (not wanted or p in wanted)]
    return found or ["fp32"]


def run_e2e(cfg: BenchConfig, package: Path, variant: str, backend: str, video: Path,
            log: Callable[[str], None], errors: list[str] | None = None,
            precisions: list[str] | None = None) -> list[dict[str, Any]]:
    """fsrun at each stride (and the baseline where asked), alternating, in fresh processes.

    A configuration that fails (a decoder that does not start, say) is logged and added to
    `errors`; the others still run.
    """
    rows: list[dict[str, Any]] = []
    precisions = precisions or ["fp32"]
    # (kind, decoder, resize, precision): fsrun with every decoder this backend can use, its
    # default resize and each precision; the baseline once (fp32, the author's precision).
    kinds = [("fsrun", d, "auto", p) for p in precisions for d in DECODERS.get(backend, ["pyav"])]
    kinds += [("baseline", "pyav", "auto", "fp32")] if variant in cfg.baseline_variants else []
    # On the CPU, fsrun with the resize in the graph (its GPU default) at one stride: the
    # decode-side difference it measures does not depend on the stride.
    resize_stride = 30 if 30 in cfg.strides else cfg.strides[0]
    extra = backend == "cpu" and variant in cfg.graph_resize_variants
    output = cfg.out / f".scratch_{variant}_{backend}.funscript"
    for round_index in range(max(1, cfg.e2e_repeats)):
        for stride in cfg.strides:
            graph = [("fsrun", "pyav", "graph", precisions[0])] \
                if extra and stride == resize_stride else []
            for kind, decoder, resize, precision in kinds + graph:
                args = {"kind": kind, "package": str(package), "video": str(video),
                        "output": str(output), "stride": stride, "backend": backend,
                        "decoder": decoder, "resize": resize, "threads": cfg.threads,
                        "batch": cfg.stage.batch, "precision": precision}
                # The requested decoder (and a non-default resize) names the configuration.
                label = decoder if resize == "auto" else f"{decoder}/{resize}"
                try:
                    result = run_probe(args)
                except RuntimeError as exc:
                    message = f"e2e {variant} {backend} {kind} {label} stride {stride}: {exc}"
                    log(f"FAILED  {message}")
                    if errors is not None:
                        errors.append(message)
                    continue
                report = result["report"]
                row = {"kind": kind, "variant": variant, "backend": backend, "stride": stride,
                       "precision": precision,
                       "decoder": label, "round": round_index, "frames": report["frames"],
                       "wall": report["wall"], "fps": report["frames"] / report["wall"],
                       **{k: v for k, v in result.items() if k != "report"}, "report": report}
                rows.append(row)
                log(f"e2e     {variant:7s} {backend:10s} {kind:8s} {label:10s} {precision} "
                    f"stride {stride:2d}: "
                    f"{row['fps']:8.1f} frames/s, wall {row['wall']:.2f} s, "
                    f"peak RSS {row['peak_rss_mib']:.0f} MiB, "
                    f"{row['cpu_cores_busy']:.2f} cores busy")
    output.unlink(missing_ok=True)
    return rows


def _decoder_used(report: dict[str, Any], requested: str) -> str:
    """decoder/resize as the run resolved them (fsrun); the baseline resizes with swscale."""
    if "resize" not in report:
        return requested
    return f"{report['decoder']}/{report['resize']}"


def summarize_e2e(rows: list[dict[str, Any]], fps: float) -> list[dict[str, Any]]:
    """Median wall per (variant, backend, stride, kind), speed-ups and the real-time factor."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["variant"], row["backend"], row["stride"], row["kind"], row["decoder"],
               row.get("precision", "fp32"))
        groups.setdefault(key, []).append(row)
    out = []
    for (variant, backend, stride, kind, decoder, precision), members in sorted(groups.items()):
        wall = _median([m["wall"] for m in members])
        frames = members[0]["frames"]
        entry = {"variant": variant, "backend": backend, "stride": stride, "kind": kind,
                 "precision": precision,
                 "decoder": decoder, "decoder_used": _decoder_used(members[0]["report"], decoder),
                 "wall_median": wall, "walls": [m["wall"] for m in members], "frames": frames,
                 "fps": frames / wall, "realtime_factor": frames / fps / wall,
                 "peak_rss_mib": max(m["peak_rss_mib"] for m in members),
                 "cpu_cores_busy": _median([m["cpu_cores_busy"] for m in members]),
                 # CPU seconds (user + system) move less than wall when others load the machine.
                 "cpu_s": _median([m["cpu_user_s"] + m["cpu_system_s"] for m in members])}
        if "peak_device_mib" in members[0]:
            entry["peak_device_mib"] = max(m["peak_device_mib"] for m in members)
        if kind == "baseline":
            entry["frames_encoded"] = members[0]["report"]["frames_encoded"]
            entry["baseline_graph"] = members[0]["report"].get("graph", "model.onnx")
            entry["structural_ceiling"] = entry["frames_encoded"] / frames
        out.append(entry)
    by_key = {(e["variant"], e["backend"], e["stride"], e["kind"]): e for e in out
              if e["kind"] == "baseline"}
    for entry in out:
        base = by_key.get((entry["variant"], entry["backend"], entry["stride"], "baseline"))
        if entry["kind"] == "fsrun" and base is not None:
            entry["speedup_vs_baseline"] = base["wall_median"] / entry["wall_median"]
            entry["cpu_time_ratio_vs_baseline"] = base["cpu_s"] / entry["cpu_s"]
            entry["structural_ceiling"] = base["structural_ceiling"]
    return out


def run_spinning_check(cfg: BenchConfig, package: Path, variant: str, video: Path,
                       log: Callable[[str], None]) -> dict[str, Any]:
    """fsrun on the CPU with ONNX Runtime's spin-waiting on and off, alternating, same clip."""
    samples: dict[str, list[dict[str, float]]] = {"1": [], "0": []}
    output = cfg.out / ".scratch_spin.funscript"
    for _ in range(max(1, cfg.spin_rounds)):
        for setting in samples:
            result = run_probe({"kind": "fsrun", "package": str(package), "video": str(video),
                                "output": str(output), "stride": 30, "backend": "cpu",
                                "decoder": "pyav", "threads": cfg.threads,
                                "ort_spinning": setting, "precision": "fp32"})
            report = result["report"]
            samples[setting].append({"wall_minus_load": report["wall"] - report["load"],
                                     "decode": report["decode"], "encode": report["encode"],
                                     "cpu_s": result["cpu_user_s"] + result["cpu_system_s"]})
    output.unlink(missing_ok=True)
    summary = {"variant": variant, "frames": report["frames"], "samples": samples}
    for setting, rows in samples.items():
        summary[f"spin_{setting}"] = {k: _median([r[k] for r in rows]) for k in rows[0]}
    log(f"spin    {variant:7s} cpu: wall-load {summary['spin_1']['wall_minus_load']:.2f} s "
        f"spinning vs {summary['spin_0']['wall_minus_load']:.2f} s not; CPU "
        f"{summary['spin_1']['cpu_s']:.2f} vs {summary['spin_0']['cpu_s']:.2f} s")
    return summary


def run_memory(cfg: BenchConfig, package: Path, backend: str,
               log: Callable[[str], None]) -> dict[str, Any]:
    """Peak RSS of fsrun on a short clip and on one rss_factor times longer, same settings."""
    result: dict[str, Any] = {"package": package.name, "backend": backend}
    for label, seconds in (("short", cfg.rss_seconds), ("long", cfg.rss_seconds * cfg.rss_factor)):
        video, params = _clip(cfg, seconds)
        probe = run_probe({"kind": "fsrun", "package": str(package), "video": str(video),
                           "output": str(cfg.out / ".scratch_rss.funscript"), "stride": 30,
                           "backend": backend, "threads": cfg.threads, "precision": "fp32"})
        result[label] = {"seconds": seconds, "frames": probe["report"]["frames"],
                         "peak_rss_mib": probe["peak_rss_mib"], "wall": probe["wall_s"],
                         "peak_rss_after_imports_mib": probe["peak_rss_after_imports_mib"],
                         "peak_device_mib": probe.get("peak_device_mib")}
        log(f"memory  {label:5s} clip {seconds:6.1f} s: peak RSS {probe['peak_rss_mib']:.1f} MiB")
    (cfg.out / ".scratch_rss.funscript").unlink(missing_ok=True)
    result["ratio_long_over_short"] = (result["long"]["peak_rss_mib"]
                                       / result["short"]["peak_rss_mib"])
    return result


def run_all(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info = sysinfo.collect()
    backends = cfg.backends or available_backends()
    log(f"machine {info['machine']}: {info['cpu_count']} CPUs, GPUs {info['gpus'] or 'none'}, "
        f"backends {', '.join(backends)}, load {info['load_average_start']}")
    packages = [load_package(p) for p in cfg.packages]
    results: dict[str, Any] = {"schema": SCHEMA_VERSION, "system": info, "backends": backends,
                               "config": _config_dict(cfg), "encoder": [], "stages": [],
                               "e2e_runs": [], "clips": {}, "runs": []}
    if cfg.append and (cfg.out / "results.json").is_file():
        results = _previous(cfg.out / "results.json", results,
                            {p.meta.variant for p in packages})
    for package in packages:
        variant = package.meta.variant
        seconds = cfg.e2e_seconds.get(variant, cfg.clip.seconds)
        video, params = _clip(cfg, seconds)
        results["clips"][variant] = {"path": video.name, **params.describe()}
        for backend in backends:
            try:
                _measure_backend(cfg, results, package, backend, video, log)
            except Exception as exc:  # noqa: BLE001 - one failing backend must not lose the rest
                message = f"{variant} on {backend}: {type(exc).__name__}: {exc}"
                log(f"FAILED  {message}")
                results.setdefault("errors", []).append(message)
        if variant in cfg.spin_variants and "cpu" in backends:
            results.setdefault("spinning", []).append(
                run_spinning_check(cfg, package.path, variant, video, log))
    results["e2e"] = summarize_e2e(results["e2e_runs"], packages[0].meta.fps if packages else 30.0)
    rss_package = cfg.rss_package or (packages[0].path if packages else None)
    if rss_package is not None and cfg.rss_seconds > 0:
        results["memory"] = run_memory(cfg, Path(rss_package), backends[0], log)
    if cfg.torch_eager and any(b in GPU_BACKENDS for b in backends):
        results["torch_eager"] = results.get("torch_eager", []) + _torch_eager(cfg, packages, log)
    results["targets"] = evaluate_targets(results)
    results["runs"].append({
        "command": info["command"], "variants": [p.meta.variant for p in packages],
        "backends": backends, "load_average_start": info["load_average_start"],
        "busy_processes_start": info["busy_processes_start"],
        "load_average_end": sysinfo.load_average(),
        "busy_processes_end": sysinfo.other_busy_processes(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "duration_s": time.time() - started})
    results["duration_s"] = sum(r["duration_s"] for r in results["runs"])
    write_results(cfg.out, results)
    return results


def _previous(path: Path, fresh: dict[str, Any], variants: set[str]) -> dict[str, Any]:
    """An earlier run's results, to which this run's measurements are added; rows of the
    variants measured again are dropped, so a variant's numbers always come from one run."""
    previous = json.loads(path.read_text(encoding="utf-8"))
    if previous.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema {previous.get('schema')}, expected {SCHEMA_VERSION}")
    for key in ("encoder", "stages", "e2e_runs", "spinning", "torch_eager"):
        previous[key] = [r for r in previous.get(key, []) if r.get("variant") not in variants]
    previous["clips"] = {k: v for k, v in previous.get("clips", {}).items() if k not in variants}
    previous["backends"] = sorted(set(previous["backends"]) | set(fresh["backends"]))
    previous["system"] = {**previous["system"], **{k: fresh["system"][k] for k in
                                                   ("libraries", "command")}}
    previous.setdefault("runs", [])
    previous.pop("plots", None)
    return previous


def _measure_backend(cfg: BenchConfig, results: dict[str, Any], package: Any, backend: str,
                     video: Path, log: Callable[[str], None]) -> None:
    variant = package.meta.variant
    sweep = ThroughputConfig(**{**asdict(cfg.throughput), "threads": cfg.threads,
                                "frames": cfg.throughput_frames.get(variant,
                                                                    cfg.throughput.frames)})
    results["encoder"] += measure_package(package.path, backend, sweep, log, cfg.precisions)
    stage_cfg = StageConfig(**{**asdict(cfg.stage), "threads": cfg.threads,
                               "encoder_frames": cfg.stage_frames.get(variant,
                                                                      cfg.stage.encoder_frames)})
    precisions = run_precisions(package, backend, cfg.precisions)
    for precision in precisions:
        results["stages"].append(measure_stages(package.path, video, backend,
                                                DECODERS.get(backend, ["pyav"]), stage_cfg, log,
                                                precision=precision))
    results["e2e_runs"] += run_e2e(cfg, package.path, variant, backend, video, log,
                                   results.setdefault("errors", []), precisions)


def _torch_eager(cfg: BenchConfig, packages: list[Any], log: Callable[[str], None]) -> list[dict]:
    """PyTorch eager fp16 on the same GPU and clips (export-side code: imports torch)."""
    try:
        from benchmarks.torch_eager import measure_torch_eager  # noqa: PLC0415
    except ImportError as exc:
        log(f"torch eager comparison skipped: {exc}")
        return []
    rows = []
    for package in packages:
        video, _ = _clip(cfg, cfg.e2e_seconds.get(package.meta.variant, cfg.clip.seconds))
        rows.append(measure_torch_eager(package.path, video, batch=cfg.stage.batch, log=log))
    return rows


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    data = asdict(cfg)
    return json.loads(json.dumps(data, default=str))


def write_results(out: Path, results: dict[str, Any]) -> None:
    """results.json, report.md and the plots, each written to a temp name then moved."""
    from benchmarks.plots import write_plots  # noqa: PLC0415
    from benchmarks.report import render_report  # noqa: PLC0415

    results["plots"] = write_plots(results, out)
    atomic_write(out / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    atomic_write(out / "report.md", render_report(results))
