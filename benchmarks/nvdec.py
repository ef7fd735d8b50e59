"""NVDEC against PyAV: timestamps, pixel differences, decode throughput and device memory.

compare     H.264, HEVC and VP9 clips encoded here with PyAV's encoders, decoded by fsrun's
            PyAV source (CPU, swscale's YUV->RGB) and its NVDEC source (GPU, NVDEC's own
            conversion). Timestamps must be identical; the per-pixel difference statistics
            (mean, percentiles, maximum, mean signed difference per channel) give the
            colour-conversion tolerance the two decoders meet. A large signed difference in one
            channel points at a different colour matrix or range rather than rounding.
throughput  1080p H.264 and HEVC through fsrun's NVDEC source (decode + RGB + the batch copy)
            with one decoder and with several in parallel processes (an H100 has 7 NVDEC
            engines); fsrun's PyAV source and the demux alone (the host side of NVDEC) for
            reference. Device memory per decoder comes from cudaMemGetInfo in each worker, the
            device total and the decoder utilization from nvidia-smi sampled meanwhile.
Without a GPU or PyNvVideoCodec the NVDEC rows say why they were skipped; the rest still runs.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.devices import SmiSampler
from benchmarks.files import write_json_and_markdown
from benchmarks.videos import ClipParams, make_clip

CODEC_NAMES = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9"}


@dataclass
class NvdecConfig:
    clips_dir: Path  # where the clips are encoded (reused between runs)
    compare_codecs: tuple[str, ...] = ("libx264", "libx265", "libvpx-vp9")  # PyAV encoders
    compare_sizes: tuple[tuple[int, int], ...] = ((640, 360), (1920, 1080))  # SD and HD matrices
    compare_seconds: float = 2.0  # length of each comparison clip
    throughput_codecs: tuple[str, ...] = ("libx264", "libx265")
    throughput_size: tuple[int, int] = (1920, 1080)
    throughput_seconds: float = 10.0  # clip length; workers loop over it
    min_seconds: float = 4.0  # each worker decodes for at least this long
    parallel: tuple[int, ...] = (1, 2, 4, 7, 8)  # NVDEC decoders at once, one process each
    pyav_parallel: tuple[int, ...] = (1,)  # PyAV sources at once (each uses FFmpeg's threads)
    batch: int = 16  # frames per batch, as fsrun's default
    require_nvdec: bool = False  # fail instead of reporting NVDEC rows as skipped


class DiffStats:
    """Streaming |a - b| histogram and signed sums of uint8 RGB frames, per channel."""

    def __init__(self) -> None:
        self.histogram = np.zeros((3, 256), np.int64)
        self.signed = np.zeros(3, np.float64)
        self.frames = 0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        if reference.shape != candidate.shape:
            raise ValueError(f"frame shapes differ: {reference.shape} vs {candidate.shape}")
        diff = candidate.astype(np.int16) - reference.astype(np.int16)
        flat = diff.reshape(-1, 3)
        self.signed += flat.sum(axis=0)
        for channel in range(3):
            self.histogram[channel] += np.bincount(np.abs(flat[:, channel]), minlength=256)
        self.frames += reference.shape[0] if reference.ndim == 4 else 1

    def summary(self) -> dict[str, Any]:
        total = self.histogram.sum(axis=0)
        count = int(total.sum())
        if count == 0:
            return {"frames": 0, "values": 0}
        cumulative = np.cumsum(total) / count
        values = np.arange(256)

        def percentile(q: float) -> int:
            return int(np.searchsorted(cumulative, q / 100.0))

        return {"frames": self.frames, "values": count,
                "mean_abs": float((total * values).sum() / count),
                "p50": percentile(50), "p99": percentile(99), "p999": percentile(99.9),
                "max": int(values[total > 0].max()),
                "share_over": {str(t): float(total[t + 1:].sum() / count) for t in (2, 5, 10)},
                "mean_signed_rgb": [float(s / h.sum())
                                    for s, h in zip(self.signed, self.histogram, strict=True)],
                "mean_abs_rgb": [float((h * values).sum() / h.sum()) for h in self.histogram]}


class EveryFrame:
    def accept(self, pts_s: float) -> bool:
        return True


def host_frames(batch: Any) -> np.ndarray:
    """A FrameBatch's frames on the host (NVDEC batches are copied back)."""
    if not batch.on_device:
        return batch.frames
    from fsrun.gpu import as_device_array, get_runtime, to_host  # noqa: PLC0415

    return to_host(get_runtime(0), as_device_array(batch.frames))


