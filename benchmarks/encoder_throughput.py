"""Encoder frames/s per variant, backend, precision and batch size (warm-up excluded).

Frames are random uint8 at the model's input size, so the number is the network alone (the
in-graph resize is then a no-op resample); the stage benchmark measures resizing separately.
On GPU backends that take device input the batch is uploaded once before timing, so the rate
excludes host->device copies; a second row with host input includes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.devices import cuda_runtime, device_sync, to_device
from benchmarks.stats import repeat_timed, summarize
from fsrun.backends import BackendOptions, create_backend
from fsrun.model.package import load_package

# Precisions measured per backend (where the package has them): fp16 only pays off on GPUs,
# int8 (`fsexport quantize`) is built for CPU int8 kernels.
PRECISIONS: dict[str, tuple[str, ...]] = {
    "cpu": ("fp32", "int8"),
    "cuda": ("fp16", "fp32"),
    "tensorrt": ("fp16", "fp32"),
    "trt-native": ("fp16",),
}
# Precisions of the stage and end-to-end runs per backend (where packaged): fsrun's default on
# GPUs; on the CPU fp32 (the author's precision, the baseline's) and int8.
RUN_PRECISIONS: dict[str, tuple[str, ...]] = {
    "cpu": ("fp32", "int8"),
    "cuda": ("fp16",),
    "tensorrt": ("fp16",),
    "trt-native": ("fp16",),
}


@dataclass
class ThroughputConfig:
    batch_sizes: tuple[int, ...] = (1, 4, 16)  # frames per encoder call
    frames: int = 64  # frames per timed repeat (rounded up to whole batches)
    repeats: int = 3  # timed repeats per point; the median is reported
    warmup: int = 1  # untimed calls first (session init, allocator, autotuning)
    threads: int = 0  # ONNX Runtime intra-op threads on the CPU; 0 = all cores


def _host_frames(batch: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(batch, size, size, 3), dtype=np.uint8)


def measure_point(backend: Any, frames: Any, calls: int, batch: int, cfg: ThroughputConfig,
                  sync: Any) -> dict[str, Any]:
    def work() -> None:
        for _ in range(calls):
            backend.run(frames)

    seconds = repeat_timed(work, cfg.repeats, cfg.warmup, sync)
    rates = [calls * batch / s for s in seconds]
    return {"seconds": summarize(seconds), "fps": summarize(rates),
            "frames_per_repeat": calls * batch}


def measure_package(package_path: Path, backend_name: str, cfg: ThroughputConfig,
                    log: Any = print, wanted: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of {variant, backend, precision, batch, input, fps{median,...}} for one package
    (the precisions in `wanted` only, when given)."""
    package = load_package(package_path)
    meta = package.meta
    rows: list[dict[str, Any]] = []
    runtime = cuda_runtime() if backend_name != "cpu" else None
    for precision in PRECISIONS.get(backend_name, ("fp32",)):
        if not package.has_graph("encoder", precision) or (wanted and precision not in wanted):
            continue
        options = BackendOptions.for_package(package, precision=precision, threads=cfg.threads)
        backend = create_backend(backend_name, package.graph("encoder", precision), options)
        try:
            for batch in cfg.batch_sizes:
                calls = max(1, -(-cfg.frames // batch))
                host = _host_frames(batch, meta.input_size)
                inputs = [("host", host)]
                if runtime is not None and getattr(backend, "accepts_device_input", False):
                    inputs.insert(0, ("device", to_device(runtime, host)))
                for kind, frames in inputs:
                    point = measure_point(backend, frames, calls, batch, cfg, device_sync(runtime))
                    row = {"variant": meta.variant, "package": package.name,
                           "backend": backend_name, "precision": precision, "batch": batch,
                           "input_size": meta.input_size, "input": kind, **point}
                    rows.append(row)
                    log(f"encoder {meta.variant:7s} {backend_name:10s} {precision} "
                        f"batch {batch:3d} "
                        f"{kind:6s}: {row['fps']['median']:9.1f} frames/s "
                        f"(p25 {row['fps']['p25']:.1f}, p75 {row['fps']['p75']:.1f})")
        finally:
            backend.close()
    return rows
