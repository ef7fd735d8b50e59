"""Does the int8 encoder run correctly on a CPU without AVX-512 / VNNI? `python -m benchmarks
int8-isa --package P`.

No such CPU is at hand, so each model runs under QEMU's user-mode emulator (`qemu-x86_64 -cpu
MODEL`, Debian package qemu-user), which answers CPUID as that CPU would: ONNX Runtime's MLAS
kernels then dispatch as they would there (AVX2 u8s8 kernels without VNNI on Haswell, SSE4.1 on
Nehalem). The same decoded frames go through the fp32 and int8 encoders natively and emulated;
the table compares the emulated int8 embeddings with the native fp32 ones (the drift a user of
that CPU gets) and with the native int8 ones (did the kernels change the arithmetic?).

Speed: emulated timings measure QEMU's translation of each instruction, not the CPU modelled,
so they are reported only as int8/fp32 ratios under emulation, with that caveat.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.files import write_json_and_markdown

# CPU models compared by default: AVX2 + FMA without AVX-512 or VNNI (Haswell, 2013), and SSE4.2
# only (Nehalem, 2008).
DEFAULT_MODELS = ("Haswell-v4", "Nehalem-v2")
FEATURES = ("AVX512F", "AVX512VNNI", "AVX512BF16", "AVX2", "FMA3", "SSE41", "SSE42")


def cpu_features() -> dict[str, bool]:
    """What CPUID says (numpy's runtime dispatch reads CPUID the way MLAS does)."""
    from numpy._core._multiarray_umath import __cpu_features__  # noqa: PLC0415

    return {k: bool(__cpu_features__.get(k, False)) for k in FEATURES}


def run_encoders(package: Path, frames: np.ndarray, batch: int = 4) -> dict[str, Any]:
    """fp32 and int8 embeddings of frames and seconds per frame of each (after a warm-up)."""
    from fsrun.backends import BackendOptions, create_backend  # noqa: PLC0415
    from fsrun.model.package import load_package  # noqa: PLC0415

    loaded = load_package(package)
    out: dict[str, Any] = {"features": cpu_features()}
    for precision in ("fp32", "int8"):
        with create_backend("cpu", loaded.graph("encoder", precision), BackendOptions()) as enc:
            enc.run(frames[:1])
            began = time.perf_counter()
            out[precision] = np.concatenate([enc.run(frames[i:i + batch])
                                             for i in range(0, len(frames), batch)])
            out[f"{precision}_s_per_frame"] = (time.perf_counter() - began) / len(frames)
    return out


def child(package: str, frames_path: str, out_path: str) -> None:
    """Entry point inside the emulator: frames in, embeddings and timings out (npz + json)."""
    result = run_encoders(Path(package), np.load(frames_path))
    np.savez(out_path, fp32=result["fp32"], int8=result["int8"])
    Path(out_path).with_suffix(".json").write_text(json.dumps(
        {k: v for k, v in result.items() if k not in ("fp32", "int8")}), encoding="utf-8")


def _emulated(model: str, package: Path, frames_path: Path, work: Path,
              timeout_s: float) -> dict[str, Any]:
    python = os.path.realpath(sys.executable)
    out = work / f"{model}.npz"
    root = Path(__file__).resolve().parents[2]  # the checkout: `import benchmarks` there
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    began = time.perf_counter()
    child_run = subprocess.run(
        ["qemu-x86_64", "-cpu", model, python, "-c",
         "import sys; from benchmarks.experiments.int8_isa import child; child(*sys.argv[1:])",
         str(package), str(frames_path), str(out)],
        capture_output=True, text=True, env=env, timeout=timeout_s, cwd=root)
    if child_run.returncode != 0:
        tail = [line for line in child_run.stderr.splitlines() if "TCG doesn't" not in line]
        raise RuntimeError(f"{model}: exit {child_run.returncode}: {' | '.join(tail[-4:])}")
    data = np.load(out)
    info = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return {"fp32": data["fp32"], "int8": data["int8"], **info,
            "wall_s": time.perf_counter() - began}


def measure(package: Path, frames: np.ndarray, models: tuple[str, ...] = DEFAULT_MODELS,
            timeout_s: float = 3600, log: Callable[[str], None] = print) -> dict[str, Any]:
    from fsexport.quantize import cosine_similarity  # noqa: PLC0415

    native = run_encoders(package, frames)
    rows = [{"cpu": "native", "features": native["features"],
             "fp32_ms": 1000 * native["fp32_s_per_frame"],
             "int8_ms": 1000 * native["int8_s_per_frame"],
             "cosine_int8_vs_native_fp32": _stats(cosine_similarity(native["fp32"], native["int8"])),
             "max_abs_int8_vs_native_int8": 0.0, "max_abs_fp32_vs_native_fp32": 0.0}]
    log(f"isa     native: int8 cosine vs fp32 {rows[0]['cosine_int8_vs_native_fp32']['mean']:.5f}")
    with tempfile.TemporaryDirectory(prefix="fsrun-int8-isa-") as scratch:
        frames_path = Path(scratch) / "frames.npy"
        np.save(frames_path, frames)
        for model in models:
            try:
                emu = _emulated(model, package, frames_path, Path(scratch), timeout_s)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                rows.append({"cpu": model, "error": str(exc)})
                log(f"isa     {model}: FAILED {exc}")
                continue
            row = {"cpu": model, "features": emu["features"],
                   "fp32_ms": 1000 * emu["fp32_s_per_frame"],
                   "int8_ms": 1000 * emu["int8_s_per_frame"], "wall_s": emu["wall_s"],
                   "cosine_int8_vs_native_fp32": _stats(cosine_similarity(native["fp32"], emu["int8"])),
                   "cosine_int8_vs_native_int8": _stats(cosine_similarity(native["int8"], emu["int8"])),
                   "max_abs_int8_vs_native_int8": float(np.abs(emu["int8"] - native["int8"]).max()),
                   "max_abs_fp32_vs_native_fp32": float(np.abs(emu["fp32"] - native["fp32"]).max())}
            rows.append(row)
            log(f"isa     {model}: int8 cosine vs native fp32 "
                f"{row['cosine_int8_vs_native_fp32']['mean']:.5f}, max |int8 - native int8| "
                f"{row['max_abs_int8_vs_native_int8']:.3g}")
    return {"package": str(package), "frames": int(len(frames)), "rows": rows,
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_end": list(os.getloadavg())}


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "min": float(values.min())}


def to_markdown(results: dict[str, Any]) -> str:
    lines = ["# int8 encoder on CPUs without AVX-512 / VNNI (QEMU user-mode emulation)", "",
             f"Package `{Path(results['package']).name}`, {results['frames']} decoded frames, "
             f"measured {results['measured_at']} (load average at the end "
             f"{[round(v, 2) for v in results.get('load_average_end', [])]}, 2 cores shared). "
             "Each emulated row is the same ONNX Runtime "
             "build running under `qemu-x86_64 -cpu MODEL`, whose CPUID makes MLAS choose that "
             "CPU's kernels. Emulated ms/frame measure QEMU, not the CPU: only the int8/fp32 "
             "ratio under emulation is shown, and it is not a prediction of real speed.", "",
             "| CPU | AVX-512 | VNNI | AVX2 | int8 cosine vs native fp32 (mean / min) | "
             "max abs int8 - native int8 | max abs fp32 - native fp32 | fp32 / int8 time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        if "error" in row:
            lines.append(f"| {row['cpu']} | failed: {row['error'][:100]} | | | | | | |")
            continue
        f = row["features"]
        cos = row["cosine_int8_vs_native_fp32"]
        lines.append(f"| {row['cpu']} | {'yes' if f['AVX512F'] else 'no'} | "
                     f"{'yes' if f['AVX512VNNI'] else 'no'} | {'yes' if f['AVX2'] else 'no'} | "
                     f"{cos['mean']:.5f} / {cos['min']:.5f} | "
                     f"{row['max_abs_int8_vs_native_int8']:.3g} | "
                     f"{row['max_abs_fp32_vs_native_fp32']:.3g} | "
                     f"{row['fp32_ms'] / row['int8_ms']:.2f}x |")
    return "\n".join(lines) + "\n"


def write(out: Path, results: dict[str, Any], name: str = "int8_no_vnni") -> tuple[Path, Path]:
    return write_json_and_markdown(out, name, results, to_markdown(results))