def compare_sources(path: Path, reference: Callable[[Path], Any], candidate: Callable[[Path], Any],
                    batch: int = 16) -> dict[str, Any]:
    """Decode one clip with two sources; timestamps and pixel statistics, batch by batch."""
    stats = DiffStats()
    with reference(path) as ref_source, candidate(path) as cand_source:
        ref_batches = ref_source.batches(EveryFrame(), batch)
        ref_frames, ref_pts, cand_pts = np.zeros((0,), np.uint8), [], []
        for item in cand_source.batches(EveryFrame(), batch):
            frames = host_frames(item)
            cand_pts.append(item.pts_ms)
            while len(ref_frames) < len(frames):
                more = next(ref_batches, None)
                if more is None:
                    break
                ref_pts.append(more.pts_ms)
                ref_frames = more.frames if len(ref_frames) == 0 else np.concatenate(
                    [ref_frames, more.frames])
            n = min(len(frames), len(ref_frames))
            stats.add(ref_frames[:n], frames[:n])
            ref_frames = ref_frames[n:]
        for more in ref_batches:
            ref_pts.append(more.pts_ms)
    ref_all = np.concatenate(ref_pts) if ref_pts else np.zeros(0)
    cand_all = np.concatenate(cand_pts) if cand_pts else np.zeros(0)
    aligned = ref_all.shape == cand_all.shape
    same = aligned and bool(np.array_equal(ref_all, cand_all))
    return {"frames_reference": int(len(ref_all)), "frames_candidate": int(len(cand_all)),
            "timestamps_identical": same,
            "max_timestamp_diff_ms": (float(np.abs(ref_all - cand_all).max())
                                      if aligned and len(ref_all) else None),
            "pixels": stats.summary()}


def nvdec_unavailable(device_id: int = 0) -> str | None:
    """Why the NVDEC source cannot run here, or None when it can."""
    from fsrun.gpu import device_count  # noqa: PLC0415
    from fsrun.sources.nvdec_source import is_available  # noqa: PLC0415

    if not is_available():
        return "PyNvVideoCodec or a CUDA array library is not installed"
    if device_count() <= device_id:
        return "no CUDA device"
    return None


def _source(kind: str) -> Callable[[Path], Any]:
    from fsrun.sources import load_source_class  # noqa: PLC0415

    return load_source_class(kind)


def _clip(cfg: NvdecConfig, codec: str, size: tuple[int, int], seconds: float) -> Path:
    return make_clip(ClipParams(width=size[0], height=size[1], seconds=seconds, codec=codec),
                     cfg.clips_dir)


def clips_for(cfg: NvdecConfig) -> list[Path]:
    """Every clip the comparison and the throughput runs read, rendered now if missing (a GPU
    session renders them in an earlier call, while other wheels are still on their way)."""
    clips = [_clip(cfg, codec, size, cfg.compare_seconds)
             for codec in cfg.compare_codecs for size in cfg.compare_sizes]
    return clips + [_clip(cfg, codec, cfg.throughput_size, cfg.throughput_seconds)
                    for codec in cfg.throughput_codecs]


