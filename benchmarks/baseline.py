"""The model author's way of running the model, as the reference for fsrun's speed-up.

Decode every frame with PyAV, resize each one on the CPU (swscale straight from YUV to RGB at the
model's input size, the cheapest form of "resize per frame"), keep the frames in memory, then run
the composite model.onnx on each window of T frames at the given stride. Overlapping windows
encode their shared frames again, which is what fsrun's split encoder/head avoids. Same package
(same fp32 weights), same sampler, same video as the fsrun run it is compared with.

A package built without model.onnx (`fsexport build --no-composite`, how the M and L packages
are made in minutes rather than most of an hour) runs the same computation as two graphs per
window: encoder.onnx on the window's T frames, then head.onnx on their T embeddings. Nothing
is reused between windows, so the work per window is the composite's; the result says which
form ran ("graph").

The author's Keras pipeline also converted frames to float32 on the host; the composite graph
takes uint8, so that copy is left out, which makes this baseline slightly faster than the real
one (the reported speed-up is a lower bound).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fsrun.backends import BackendOptions, create_backend
from fsrun.model.package import load_package
from fsrun.run.sampling import TimestampSampler
from fsrun.run.stitching import plan_windows


class SplitWindowModel:
    """The composite's computation from the split graphs: encoder on the window's frames, then
    the head on their embeddings, one window at a time."""

    def __init__(self, encoder: Any, head: Any):
        self.encoder, self.head = encoder, head

    def run(self, batch: np.ndarray) -> np.ndarray:
        """[1, T, H, W, 3] uint8 -> [1, T] positions, like model.onnx."""
        embeddings = np.asarray(self.encoder.run(batch[0]))
        return np.asarray(self.head.run(embeddings[None]))[:, :batch.shape[1]]

    def close(self) -> None:
        self.encoder.close()
        self.head.close()


def window_model(package: Any, backend: str, precision: str, threads: int) -> tuple[Any, str]:
    """The composite model.onnx where the package has it, else encoder + head per window."""
    options = BackendOptions.for_package(package, precision=precision, threads=threads)
    if package.has_graph("model", precision):
        return create_backend(backend, package.graph("model", precision), options), "model.onnx"
    encoder = create_backend(backend, package.graph("encoder", precision), options)
    head = create_backend(backend, package.graph("head", precision), options)
    return SplitWindowModel(encoder, head), "encoder.onnx + head.onnx per window"


@dataclass
class BaselineConfig:
    package: Path  # model package (its model.onnx is run, or encoder + head per window)
    video: Path  # input clip
    stride: int = 60  # frames between window starts
    backend: str = "cpu"  # fsrun backend name that runs model.onnx
    precision: str = "fp32"  # graph precision (the author ran fp32)
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = all cores


def decode_resized(video: Path, fps: float, size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Every sampled frame, resized to size x size RGB by swscale, plus its time in ms."""
    import av  # noqa: PLC0415

    sampler = TimestampSampler(fps)
    frames: list[np.ndarray] = []
    stamps: list[float] = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            pts_s = float(frame.pts * frame.time_base)
            if not sampler.accept(pts_s):
                continue
            frames.append(frame.reformat(width=size, height=size, format="rgb24").to_ndarray())
            stamps.append(pts_s * 1000.0)
    return frames, np.asarray(stamps)


def run_baseline(cfg: BaselineConfig) -> dict[str, Any]:
    """Decode + resize, then the composite per window; stage seconds and the averaged track."""
    wall = time.perf_counter()
    package = load_package(cfg.package)
    meta = package.meta
    model, graph = window_model(package, cfg.backend, cfg.precision, cfg.threads)
    load_s = time.perf_counter() - wall

    began = time.perf_counter()
    frames, stamps = decode_resized(cfg.video, meta.fps, meta.input_size)
    decode_s = time.perf_counter() - began

    plan = plan_windows(len(frames), meta.window, cfg.stride)
    sums = np.zeros(plan.frames)
    counts = np.zeros(plan.frames)
    model_s = 0.0
    try:
        for start in plan.starts:
            window = frames[start:start + meta.window]
            window += [window[-1]] * (meta.window - len(window))  # a short clip: pad
            batch = np.stack(window)[None]
            began = time.perf_counter()
            positions = np.asarray(model.run(batch))[0]
            model_s += time.perf_counter() - began
            stop = min(plan.frames, start + meta.window)
            sums[start:stop] += positions[:stop - start]
            counts[start:stop] += 1
    finally:
        model.close()
    track = sums / np.maximum(counts, 1)
    return {
        "variant": meta.variant, "graph": graph, "stride": cfg.stride, "frames": plan.frames,
        "windows": plan.count, "frames_encoded": int(plan.count * meta.window),
        "load": load_s, "decode_resize": decode_s, "model": model_s,
        "wall": time.perf_counter() - wall, "positions_mean": float(track.mean()),
        "pts_first_ms": float(stamps[0]) if len(stamps) else 0.0,
    }
