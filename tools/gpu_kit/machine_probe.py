"""What a GPU machine has, in seconds: `python -m tools.gpu_kit.machine_probe --out F`.

Each check runs in its own child process (a native library that crashes or hangs costs that
check, not the probe) and prints one JSON line. Checked: nvidia-smi, Python, disk, library
versions, PyTorch's CUDA, the driver's video libraries NVDEC needs, whether the carried wheels
import, which ONNX Runtime providers start a session (CUDA, and TensorRT, whose libraries are
not carried), whether PyNvVideoCodec opens a decoder, what fsrun itself detects, and whether
every requirement of the carried wheels is met by the versions installed there.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DISTRIBUTIONS = ("torch", "cupy-cuda13x", "cupy-cuda12x", "cuda-bindings", "cuda-python", "numpy",
                 "onnx", "onnxruntime", "onnxruntime-gpu", "av", "PyNvVideoCodec", "timm", "click",
                 "pytest", "protobuf", "flatbuffers", "packaging", "setuptools",
                 "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-cufft",
                 "nvidia-curand", "nvidia-cuda-nvrtc", "fsrun", "fsexport")

_VERSIONS = f"""
import importlib.metadata as m, json
out = {{}}
for name in {DISTRIBUTIONS!r}:
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
print(json.dumps(out))
"""

_TORCH = """
import json, torch
cuda = torch.cuda.is_available()
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version(), "available": cuda,
                  "device": torch.cuda.get_device_name(0) if cuda else None,
                  "capability": list(torch.cuda.get_device_capability(0)) if cuda else None}))
"""

_AV = """
import json, av
print(json.dumps({"version": av.__version__, "file": av.__file__,
                  "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
                  "encoders": sorted(c for c in ("libx264", "libx265", "libvpx-vp9")
                                     if c in av.codecs_available)}))
"""

_NVC = """
import json, PyNvVideoCodec as nvc
out = {"version": getattr(nvc, "__version__", None), "file": nvc.__file__}
decoder = nvc.CreateDecoder(gpuid=0, codec=nvc.cudaVideoCodec.H264, cudacontext=0, cudastream=0,
                            usedevicememory=True, outputColorType=nvc.OutputColorType.RGB)
out["decoder"] = type(decoder).__name__
print(json.dumps(out))
"""

_ORT = """
import json, os, tempfile, onnxruntime as ort
out = {"version": ort.__version__, "file": ort.__file__, "device": ort.get_device(),
       "available": ort.get_available_providers(), "sessions": {}}
try:
    import onnx
    from onnx import TensorProto, helper
except ImportError:
    out["sessions"] = "not tried: onnx is not installed"
    print(json.dumps(out))
    raise SystemExit
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
path = os.path.join(tempfile.mkdtemp(), "probe.onnx")
onnx.save(model, path)
for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
    if provider not in out["available"]:
        continue
    try:
        session = ort.InferenceSession(path, providers=[provider, "CPUExecutionProvider"])
        out["sessions"][provider] = session.get_providers()
    except Exception as exc:
        out["sessions"][provider] = "error: " + str(exc)[:500]
print(json.dumps(out))
"""

_FSRUN = """
import json
from fsrun.backends import BACKENDS, is_backend_available
from fsrun.gpu import device_count
from fsrun.sources.nvdec_source import is_available
print(json.dumps({"backends": {b: is_backend_available(b) for b in BACKENDS},
                  "nvdec_source": is_available(), "cuda_devices": device_count()}))
"""

_REQUIREMENTS = """
import json, sys, importlib.metadata as m
from pathlib import Path
from packaging.requirements import Requirement
EXTRAS = {"onnxruntime-gpu": ("cuda", "cudnn")}
out = {}
for info in sorted(Path(sys.argv[1]).glob("*.dist-info")):
    meta = m.Distribution.at(info)
    name = meta.metadata["Name"]
    rows = []
    for line in meta.requires or []:
        req = Requirement(line)
        extras = ("",) + EXTRAS.get(name.lower(), ())
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        try:
            have = m.version(req.name)
        except m.PackageNotFoundError:
            have = None
        ok = have is not None and req.specifier.contains(have, prereleases=True)
        rows.append({"requirement": str(req).split(";")[0], "installed": have, "ok": ok})
    out[name] = rows