def run_compare(cfg: NvdecConfig, skip: str | None, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for codec in cfg.compare_codecs:
        for size in cfg.compare_sizes:
            clip = _clip(cfg, codec, size, cfg.compare_seconds)
            row: dict[str, Any] = {"codec": CODEC_NAMES.get(codec, codec), "encoder": codec,
                                   "size": f"{size[0]}x{size[1]}", "clip": clip.name}
            if skip:
                row["skipped"] = skip
            else:
                try:
                    row.update(compare_sources(clip, _source("pyav"), _source("nvdec"), cfg.batch))
                except Exception as exc:  # noqa: BLE001 - one codec failing must not lose the rest
                    row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            pixels = row.get("pixels", {})
            log(f"compare {row['codec']:5s} {row['size']:>9s}: " + (
                row.get("skipped") or row.get("error") or
                f"timestamps {'identical' if row['timestamps_identical'] else 'DIFFER'}, "
                f"|diff| mean {pixels.get('mean_abs', float('nan')):.2f} p99 {pixels.get('p99')} "
                f"max {pixels.get('max')}"))
    return rows


def _memory_free() -> int | None:
    try:
        from fsrun.gpu.cuda_runtime import import_cudart  # noqa: PLC0415

        err, free, _total = import_cudart().cudaMemGetInfo()
        return int(free) if int(err) == 0 else None
    except Exception:  # noqa: BLE001 - informational only
        return None


def _demux_pass(path: Path) -> int:
    """Packets through PyAV's demuxer and the Annex-B filter, as the NVDEC source feeds them."""
    from fsrun.sources.nvdec_source import ANNEXB_FILTERS  # noqa: PLC0415
    from fsrun.sources.pyav_source import _open_container  # noqa: PLC0415

    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        name = ANNEXB_FILTERS.get(stream.codec_context.name)
        from av.bitstream import BitStreamFilterContext  # noqa: PLC0415

        bsf = BitStreamFilterContext(name, stream) if name else None
        count = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            for part in (bsf.filter(packet) if bsf else (packet,)):
                bytes(part)
                count += 1
        return count
    finally:
        container.close()


def decode_worker(kind: str, path: str, batch: int, min_seconds: float, barrier: Any,
                  results: Any) -> None:
    """One process: warm up, wait for the others, decode the clip until min_seconds passed."""
    try:
        clip = Path(path)
        before = after = None
        from fsrun.gpu import get_runtime  # noqa: PLC0415

        if kind == "nvdec":
            get_runtime(0)  # the CUDA context exists before the decoder's memory is counted
            before = _memory_free()

        def one_pass() -> int:
            nonlocal after
            if kind == "demux":
                return _demux_pass(clip)
            frames = 0
            with _source(kind)(clip) as source:
                for item in source.batches(EveryFrame(), batch):
                    frames += len(item)
                if kind == "nvdec":
                    get_runtime(0).synchronize()
                    after = _memory_free() if after is None else after
            return frames

        one_pass()  # warm-up: libraries, decoder creation, allocator pools
        barrier.wait(timeout=600)
        start, frames, passes = time.time(), 0, 0
        while time.time() - start < min_seconds or passes == 0:
            frames += one_pass()
            passes += 1
        end = time.time()
        used = None if before is None or after is None else (before - after) / 2**20
        results.put({"frames": frames, "passes": passes, "start": start, "end": end,
                     "device_mib": used})
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        try:
            barrier.abort()
        finally:
            results.put({"error": f"{type(exc).__name__}: {exc}"})


def measure_parallel(kind: str, clip: Path, workers: int, cfg: NvdecConfig) -> dict[str, Any]:
    """Aggregate frames/s of `workers` processes decoding at once (spawned: CUDA needs it)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=decode_worker, args=(kind, str(clip), cfg.batch,
                                                              cfg.min_seconds, barrier, results))
                 for _ in range(workers)]
    with SmiSampler() as sampler:
        for process in processes:
            process.start()
        rows = []
        for _ in processes:
            try:
                rows.append(results.get(timeout=900))
            except queue.Empty:
                rows.append({"error": "a worker gave no result within 900 s"})
        for process in processes:
            process.join(timeout=60)
    errors = [r["error"] for r in rows if "error" in r]
    if errors:
        return {"kind": kind, "workers": workers, "error": errors[0]}
    frames = sum(r["frames"] for r in rows)
    wall = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    memory = [r["device_mib"] for r in rows if r["device_mib"] is not None]
    return {"kind": kind, "workers": workers, "frames": frames, "seconds": wall,
            "fps": frames / wall, "fps_per_worker": [r["frames"] / (r["end"] - r["start"])
                                                     for r in rows],
            "device_mib_per_decoder": float(np.median(memory)) if memory else None,
            **sampler.peaks()}


def run_throughput(cfg: NvdecConfig, skip: str | None, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for codec in cfg.throughput_codecs:
        clip = _clip(cfg, codec, cfg.throughput_size, cfg.throughput_seconds)
        plan = [("demux", 1)] + [("pyav", n) for n in cfg.pyav_parallel]
        plan += [("nvdec", n) for n in cfg.parallel]
        for kind, workers in plan:
            base = {"codec": CODEC_NAMES.get(codec, codec), "clip": clip.name,
                    "size": f"{cfg.throughput_size[0]}x{cfg.throughput_size[1]}"}
            if kind == "nvdec" and skip:
                row = {**base, "kind": kind, "workers": workers, "skipped": skip}
            else:
                row = {**base, **measure_parallel(kind, clip, workers, cfg)}
            rows.append(row)
            unit = "packets/s" if kind == "demux" else "frames/s"
            log(f"decode  {row['codec']:5s} {kind:6s} x{workers}: " + (
                row.get("skipped") or row.get("error") or
                f"{row['fps']:9.1f} {unit}" + (f", {row['device_mib_per_decoder']:.0f} MiB per "
                                               f"decoder" if row.get("device_mib_per_decoder")
                                               else "")))
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    lines = ["# NVDEC against PyAV", "", f"GPU: {results['gpu'] or 'none'}; "
             f"NVDEC: {results['nvdec_skipped'] or 'available'}.", "",
             "## Frames: NVDEC vs PyAV (|difference| in 8-bit RGB levels)", "",
             "| codec | size | frames | timestamps | mean | p50 | p99 | p99.9 | max | >5 | "
             "mean signed R,G,B |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["compare"]:
        if "pixels" not in row:
            lines.append(f"| {row['codec']} | {row['size']} | - | "
                         f"{row.get('skipped') or row.get('error')} |  |  |  |  |  |  |  |")
            continue
        p = row["pixels"]
        signed = ", ".join(f"{v:+.2f}" for v in p.get("mean_signed_rgb", []))
        lines.append(f"| {row['codec']} | {row['size']} | {row['frames_candidate']}/"
                     f"{row['frames_reference']} | "
                     f"{'identical' if row['timestamps_identical'] else 'DIFFER'} | "
                     f"{p.get('mean_abs', 0):.2f} | {p.get('p50')} | {p.get('p99')} | "
                     f"{p.get('p999')} | {p.get('max')} | {p.get('share_over', {}).get('5', 0):.4f}"
                     f" | {signed} |")
    lines += ["", "## Decode throughput", "", "| codec | size | path | processes | frames/s | "
              "per process | MiB per process (decoder + batches) | device MiB peak | "
              "NVDEC util peak % |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in results["throughput"]:
        if "fps" not in row:
            lines.append(f"| {row['codec']} | {row['size']} | {row['kind']} | {row['workers']} | "
                         f"{row.get('skipped') or row.get('error')} |  |  |  |  |")
            continue
        per = ", ".join(f"{v:.0f}" for v in row["fps_per_worker"])

        def fmt(value: Any) -> str:
            return "-" if value is None else f"{value:.0f}"

        lines.append(f"| {row['codec']} | {row['size']} | {row['kind']} | {row['workers']} | "
                     f"{row['fps']:.1f} | {per} | {fmt(row.get('device_mib_per_decoder'))} | "
                     f"{fmt(row.get('device_used_peak_mib'))} | "
                     f"{fmt(row.get('decoder_util_peak_pct'))} |")
    lines += ["", "demux = PyAV demux + Annex-B filter only (packets/s), the host side of the "
              "NVDEC path; pyav = fsrun's PyAV source (decode + RGB on the CPU); nvdec = fsrun's "
              "NVDEC source (decode + RGB + batch copy on the GPU). MiB per process: device "
              "memory taken between the CUDA context and the end of the first pass "
              "(cudaMemGetInfo); device MiB peak and NVDEC utilization: nvidia-smi every 0.2 s "
              "while the processes ran.", ""]
    return "\n".join(lines)


def measure(cfg: NvdecConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    from benchmarks.sysinfo import collect  # noqa: PLC0415

    skip = nvdec_unavailable()
    if skip and cfg.require_nvdec:
        raise RuntimeError(f"NVDEC is required but unavailable: {skip}")
    info = collect()
    log(f"nvdec   {info['gpus'] or 'no GPU'}; NVDEC {skip or 'available'}; "
        f"load {info['load_average_start']}")
    results = {"schema": 1, "system": info, "gpu": ", ".join(info["gpus"]),
               "nvdec_skipped": skip, "config": {k: str(v) if isinstance(v, Path) else v
                                                  for k, v in asdict(cfg).items()}}
    results["compare"] = run_compare(cfg, skip, log)
    results["throughput"] = run_throughput(cfg, skip, log)
    results["load_average_end"] = list(os.getloadavg())
    return results


def write(out: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    return write_json_and_markdown(out, "nvdec", results, render_markdown(results))
