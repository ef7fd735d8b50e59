"""One video in, one funscript out: decode -> sample -> encode -> windows -> stitch -> write.

`process_video(RunConfig(...))` is the whole run for one file (the CLI and folder mode call it).
Decoding runs in a thread feeding a bounded queue, so decode overlaps inference and memory stays
flat; embeddings go to the on-disk cache batch by batch, so an interrupted run resumes.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fsrun
from fsrun import config as user_config
from fsrun.backends import (AUTO_ORDER, AUTO_PRECISIONS, BackendOptions, create_backend,
                            is_backend_available, resolve_backend_name)
from fsrun.crop import parse_crop
from fsrun.embedding_cache import CacheKey, EmbeddingCache
from fsrun.errors import FsError, InputError, Interrupted, ModelError, UsageError
from fsrun.funscript import build_funscript, check_writable, default_output, write_funscript
from fsrun.package import ModelPackage, load_package
from fsrun.postprocess import PostprocessOptions, to_actions
from fsrun.progress import Progress
from fsrun.signals import raise_if_interrupted
from fsrun.sampling import TimeRange, TimestampSampler
from fsrun.sources import choose_decoder, load_source_class, probe
from fsrun.stitching import Stitcher, WindowPlan, gather_windows, plan_windows

# Frames between window starts. The encoder runs once per frame whatever the stride; a smaller
# stride only runs the (cheap) head on more windows, and each position becomes a blend of
# 60/stride predictions. Against synthetic ground truth (stride_accuracy.md in the benchmark
# results), a briefly trained model gains per-frame r 0.924 -> 0.947 from 30 to 15 and only
# 0.005 more at 10; a well trained one is unchanged (0.999). Head time at 15: 0.03 ms a frame.
DEFAULT_STRIDE = 15
# Where frames are resized to the model's input size. source: swscale in the PyAV decoder (on
# the CPU that costs far less than a full-size RGB frame resized inside the graph); graph: the
# encoder's own Resize (on a GPU, frames already in device memory are resized there).
RESIZE_CHOICES: tuple[str, ...] = ("auto", "source", "graph")
# Backend -> resize mode under --resize auto; backends not listed (the GPU ones) use "graph".
AUTO_RESIZE: dict[str, str] = {"cpu": "source"}
# Decoders that can resize in the source; others fall back to (or with --decoder, reject) it.
RESIZING_DECODERS: tuple[str, ...] = ("pyav",)

# How to add a precision a package lacks, for the error that says so.
MISSING_PRECISION_HINT: dict[str, str] = {
    "int8": " (add one with `fsexport quantize PKG`)",
    "fp16": " (rebuild it without --no-fp16)",
}

BackendFactory = Callable[[str, Path, BackendOptions], Any]


@dataclass
class RunConfig:
    video: Path  # input video file
    model: Path | None = None  # model package; None resolves $FSRUN_MODEL, default, demo
    output: Path | None = None  # funscript path; None writes VIDEO.funscript
    backend: str = "auto"  # auto, cpu, cuda, tensorrt, trt-native
    decoder: str = "auto"  # auto, pyav, nvdec
    stride: int = DEFAULT_STRIDE  # frames between window starts (1..window)
    batch: int = 16  # frames per encoder call
    head_batch: int = 32  # windows per head call
    crop: str = "full"  # full, sbs-left, sbs-right or X,Y,W,H
    resize: str = "auto"  # auto, source (swscale in the decoder) or graph (in the encoder)
    start: float = 0.0  # seconds: first time to process
    end: float | None = None  # seconds: stop before this time; None = end of video
    force: bool = False  # overwrite an existing funscript
    quiet: bool = False  # no notices, no progress bar
    progress: bool | None = None  # progress bar; None = only when stderr is a terminal
    report: Path | None = None  # write the run report as JSON here
    postprocess: PostprocessOptions = field(default_factory=PostprocessOptions)  # points kept
    use_cache: bool = True  # read and write the embedding cache
    cache_dir: Path | None = None  # cache root; None = user cache dir ($FSRUN_CACHE_DIR)
    precision: str = "auto"  # fp32, fp16, int8, or auto (AUTO_PRECISIONS: int8 on the CPU,
    # fp16 on GPU backends, when packaged)
    threads: int = 0  # CPU inference threads; 0 lets ONNX Runtime decide
    device_id: int = 0  # CUDA device for GPU decoders and backends
    queue_size: int = 4  # decoded batches waiting for the encoder (bounds memory)
    backend_factory: BackendFactory | None = None  # builds backends; None = create_backend
    log: Callable[[str], None] | None = None  # where one-line notices go; None = silent


@dataclass
class RunResult:
    output: Path  # the funscript written
    actions: int  # points in it
    report: dict[str, Any]  # timings (s) and counts; also written by --report
    pts_ms: np.ndarray  # float64 [n]: timestamps of the sampled frames
    positions: np.ndarray  # float32 [n]: stitched raw positions in 0..1
    padded: bool  # the clip was shorter than one window


def resolve_model(model: Path | str | None) -> tuple[Path, str | None]:
    """--model, then $FSRUN_MODEL, then the default from `fsexport build`, then the demo."""
    if model is not None:
        return Path(model), None
    if os.environ.get(user_config.MODEL_ENV):
        return Path(os.environ[user_config.MODEL_ENV]), None
    default = user_config.get_default_model()
    if default is not None:
        return default, None
    demo = user_config.demo_model_dir()
    if demo.is_dir():
        return demo, (f"using the bundled demo model ({demo.name}: tiny, for trying fsrun out, "
                      "not for real scripts); build one with `fsexport build` or pass --model")
    raise ModelError("no model: pass --model PKG, set $FSRUN_MODEL, or run `fsexport build`")


class _Stages:
    """Wall time per stage, in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {k: 0.0 for k in
                                          ("load", "decode", "encode", "head", "stitch", "write")}

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


