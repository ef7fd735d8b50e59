"""GPU helpers for measurements: device sync, host->device copies, peak device memory.

Everything here imports fsrun.gpu (CuPy or cuda-python) lazily; on a machine without a GPU the
callers never reach it.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import Any, Callable

import numpy as np

from fsrun.backends import BACKENDS, is_backend_available


def available_backends() -> list[str]:
    """Every fsrun backend whose library and device answer on this machine."""
    return [name for name in BACKENDS if is_backend_available(name)]


def cuda_runtime(device_id: int = 0) -> Any | None:
    """fsrun's shared CUDA runtime, or None without a GPU stack."""
    try:
        from fsrun.gpu import get_runtime  # noqa: PLC0415

        return get_runtime(device_id)
    except Exception:  # noqa: BLE001 - no GPU libraries or no device: CPU-only machine
        return None


def device_sync(runtime: Any | None) -> Callable[[], None] | None:
    """A callable that waits for all queued device work, or None on the CPU."""
    return runtime.synchronize if runtime is not None else None


def to_device(runtime: Any, array: np.ndarray) -> Any:
    from fsrun.gpu.cuda_runtime import to_device as copy_up  # noqa: PLC0415

    return copy_up(runtime, array)


def h2d_copy(runtime: Any, frames: np.ndarray, repeats: int = 5) -> dict[str, float]:
    """Bytes and median seconds of copying one host batch to the device (synchronized)."""
    times = []
    for _ in range(repeats + 1):
        runtime.synchronize()
        start = time.perf_counter()
        device = to_device(runtime, frames)
        runtime.synchronize()
        times.append(time.perf_counter() - start)
        del device
    seconds = float(np.median(times[1:]))
    return {"bytes": int(frames.nbytes), "seconds": seconds,
            "gb_per_s": frames.nbytes / seconds / 1e9 if seconds > 0 else 0.0,
            "bytes_per_frame": int(frames.nbytes // max(1, frames.shape[0]))}


def _smi(query: str) -> list[list[str]]:
    out = subprocess.run(["nvidia-smi", query, "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=5).stdout
    return [[p.strip() for p in line.split(",")] for line in out.splitlines() if line.strip()]


def _gpu_used_mib() -> float:
    rows = _smi("--query-gpu=memory.used")
    return float(rows[0][0]) if rows and rows[0][0].replace(".", "").isdigit() else 0.0


class DeviceMemoryPoller:
    """Peak GPU memory of one process id, sampled from nvidia-smi every `interval_s`.

    In containers nvidia-smi often lists no process ids; then the growth of the device's total
    used memory over its value at start stands in (exact when nothing else uses the GPU).
    """

    def __init__(self, pid: int, interval_s: float = 0.1):
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self.enabled = shutil.which("nvidia-smi") is not None
        self.source = "per-process"  # or "device total minus idle" when ids are not visible
        self._idle_mib = _gpu_used_mib() if self.enabled else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        for parts in _smi("--query-compute-apps=pid,used_memory"):
            if len(parts) == 2 and parts[0] == str(self.pid):
                try:
                    return float(parts[1])
                except ValueError:
                    return 0.0
        self.source = "device total minus idle"
        return max(0.0, _gpu_used_mib() - self._idle_mib)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mib = max(self.peak_mib, self._sample())
            except (OSError, subprocess.SubprocessError):
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> DeviceMemoryPoller:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join(timeout=10)


class SmiSampler:
    """Device memory used and NVDEC utilization of the GPU, sampled from nvidia-smi."""

    def __init__(self, interval_s: float = 0.2):
        self.enabled = shutil.which("nvidia-smi") is not None
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (memory.used MiB, decoder %)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                used, util = (float(v) for v in
                              _smi("--query-gpu=memory.used,utilization.decoder")[0])
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return
            self.samples.append((used, util))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> SmiSampler:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join(timeout=10)

    def peaks(self) -> dict[str, float | None]:
        if not self.samples:
            return {"device_used_peak_mib": None, "decoder_util_peak_pct": None}
        return {"device_used_peak_mib": max(s[0] for s in self.samples),
                "decoder_util_peak_pct": max(s[1] for s in self.samples)}
