"""The stages the device script runs, by name, with what each needs before it can start.

probe     seconds: machine, driver libraries, versions, carried wheels, ORT providers
packages  starts the model package builds in the background (they outlive the call)
clips     renders every clip the later stages read (PyAV only), while the wheels still travel
nvdec     the NVDEC source's needs_cuda tests, then `python -m benchmarks nvdec`
network   `python -m benchmarks run` for effv2s first (the headline: ORT CUDA fp16 from a 1080p
          H.264 file against PyTorch eager fp16, NVDEC vs PyAV), then every needs_cuda test
          (once per machine), then the other variants (fp16 only for M and L); every variant
          leaves its rows in the results before the next starts
"""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tools.gpu_kit.device import Context

_FOUND = "import importlib.util as u, sys; sys.exit(u.find_spec({!r}) is None)"
# Name -> code that exits 0 when the requirement is met in the stages' environment.
REQUIREMENTS: dict[str, str] = {
    "av": "import av",
    "PyNvVideoCodec": _FOUND.format("PyNvVideoCodec"),
    "onnxruntime-gpu": ("import onnxruntime as o, sys; "
                        "sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"),
    "torch": _FOUND.format("torch"),  # importing it takes seconds; finding it is enough
}

# `python -m benchmarks run` on the GPU: 1080p H.264 as the targets state, one 60 s clip for
# every variant, stride 30 only (the stride targets are the CPU's; the GPU's are frames/s and
# overhead, which one stride measures). Sized for the 15-minute session (README's plan).
GPU_CLIP = {"width": 1920, "height": 1080, "seconds": 60.0}  # the clip `clips` renders ahead
GPU_RUN_ARGS = ["--size", "1920x1080", "--seconds", "60", "--repeats", "2",
                "--stage-repeats", "2", "--strides", "30", "--e2e-repeats", "1",
                "--rss-seconds", "0", "--spin-variants", "", "--graph-resize-variants", "",
                "--baseline-variants", "effv2s"]
# Per variant: encoder batch sizes and precisions. effv2s carries the headline targets (both
# precisions); M and L their fp16 frames/s; tiny, last, the plumbing at large batches.
GPU_VARIANT_ARGS: dict[str, list[str]] = {
    "effv2s": ["--batch-sizes", "16,64", "--precisions", "fp16,fp32"],
    "effv2m": ["--batch-sizes", "16", "--precisions", "fp16", "--no-torch-eager"],
    "effv2l": ["--batch-sizes", "16", "--precisions", "fp16", "--no-torch-eager"],
    "tiny": ["--batch-sizes", "64", "--precisions", "fp16"],
}
GPU_FRAMES = {"tiny": 4096, "effv2s": 1024, "effv2m": 512, "effv2l": 512}  # per encoder point
HEADLINE_VARIANT = "effv2s"  # measured before the needs_cuda tests
REHEARSAL_RUN_ARGS = ["--size", "160x96", "--seconds", "2", "--batch-sizes", "1,4",
                      "--repeats", "1", "--stage-repeats", "1", "--strides", "30",
                      "--rss-seconds", "0", "--spin-rounds", "1", "--graph-resize-variants", ""]
REHEARSAL_FRAMES = 8
# NVDEC: both comparison sizes and codecs, throughput with one decoder and with the H100's 7.
GPU_NVDEC_ARGS = ["--require-nvdec", "--parallel", "1,7", "--pyav-parallel", "1"]
REHEARSAL_NVDEC_ARGS = ["--compare-sizes", "96x64", "--compare-seconds", "1", "--size", "160x96",
                        "--seconds", "1", "--min-seconds", "0.5", "--parallel", "1,2",
                        "--pyav-parallel", "1,2"]
MIN_VARIANT_SECONDS = 90  # a variant's benchmark is not started with less time left
BUILD_WAIT_SECONDS = 900  # longest wait for a background package build


