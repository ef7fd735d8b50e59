"""Each stage of a run measured alone on the same clip, to split a real run's wall time.

decode       FFmpeg decode only (no colour conversion): the floor of any CPU pipeline
decode_rgb   fsrun's PyAV source, --resize graph: decode + full-size RGB + crop
decode_cpu_resize   fsrun's PyAV source, --resize source: decode + swscale crop and scale to the
             model's input size
encoder_full       the encoder on full-size frames: its in-graph resize included
encoder_resized    the encoder on frames already at the input size: the network alone
h2d_full / h2d_resized   (GPU) bytes and time to copy one batch to the device
decode_nvdec       (GPU) NVDEC decode + crop into device memory
head, stitch       the head over all windows at a stride, and the weighted overlap

The GPU-vs-CPU resize question is answered by comparing
  in-graph: (decode_rgb - decode) + encoder_full  [+ h2d_full with PyAV on a GPU]
  on CPU:   (decode_cpu_resize - decode) + encoder_resized  [+ h2d_resized]
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.devices import cuda_runtime, device_sync, h2d_copy
from fsrun.backends import BackendOptions, create_backend
from fsrun.model.package import load_package
from fsrun.run.sampling import TimestampSampler
from fsrun.sources import load_source_class
from fsrun.run.stitching import Stitcher, gather_windows, plan_windows


@dataclass
class StageConfig:
    batch: int = 16  # frames per encoder call, as fsrun's default
    encoder_frames: int = 64  # frames the encoder-only passes time (per-frame cost is scaled)
    stride: int = 30  # head/stitch stride
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = all cores
    keep_batches: int = 2  # decoded batches kept to feed the encoder-only passes
    repeats: int = 3  # passes per decode measurement; the median is kept (shared machines)
    encoder_repeats: int = 1  # passes per encoder measurement (costly for S/M/L on a CPU)


def _open_decode(video: Path) -> tuple[Any, Any]:
    import av  # noqa: PLC0415

    container = av.open(str(video))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def decode_plain(video: Path, fps: float) -> dict[str, Any]:
    """FFmpeg decode of every frame, sampler applied, no conversion out of YUV."""
    container, stream = _open_decode(video)
    sampler, kept = TimestampSampler(fps), 0
    start = time.perf_counter()
    for frame in container.decode(stream):
        kept += sampler.accept(float(frame.pts * frame.time_base))
    seconds = time.perf_counter() - start
    container.close()
    return {"seconds": seconds, "frames": kept}


def decode_source(video: Path, fps: float, decoder: str, batch: int, keep: int,
                  resize_to: int | None = None) -> tuple[dict[str, Any], list[Any]]:
    """fsrun's own source (PyAV RGB or NVDEC) over the clip; keeps the first batches (host).
    resize_to: the PyAV source scales each kept frame to this size (fsrun --resize source)."""
    scaling = {"resize_to": resize_to} if resize_to else {}
    source = load_source_class(decoder)(video, crop=None, **scaling)
    kept, frames, batches = [], 0, []
    sync = device_sync(cuda_runtime()) if decoder == "nvdec" else None
    start = time.perf_counter()
    for item in source.batches(TimestampSampler(fps), batch):
        frames += len(item)
        # the source's own batches (it caps host batches by bytes), not a last partial one
        if len(kept) < keep and not item.on_device and (not kept or len(item) == len(kept[0])):
            kept.append(item.frames)
    if sync is not None:
        sync()
    seconds = time.perf_counter() - start
    source.close()
    batches = kept
    return {"seconds": seconds, "frames": frames, "decoder": decoder}, batches


def encoder_pass(encoder: Any, batches: list[Any], frames: int, sync: Any) -> dict[str, Any]:
    """Seconds per frame of the encoder over `frames` frames cycling the given batches."""
    if not batches:
        return {"seconds_per_frame": float("nan"), "frames": 0}
    encoder.run(batches[0])  # warm-up: first-call allocations, shape specialization
    if sync is not None:
        sync()
    done, start = 0, time.perf_counter()
    for batch in itertools.cycle(batches):
        if done >= frames:
            break
        encoder.run(batch)
        done += len(batch)
    if sync is not None:
        sync()
    seconds = time.perf_counter() - start
    return {"seconds_per_frame": seconds / done, "frames": done,
            "input_shape": list(batches[0].shape)}


def head_and_stitch(head: Any, frames: int, window: int, dim: int, stride: int,
                    head_batch: int = 32) -> dict[str, Any]:
    """Head over every window of a clip of `frames` frames, plus gather/stitch time."""
    embeddings = np.random.default_rng(0).random((frames, dim), dtype=np.float32)
    plan = plan_windows(frames, window, stride)
    stitcher = Stitcher(plan)
    head_s = stitch_s = 0.0
    for first in range(0, plan.count, head_batch):
        t0 = time.perf_counter()
        windows = gather_windows(embeddings, plan, first, head_batch)
        t1 = time.perf_counter()
        predictions = np.asarray(head.run(windows))
        t2 = time.perf_counter()
        stitcher.add(predictions[:, :window])
        stitch_s += (t1 - t0) + (time.perf_counter() - t2)
        head_s += t2 - t1
    t0 = time.perf_counter()
    stitcher.result()
    stitch_s += time.perf_counter() - t0
    return {"head": head_s, "stitch": stitch_s, "windows": plan.count, "stride": stride}


def _median_pass(work: Any, repeats: int) -> tuple[dict[str, Any], Any]:
    """Run a measuring pass `repeats` times; keep the median seconds and all samples."""
    results = [work() for _ in range(max(1, repeats))]
    key = "seconds" if "seconds" in results[0][0] else "seconds_per_frame"
    samples = [r[0][key] for r in results]
    middle = results[int(np.argsort(samples)[len(samples) // 2])]
    return {**middle[0], "samples": samples}, middle[1]


def measure_stages(package_path: Path, video: Path, backend_name: str, decoders: list[str],
                   cfg: StageConfig, log: Any = print, precision: str = "fp32") -> dict[str, Any]:
    """All isolated stage timings for one package, backend, precision and clip."""
    package = load_package(package_path)
    meta = package.meta
    runtime = cuda_runtime() if backend_name != "cpu" else None
    sync = device_sync(runtime)
    out: dict[str, Any] = {"variant": meta.variant, "backend": backend_name,
                           "precision": precision, "input_size": meta.input_size,
                           "batch": cfg.batch}
    out["decode"], _ = _median_pass(lambda: (decode_plain(video, meta.fps), None), cfg.repeats)
    out["decode_rgb"], full_batches = _median_pass(
        lambda: decode_source(video, meta.fps, "pyav", cfg.batch, cfg.keep_batches), cfg.repeats)
    out["decode_cpu_resize"], small_batches = _median_pass(
        lambda: decode_source(video, meta.fps, "pyav", cfg.batch, cfg.keep_batches,
                              resize_to=meta.input_size), cfg.repeats)
    if "nvdec" in decoders:
        try:
            out["decode_nvdec"], _ = _median_pass(
                lambda: decode_source(video, meta.fps, "nvdec", cfg.batch, 0), cfg.repeats)
        except Exception as exc:  # noqa: BLE001 - the other stages still count without NVDEC
            out["decode_nvdec_error"] = f"{type(exc).__name__}: {exc}"
            log(f"stages  {meta.variant:7s} {backend_name:10s} NVDEC decode failed: "
                f"{out['decode_nvdec_error']}")
    options = BackendOptions.for_package(package, precision=precision, threads=cfg.threads)
    encoder = create_backend(backend_name, package.graph("encoder", precision), options)
    try:
        for key, batches in (("encoder_full", full_batches), ("encoder_resized", small_batches)):
            out[key], _ = _median_pass(
                lambda b=batches: (encoder_pass(encoder, b, cfg.encoder_frames, sync), None),
                cfg.encoder_repeats)
    finally:
        encoder.close()
    if runtime is not None and full_batches and small_batches:
        out["h2d_full"] = h2d_copy(runtime, full_batches[0])
        out["h2d_resized"] = h2d_copy(runtime, small_batches[0])
    head = create_backend(backend_name, package.graph("head", precision), options)
    try:
        out["head_stitch"] = head_and_stitch(head, out["decode"]["frames"], meta.window,
                                             meta.embedding_dim, cfg.stride)
    finally:
        head.close()
    out["derived"] = derive(out)
    log(f"stages  {meta.variant:7s} {backend_name:10s} {precision} ms/frame: " + ", ".join(
        f"{k} {v:.2f}" for k, v in out["derived"]["ms_per_frame"].items()))
    return out


def derive(stages: dict[str, Any]) -> dict[str, Any]:
    """Per-frame costs of each path, and which one wins."""
    frames = max(1, stages["decode"]["frames"])
    decode = stages["decode"]["seconds"] / frames
    to_rgb = max(0.0, stages["decode_rgb"]["seconds"] / frames - decode)
    cpu_resize = max(0.0, stages["decode_cpu_resize"]["seconds"] / frames - decode)
    enc_full = stages["encoder_full"]["seconds_per_frame"]
    enc_small = stages["encoder_resized"]["seconds_per_frame"]
    h2d_full = h2d_small = 0.0
    if "h2d_full" in stages:
        h2d_full = stages["h2d_full"]["seconds"] / max(1, stages["batch"])
        h2d_small = stages["h2d_resized"]["seconds"] / max(1, stages["batch"])
    seconds = {"decode": decode, "rgb_convert_full": to_rgb, "cpu_resize": cpu_resize,
                 "encoder_full(in-graph resize)": enc_full, "encoder_resized": enc_small,
                 "in_graph_resize": max(0.0, enc_full - enc_small)}
    if "h2d_full" in stages:
        seconds["h2d_full"] = h2d_full
        seconds["h2d_resized"] = h2d_small
    if "decode_nvdec" in stages:
        seconds["decode_nvdec"] = stages["decode_nvdec"]["seconds"] / frames
    in_graph = to_rgb + enc_full + h2d_full
    on_cpu = cpu_resize + enc_small + h2d_small
    return {"ms_per_frame": {k: v * 1000.0 for k, v in seconds.items()},
            "path_in_graph_s_per_frame": decode + in_graph,
            "path_cpu_resize_s_per_frame": decode + on_cpu,
            "faster_path": "in-graph resize" if in_graph <= on_cpu else "CPU resize (swscale)",
            "cpu_resize_over_in_graph": (decode + on_cpu) / (decode + in_graph)}