print(json.dumps(out))
"""

# check name -> (python code, needs a GPU to mean anything)
CHECKS: dict[str, tuple[str, bool]] = {
    "versions": (_VERSIONS, False),
    "torch": (_TORCH, False),
    "av": (_AV, False),
    "pynvvideocodec": (_NVC, True),
    "onnxruntime": (_ORT, False),
    "fsrun": (_FSRUN, False),
}


def _python_check(code: str, args: list[str] | None = None, timeout: float = 120) -> dict:
    try:
        result = subprocess.run([sys.executable, "-c", code, *(args or [])], capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = result.stdout.strip().splitlines()
    if result.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    tail = (result.stderr or result.stdout).strip().splitlines()[-6:]
    return {"error": f"exit {result.returncode}: " + " | ".join(tail)}


def _command(args: list[str], timeout: float = 30) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"error: {exc}"


def driver_libraries() -> dict:
    """The driver's libraries NVDEC and PyNvVideoCodec load (present only with 'video')."""
    found: dict[str, list[str]] = {}
    folders = [Path(p) for p in ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib",
                                 "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                                 "/lib/x86_64-linux-gnu")]
    folders += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    for name in ("libcuda.so", "libnvcuvid.so", "libnvidia-encode.so"):
        found[name] = sorted({str(p) for folder in folders if folder.is_dir()
                              for p in folder.glob(name + "*")})
    cache = _command(["ldconfig", "-p"]) or ""
    return {"files": found,
            "ldconfig": [line.strip() for line in cache.splitlines()
                         if any(n in line for n in ("libcuda.so", "nvcuvid", "nvidia-encode"))],
            "NVIDIA_DRIVER_CAPABILITIES": os.environ.get("NVIDIA_DRIVER_CAPABILITIES"),
            "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH")}


def unresolved_libraries(site: Path) -> dict[str, list[str]]:
    """Carried native libraries whose dependencies the dynamic loader cannot find (ldd), with
    this process's LD_LIBRARY_PATH: what a provider or decoder would fail to load."""
    patterns = ("onnxruntime/capi/*.so*", "PyNvVideoCodec/*.so*", "av/*.so")
    out: dict[str, list[str]] = {}
    for pattern in patterns:
        for library in sorted(site.glob(pattern)):
            text = _command(["ldd", str(library)]) or ""
            missing = sorted({line.split("=>")[0].strip() for line in text.splitlines()
                              if "not found" in line})
            if missing:
                out[str(library.relative_to(site))] = missing
    return out


def machine() -> dict:
    disk = {}
    for path in ("/tmp", os.getcwd()):
        usage = shutil.disk_usage(path)
        disk[path] = {"free_gib": round(usage.free / 2**30, 1),
                      "total_gib": round(usage.total / 2**30, 1)}
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"python": sys.version.split()[0], "executable": sys.executable,
            "cpus": os.cpu_count(), "memory_gib": round(memory, 1), "disk": disk,
            "load": list(os.getloadavg())}


def probe(kit_site: Path | None) -> dict:
    started = time.time()
    smi = _command(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                    "--format=csv,noheader"])
    report: dict = {"machine": machine(), "nvidia_smi": smi.strip() if smi else None,
                    "nvidia_smi_header": (_command(["nvidia-smi"]) or "").splitlines()[:4],
                    "driver_libraries": driver_libraries()}
    for name, (code, needs_gpu) in CHECKS.items():
        if needs_gpu and not smi:
            report[name] = {"skipped": "no nvidia-smi: no GPU here"}
            continue
        report[name] = _python_check(code)
    if kit_site is not None and kit_site.is_dir():
        report["requirements"] = _python_check(_REQUIREMENTS, [str(kit_site)])
        report["unresolved_libraries"] = unresolved_libraries(kit_site)
    report["seconds"] = round(time.time() - started, 1)
    return report


def summary_lines(report: dict) -> list[str]:
    ort = report.get("onnxruntime", {})
    lines = [f"GPU: {report.get('nvidia_smi') or 'none'}",
             f"python {report['machine']['python']}, {report['machine']['cpus']} CPUs, "
             f"{report['machine']['memory_gib']} GiB, /tmp free "
             f"{report['machine']['disk']['/tmp']['free_gib']} GiB",
             f"torch: {report.get('torch')}",
             f"driver video libraries: "
             f"{ {k: len(v) for k, v in report['driver_libraries']['files'].items()} }",
             f"av: {report.get('av')}", f"PyNvVideoCodec: {report.get('pynvvideocodec')}",
             f"onnxruntime: {ort.get('version')} from {ort.get('file')}; providers "
             f"{ort.get('available')}; sessions {ort.get('sessions')}" if "error" not in ort
             else f"onnxruntime: {ort}", f"fsrun: {report.get('fsrun')}"]
    for library, missing in (report.get("unresolved_libraries") or {}).items():
        lines.append(f"ldd {library}: not found {', '.join(missing)}")
    for dist, rows in (report.get("requirements") or {}).items():
        if isinstance(rows, list):
            bad = [r for r in rows if not r["ok"]]
            unmet = ", ".join(f"{r['requirement']} (installed {r['installed']})" for r in bad)
            lines.append(f"requirements of {dist}: " + (f"UNMET {unmet}" if bad else "all met"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write.")
    parser.add_argument("--kit-site", type=Path, default=None,
                        help="Folder the carried wheels were installed into.")
    args = parser.parse_args(argv)
    report = probe(args.kit_site)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print("\n".join(summary_lines(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