@dataclass(frozen=True)
class Stage:
    run: Callable[[Context], int]  # returns the exit code
    needs: tuple[str, ...]  # REQUIREMENTS that must be met, or the stage waits for its chunks
    gpu_needs: tuple[str, ...]  # also needed on the GPU machine; a rehearsal runs without them
    about: str


def _pytest(ctx: Context, name: str, selection: list[str], timeout: float) -> int:
    env = {} if ctx.rehearsal else {"FAIL_WITHOUT_CUDA": "1"}
    junit = ctx.results / f"pytest-{name}.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    return ctx.run([ctx.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                    f"--junitxml={junit}", *selection], f"pytest-{name}", timeout, env)


def probe(ctx: Context) -> int:
    ctx.results.mkdir(parents=True, exist_ok=True)
    rc = ctx.run([ctx.python, "-m", "tools.gpu_kit.machine_probe", "--out",
                  str(ctx.results / "probe.json"), "--kit-site", str(ctx.state / "site")],
                 "probe", timeout=240)
    try:
        text = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True,
                              timeout=30).stdout
        (ctx.results / "nvidia-smi.txt").write_text(text, encoding="utf-8")
    except (OSError, subprocess.SubprocessError):
        ctx.notes.append("nvidia-smi -q: not available")
    return rc


# ---- packages: fsexport builds in their own sessions, so they outlive the call ----

def _packages(ctx: Context) -> Path:
    return ctx.state / "packages"


# fsexport's build without the CLI, so that the parity checks can be left out: on a CPU they
# take 60% of an effv2s build (ONNX Runtime runs fp16 slowly there), and the GPU's numerics are
# checked by the needs_cuda tests. meta.json then records no parity results.
BUILD_CODE = ("import sys; from pathlib import Path; "
              "from fsexport.build import BuildConfig, build_package; "
              "build_package(BuildConfig(variant=sys.argv[1], output=Path(sys.argv[2]), "
              "force=True, set_default=False, verify=sys.argv[3] == \"verify\"))")


def _verify(ctx: Context) -> str:
    return "verify" if ctx.verify_builds else "no-verify"


def _build_state(ctx: Context, variant: str) -> str:
    """'done', 'running', 'failed' or 'absent'."""
    folder = _packages(ctx)
    rc_file, pid_file = folder / f".{variant}.rc", folder / f".{variant}.pid"
    if rc_file.is_file():
        done = rc_file.read_text().strip() == "0"
        if done and (folder / f"{variant}.fsmodel" / "meta.json").is_file():
            return "done"
        return "failed"
    if pid_file.is_file():
        try:
            os.kill(int(pid_file.read_text()), 0)
            return "running"
        except (OSError, ValueError):
            return "failed"
    return "absent"