def _precision(package: ModelPackage, backend: str, requested: str) -> str:
    for wanted in AUTO_PRECISIONS[backend] if requested == "auto" else (requested,):
        if package.has_graph("encoder", wanted) and package.has_graph("head", wanted):
            return wanted
    if requested == "auto":
        return "fp32"
    raise ModelError(f"{package.path}: has no {requested} encoder/head graphs"
                     + MISSING_PRECISION_HINT.get(requested, ""))


def resolve_resize(requested: str, backend: str) -> str:
    """The resize mode for a run on this (resolved) backend: source or graph."""
    if requested not in RESIZE_CHOICES:
        raise UsageError(f"unknown --resize {requested!r}; choose from {', '.join(RESIZE_CHOICES)}")
    return AUTO_RESIZE.get(backend, "graph") if requested == "auto" else requested


def _start_backend(cfg: RunConfig, package: ModelPackage, graph: str, name: str) -> tuple[Any, str, str]:
    """(backend, name, precision). "auto" moves down AUTO_ORDER when a candidate fails to start."""
    factory = cfg.backend_factory or create_backend
    candidates = [name] if name != "auto" else [b for b in AUTO_ORDER if is_backend_available(b)]
    failures: list[str] = []
    for candidate in candidates:
        precision = _precision(package, candidate, cfg.precision)
        options = BackendOptions(device_id=cfg.device_id, precision=precision, threads=cfg.threads,
                                 cache_dir=package.path / "engines")
        try:
            return factory(candidate, package.graph(graph, precision), options), candidate, precision
        except FsError as exc:
            if name != "auto":
                raise
            failures.append(f"{candidate}: {exc}")
    raise ModelError("no backend could start: " + "; ".join(failures))


