"""What a reader needs to reproduce a result: machine, CPU, GPU, library versions, load."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Any

# Distributions whose versions go into every report.
LIBRARIES = ("fsrun", "fsexport", "numpy", "onnxruntime", "onnxruntime-gpu", "av", "onnx",
             "torch", "timm", "tensorrt", "PyNvVideoCodec", "cuda-python", "cuda-bindings",
             "cupy-cuda12x", "cupy-cuda13x", "nvidia-cuda-runtime", "nvidia-cudnn-cu13",
             "matplotlib", "psutil")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _smi_column(field: str) -> list[str]:
    """One nvidia-smi --query-gpu field per GPU; empty without a driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs nvidia-smi reports; empty without a driver."""
    return _smi_column("name")


def gpu_driver() -> str | None:
    """The NVIDIA driver version, or None without one."""
    versions = _smi_column("driver_version")
    return versions[0] if versions else None


def library_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:  # both onnxruntime and onnxruntime-gpu may be installed: name the one imported
        import onnxruntime  # noqa: PLC0415

        versions["onnxruntime(imported)"] = f"{onnxruntime.__version__} {onnxruntime.get_device()}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    try:
        import av  # noqa: PLC0415

        versions["ffmpeg(libavcodec)"] = ".".join(map(str, av.library_versions["libavcodec"]))
    except Exception:  # noqa: BLE001 - informational only
        pass
    return versions


def ort_providers() -> list[str]:
    import onnxruntime as ort  # noqa: PLC0415

    return list(ort.get_available_providers())


def uptime() -> str:
    """`uptime`'s line (time and load averages), for results taken on a shared machine."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {load_average()}"


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def other_busy_processes(threshold_pct: float = 20.0) -> list[str]:
    """Processes other than this one using noticeable CPU right now (shared-machine note)."""
    try:
        import psutil  # noqa: PLC0415
    except ImportError:
        return []
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.info["pid"] != me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    psutil.cpu_percent(0.5)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= threshold_pct:
            busy.append(f"{p.info['name']} ({pct:.0f}%)")
    return busy


def machine_name() -> str:
    """Folder name for results: the GPU's name where one exists, else the CPU and core count."""
    gpus = gpu_names()
    base = gpus[0] if gpus else f"cpu-{os.cpu_count()}core-{cpu_model()}"
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")


def collect() -> dict[str, Any]:
    memory_gib = None
    try:
        import psutil  # noqa: PLC0415

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {
        "machine": machine_name(),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib,
        "gpus": gpu_names(),
        "gpu_driver": gpu_driver(),
        "ort_providers": ort_providers(),
        "libraries": library_versions(),
        "load_average_start": load_average(),
        "busy_processes_start": other_busy_processes(),
        "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks", *sys.argv[1:]]),
    }