def start_build(ctx: Context, variant: str, threads: int) -> None:
    folder = _packages(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{variant}.rc").unlink(missing_ok=True)
    ctx.logs.mkdir(parents=True, exist_ok=True)
    log = ctx.logs / f"build-{variant}.log"
    build = shlex.join([ctx.python, "-c", BUILD_CODE, variant, str(folder), _verify(ctx)])
    rc_file = shlex.quote(str(folder / f".{variant}.rc"))
    command = f"{build} > {shlex.quote(str(log))} 2>&1; echo $? > {rc_file}"
    env = {**ctx.env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    child = subprocess.Popen(["sh", "-c", command], cwd=ctx.repo, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    (folder / f".{variant}.pid").write_text(str(child.pid))
    ctx.log(f"build {variant}: started in the background (pid {child.pid}, {threads} threads, "
            f"log {log})")


def packages(ctx: Context) -> int:
    """Start a background build of every requested variant not built or building yet."""
    todo = [v for v in ctx.variants if _build_state(ctx, v) in ("absent", "failed")]
    threads = max(1, (os.cpu_count() or 1) // max(1, len(todo)))
    for variant in todo:
        start_build(ctx, variant, threads)
    for variant in ctx.variants:
        if variant not in todo:
            ctx.log(f"build {variant}: {_build_state(ctx, variant)}")
    return 0


def package_for(ctx: Context, variant: str) -> Path | None:
    """The variant's package: built already, waited for, or built now in the foreground."""
    path = _packages(ctx) / f"{variant}.fsmodel"
    waited = time.monotonic()
    while _build_state(ctx, variant) == "running":
        if time.monotonic() - waited > min(BUILD_WAIT_SECONDS, ctx.remaining() - 60):
            ctx.log(f"build {variant}: still running; giving up waiting")
            return None
        time.sleep(5)
    state = _build_state(ctx, variant)
    if state == "done":
        ctx.log(f"build {variant}: ready (waited {time.monotonic() - waited:.0f} s)")
        return path
    if state == "failed":
        ctx.log(f"build {variant}: the background build failed (logs/build-{variant}.log); "
                f"building again")
    rc = ctx.run([ctx.python, "-c", BUILD_CODE, variant, str(_packages(ctx)), _verify(ctx)],
                 f"build-{variant}")
    (_packages(ctx) / f".{variant}.rc").write_text(f"{rc}\n")
    return path if rc == 0 else None


# ---- clips ----

CLIPS_CODE = """
import sys
from pathlib import Path
from benchmarks.nvdec import NvdecConfig, clips_for
from benchmarks.videos import ClipParams, make_clip
folder, width, height = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(make_clip(ClipParams(width=width, height=height, seconds=float(sys.argv[4])), folder))
if sys.argv[5] == "nvdec":
    for clip in clips_for(NvdecConfig(clips_dir=folder)):
        print(clip)
"""


def clips(ctx: Context) -> int:
    """The network clip and the NVDEC clips, rendered into STATE/clips where the later stages
    look for them (make_clip reuses a clip that is there)."""
    size = (160, 96, 2.0) if ctx.rehearsal else tuple(GPU_CLIP.values())
    return ctx.run([ctx.python, "-c", CLIPS_CODE, str(ctx.state / "clips"), *map(str, size),
                    "skip" if ctx.rehearsal else "nvdec"], "clips", timeout=240)


# ---- nvdec ----

def nvdec(ctx: Context) -> int:
    rc_tests = _pytest(ctx, "nvdec", ["-m", "needs_cuda", "-k", "nvdec", "tests/gpu"], 240)
    args = REHEARSAL_NVDEC_ARGS if ctx.rehearsal else GPU_NVDEC_ARGS
    rc_bench = ctx.run([ctx.python, "-m", "benchmarks", "nvdec", "--out", str(ctx.results),
                        "--clips-dir", str(ctx.state / "clips"), *args], "bench-nvdec")
    return rc_tests or rc_bench


# ---- network ----

def gpu_backends(ctx: Context) -> list[str]:
    """GPU backends ONNX Runtime offers, if a CUDA device answers (the providers are listed
    by onnxruntime-gpu whether or not a GPU or TensorRT is there)."""
    code = ("from fsrun.backends import is_backend_available as a; from fsrun.gpu import "
            "device_count; print(','.join(b for b in ('cuda', 'tensorrt') "
            "if device_count() and a(b)))")
    result = subprocess.run([ctx.python, "-c", code], cwd=ctx.repo, env=ctx.env,
                            capture_output=True, text=True)
    return [b for b in result.stdout.strip().split(",") if b]


def needs_cuda_tests(ctx: Context) -> int:
    """Every needs_cuda test with FAIL_WITHOUT_CUDA=1, once per machine."""
    marker = ctx.state / ".needs-cuda-tests-passed"
    if marker.is_file():
        ctx.log("needs_cuda tests passed earlier on this machine; not repeated")
        return 0
    rc = _pytest(ctx, "needs-cuda", ["-m", "needs_cuda", "tests"], 240)
    if rc == 0:
        marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    ctx.checkpoint()
    return rc


def _network_order(ctx: Context) -> list[str]:
    """The headline variant first, then the tests, then the rest in the order asked."""
    order = [HEADLINE_VARIANT] if HEADLINE_VARIANT in ctx.variants else []
    return order + ["needs-cuda-tests"] + [v for v in ctx.variants if v not in order]


def network(ctx: Context) -> int:
    rc = 0
    backends = gpu_backends(ctx)
    if not backends:
        if not ctx.rehearsal:
            ctx.log("ONNX Runtime offers no GPU provider: nothing to measure")
            return 3
        backends = ["cpu"]
        ctx.notes.append("rehearsal: no GPU backend; measured on the CPU backend, GPU rows "
                         "(NVDEC, CUDA, TensorRT, PyTorch eager) skipped")
    ctx.log(f"network: backends {', '.join(backends)}; order {', '.join(_network_order(ctx))}")
    for variant in _network_order(ctx):
        if variant == "needs-cuda-tests":
            rc = needs_cuda_tests(ctx) or rc
            continue
        if ctx.remaining() < MIN_VARIANT_SECONDS:
            ctx.notes.append(f"{variant}: not started, {ctx.remaining():.0f} s left; "
                             f"run `network --variants {variant}` in the next call")
            ctx.log(ctx.notes[-1])
            rc = rc or 124
            continue
        package = package_for(ctx, variant)
        if package is None:
            ctx.notes.append(f"{variant}: no package (build failed or still running)")
            rc = rc or 4
            continue
        frames = str(REHEARSAL_FRAMES if ctx.rehearsal else GPU_FRAMES.get(variant, 512))
        args = (REHEARSAL_RUN_ARGS if ctx.rehearsal
                else GPU_RUN_ARGS + GPU_VARIANT_ARGS.get(variant, []))
        rc = ctx.run([ctx.python, "-m", "benchmarks", "run", "--package", str(package),
                      "--out", str(ctx.results), "--clips-dir", str(ctx.state / "clips"),
                      "--backends", ",".join(backends), "--append",
                      "--throughput-frames", f"{variant}={frames}",
                      "--stage-frames", f"{variant}={frames}", *args],
                     f"bench-{variant}") or rc
        ctx.checkpoint()  # this variant's rows come back even if the call is cut off later
    return rc


STAGES: dict[str, Stage] = {
    "probe": Stage(probe, (), (), "machine, drivers, versions, carried wheels (seconds)"),
    "packages": Stage(packages, ("torch",), (), "start the package builds in the background"),
    "clips": Stage(clips, ("av",), (), "render the clips the later stages read"),
    "nvdec": Stage(nvdec, ("av",), ("PyNvVideoCodec",), "NVDEC tests and benchmark"),
    "network": Stage(network, ("av", "torch"), ("PyNvVideoCodec", "onnxruntime-gpu"),
                     "needs_cuda tests and the benchmark per variant"),
}


def unmet(ctx: Context, names: tuple[str, ...]) -> list[str]:
    missing = []
    for name in names:
        result = subprocess.run([ctx.python, "-c", REQUIREMENTS[name]], cwd=ctx.repo,
                                env=ctx.env, capture_output=True)
        if result.returncode != 0:
            missing.append(name)
    return missing


def run_stage(ctx: Context, name: str) -> dict:
    """Run one stage if what it needs is there; its exit code, seconds and why it did not run."""
    stage, started = STAGES[name], time.monotonic()
    missing = unmet(ctx, stage.needs)
    gpu_missing = unmet(ctx, stage.gpu_needs)
    if missing or (gpu_missing and not ctx.rehearsal):
        reason = f"not run: {', '.join(missing + gpu_missing)} not installed yet (chunks missing?)"
        ctx.log(f"== {name}: {reason}")
        return {"rc": 3, "seconds": 0.0, "reason": reason}
    if gpu_missing:
        ctx.notes.append(f"rehearsal: {name} runs without {', '.join(gpu_missing)}")
    ctx.log(f"== {name}: {stage.about}")
    rc = stage.run(ctx)
    seconds = round(time.monotonic() - started, 1)
    ctx.log(f"== {name}: exit {rc} after {seconds:.0f} s")
    return {"rc": rc, "seconds": seconds}