class _DecodeThread:
    """Runs source.batches() in a thread; batches (or the error) come out of a bounded queue."""

    _END = object()

    def __init__(self, source: Any, sampler: TimestampSampler, batch: int, depth: int):
        self.source, self.sampler, self.batch = source, sampler, batch
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.seconds = 0.0  # time spent decoding, not waiting for the consumer
        self.finished = False  # the source ran out of frames (or reached --end)
        self.thread = threading.Thread(target=self._run, name="fsrun-decode", daemon=True)

    def _run(self) -> None:
        try:
            batches = self.source.batches(self.sampler, self.batch)
            while not self.stop.is_set():
                began = time.perf_counter()
                item = next(batches, self._END)
                self.seconds += time.perf_counter() - began
                if item is self._END:
                    self.finished = True
                self._put(item)
                if item is self._END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        self.thread.start()
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _encode(cfg: RunConfig, package: ModelPackage, video: Path, crop_box: Any, decoder: str,
            resize: str, sampler: TimestampSampler, cache: EmbeddingCache | None, encoder: Any,
            stages: _Stages, counts: dict[str, int],
            total_hint: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode and encode the frames not cached yet; returns (pts_ms, embeddings) chunks when
    there is no cache to hold them."""
    scaling = {"resize_to": package.meta.input_size} if resize == "source" else {}
    source = load_source_class(decoder)(video, crop=crop_box, device_id=cfg.device_id, **scaling)
    if cache is not None and cache.frames:
        stamps = cache.timestamps()
        sampler.resume_after(stamps[0] / 1000.0, stamps[-1] / 1000.0, cache.frames)
        source.seek_to = stamps[-1] / 1000.0
        counts["resumed_from"] = cache.frames
    elif cfg.start > 0:
        source.seek_to = cfg.start
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    decode = _DecodeThread(source, sampler, cfg.batch, cfg.queue_size)
    progress = Progress(total_hint, "frames", enabled=False if cfg.quiet else cfg.progress)
    progress.count = cache.frames if cache is not None else 0
    try:
        for batch in decode:
            began = time.perf_counter()
            embeddings = np.asarray(encoder.run(batch.frames), dtype=np.float32)
            stages.add("encode", began)
            if embeddings.shape[0] != len(batch):
                raise ModelError(f"encoder returned {embeddings.shape[0]} embeddings "
                                 f"for {len(batch)} frames")
            counts["encoder_calls"] += 1
            counts["frames_encoded"] += len(batch)
            if cache is not None:
                cache.append(embeddings, batch.pts_ms)
            else:
                chunks.append((np.asarray(batch.pts_ms, dtype=np.float64), embeddings))
            progress.update(len(batch))
            # Safe point: this batch is in the cache, so a stop here loses nothing.
            raise_if_interrupted(f"{cache.frames if cache is not None else 0} frames cached, "
                                 "run again to resume")
    except KeyboardInterrupt:
        cached = cache.frames if cache is not None else 0
        raise Interrupted(f"stopped; {cached} frames cached, run again to resume") from None
    finally:
        decode.close()
        progress.close()
        counts["frames_decoded"] += int(getattr(source, "frames_decoded", 0))
        counts["frames_skipped"] += int(getattr(source, "frames_skipped", 0))
        source.close()
    stages.seconds["decode"] += decode.seconds
    if decode.finished and cache is not None:
        cache.mark_complete(cfg.end)
    return chunks


def _run_head(head: Any, embeddings: np.ndarray, plan: WindowPlan, batch: int,
              stages: _Stages) -> tuple[np.ndarray, int]:
    """Positions [n] in 0..1 from the head over every window of the plan, `batch` at a time."""
    stitcher = Stitcher(plan)
    calls = 0
    for first in range(0, plan.count, batch):
        began = time.perf_counter()
        windows = gather_windows(embeddings, plan, first, batch)
        began = stages.add("stitch", began)
        predictions = head.run(windows)
        began = stages.add("head", began)
        stitcher.add(np.asarray(predictions)[:, :plan.window])
        stages.add("stitch", began)
        calls += 1
    return stitcher.result(), calls


def process_video(cfg: RunConfig) -> RunResult:
    """Run the model over one video and write its funscript; raises fsrun.errors classes."""
    wall = time.perf_counter()
    stages = _Stages()
    say = (lambda msg: None) if cfg.quiet or cfg.log is None else cfg.log
    video = Path(cfg.video)
    time_range = TimeRange(cfg.start, cfg.end)

    began = time.perf_counter()
    model_path, notice = resolve_model(cfg.model)
    if notice:
        say(notice)
    package = load_package(model_path)
    meta = package.meta
    output = Path(cfg.output) if cfg.output else default_output(video)
    check_writable(output, cfg.force)
    info = probe(video)
    crop_box = parse_crop(cfg.crop).resolve(info.width, info.height)
    plan_windows(1, meta.window, cfg.stride)  # reject a bad --stride before any work
    if cfg.resize == "source" and cfg.decoder not in ("auto", *RESIZING_DECODERS):
        raise UsageError(f"--resize source needs the pyav decoder (not {cfg.decoder})")
    backend_name = resolve_backend_name(cfg.backend) if cfg.backend != "auto" else "auto"
    head, backend_name, precision = _start_backend(cfg, package, "head", backend_name)
    resize = resolve_resize(cfg.resize, backend_name)
    stages.add("load", began)

    cache = None
    if cfg.use_cache:
        key = CacheKey.for_video(video, package.model_hash, precision, crop_box, meta.fps,
                                 cfg.start, resize)
        cache = EmbeddingCache(key, meta.embedding_dim, cfg.cache_dir)
    counts = {"encoder_calls": 0, "frames_encoded": 0, "frames_decoded": 0, "resumed_from": 0,
              "frames_skipped": 0}
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    cache_hit = cache is not None and cache.covers(cfg.end)
    decoder, decoder_notes = ("cache", []) if cache_hit else choose_decoder(video, cfg.decoder, cfg.device_id)
    if decoder == "nvdec" and backend_name == "cpu":
        # NVDEC frames live in GPU memory; the CPU backend would need a copy back per frame.
        if cfg.decoder == "nvdec":
            raise UsageError("--decoder nvdec needs a GPU backend (--backend cuda or tensorrt)")
        decoder = "pyav"
    if resize == "source" and decoder not in ("cache", *RESIZING_DECODERS):
        decoder_notes.append(f"{decoder} cannot resize in the source (--resize source): using pyav")
        decoder = "pyav"
    for note in decoder_notes:
        say(f"decoder fallback: {note}")
    say(f"model: {package.name} ({meta.variant}{'' if meta.trained else ', untrained'}) | "
        f"backend: {backend_name} ({precision}) | decoder: {decoder} | resize: {resize}")
    if not cache_hit:
        began = time.perf_counter()
        encoder, _, _ = _start_backend(cfg, package, "encoder", backend_name)
        stages.add("load", began)
        span = (cfg.end if cfg.end is not None else info.duration_s) - cfg.start
        total = int(span * meta.fps) if span > 0 else None
        try:
            chunks = _encode(cfg, package, video, crop_box, decoder, resize,
                             TimestampSampler(meta.fps, time_range), cache, encoder, stages,
                             counts, total)
        finally:
            encoder.close()

    if cache is not None:
        pts_ms, embeddings = cache.timestamps(), cache.embeddings()
    elif chunks:
        pts_ms = np.concatenate([c[0] for c in chunks])
        embeddings = np.concatenate([c[1] for c in chunks])
        chunks.clear()
    else:
        pts_ms, embeddings = np.zeros(0), np.zeros((0, meta.embedding_dim), np.float32)
    if cfg.end is not None:  # the cache may hold frames past this run's --end
        keep = int(np.searchsorted(pts_ms, cfg.end * 1000.0 - 1e-3))
        pts_ms, embeddings = pts_ms[:keep], embeddings[:keep]

    if len(pts_ms) == 0:
        if cfg.start > 0:
            raise UsageError(f"--start {cfg.start:g} s is past the end of {video.name} "
                             f"({info.duration_s:.1f} s)")
        raise InputError(f"{video}: no frames could be decoded")
    plan = plan_windows(len(pts_ms), meta.window, cfg.stride)
    if plan.padded:
        say(f"clip is shorter than one window ({plan.frames} < {meta.window} frames): "
            "padded with its last frame")
    try:
        positions, head_calls = _run_head(head, embeddings, plan, cfg.head_batch, stages)
    finally:
        head.close()

    began = time.perf_counter()
    actions = to_actions(pts_ms, positions, cfg.postprocess)
    metadata = _metadata(cfg, package, info.duration_s, precision, plan.padded, crop_box, resize)
    if counts["frames_skipped"]:
        say(f"{video.name}: {counts['frames_skipped']} damaged frames skipped; "
            "the script covers the frames that decoded")
        metadata["frames_skipped"] = counts["frames_skipped"]
    raise_if_interrupted("nothing written")
    write_funscript(output, build_funscript(actions, metadata), force=cfg.force)
    stages.add("write", began)

    report = {
        "video": str(video), "output": str(output), "model": package.name,
        "model_hash": package.model_hash, "variant": meta.variant, "backend": backend_name,
        "decoder": decoder, "resize": resize, "precision": precision, "frames": plan.frames,
        "windows": plan.count, "stride": cfg.stride, "window": meta.window,
        "padded": plan.padded, "head_calls": head_calls, "actions": len(actions),
        "cache_hit": cache_hit, **counts,
        **{k: round(v, 6) for k, v in stages.seconds.items()},
        "wall": round(time.perf_counter() - wall, 6),
    }
    if cfg.report is not None:
        write_report(Path(cfg.report), report)
    return RunResult(output, len(actions), report, pts_ms, positions, plan.padded)


def _metadata(cfg: RunConfig, package: ModelPackage, duration_s: float, precision: str,
              padded: bool, crop_box: Any, resize: str) -> dict[str, Any]:
    options = {"stride": cfg.stride, "crop": cfg.crop, "start": cfg.start, "end": cfg.end,
               "precision": precision, "resize": resize, **cfg.postprocess.as_dict()}
    if crop_box is not None:
        options["crop_box"] = [crop_box.x, crop_box.y, crop_box.width, crop_box.height]
    return {
        "title": Path(cfg.video).stem, "duration": round(duration_s, 3), "type": "basic",
        "notes": "generated by fsrun" + ("; clip shorter than one window, padded" if padded else ""),
        "generator": {"name": "fsrun", "version": fsrun.__version__},
        "model": {"name": package.name, "variant": package.meta.variant,
                  "sha256": package.model_hash, "trained": package.meta.trained},
        "options": options, "padded": padded,
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write a JSON report atomically (a half-written report never appears)."""
    import json  # noqa: PLC0415

    from fsrun.errors import OutputError  # noqa: PLC0415

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
