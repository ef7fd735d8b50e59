"""One measured run in a fresh process: `python -m benchmarks.probe '<json>'`.

Running each configuration in its own process gives a clean peak RSS (VmHWM of that process
alone) and its CPU time, so utilization = (user + system) / wall / cores. The JSON result goes to
stdout as the last line. Kinds: "fsrun" (fsrun.run.pipeline.process_video) and "baseline".
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.devices import DeviceMemoryPoller


def spinning_factory(allow_spinning: str) -> Any:
    """Backend factory whose CPU sessions set ONNX Runtime's intra-op spin-waiting explicitly.

    Spinning threads keep a core busy between operators; when the decode thread needs that core
    the two fight over it. This lets the benchmark measure both settings in real runs.
    """
    from fsrun.backends import create_backend  # noqa: PLC0415

    def factory(name: str, path: Path, options: Any) -> Any:
        backend = create_backend(name, path, options)
        if name != "cpu":
            return backend
        import onnxruntime as ort  # noqa: PLC0415

        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        session_options.add_session_config_entry("session.intra_op.allow_spinning", allow_spinning)
        backend.session = ort.InferenceSession(str(path), session_options,
                                               providers=["CPUExecutionProvider"])
        return backend

    return factory


def _run_fsrun(args: dict[str, Any]) -> dict[str, Any]:
    from fsrun.memory import limit_malloc_arenas  # noqa: PLC0415
    from fsrun.run.pipeline import RunHooks, SessionSpec, VideoRequest, process_video  # noqa: PLC0415

    limit_malloc_arenas()  # as the fsrun command does

    spinning = args.get("ort_spinning")
    spec = SessionSpec(model=Path(args["package"]), backend=args.get("backend", "cpu"),
                       decoder=args.get("decoder", "auto"), resize=args.get("resize", "auto"),
                       batch=int(args.get("batch", 16)), use_cache=False,
                       precision=args.get("precision", "auto"),
                       threads=int(args.get("threads", 0)))
    request = VideoRequest(video=Path(args["video"]), output=Path(args["output"]),
                           stride=int(args["stride"]), force=True)
    hooks = RunHooks(quiet=True, progress=False,
                     backend_factory=spinning_factory(spinning) if spinning is not None else None)
    return process_video(spec, request, hooks).report


def _run_baseline(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.baseline import BaselineConfig, run_baseline  # noqa: PLC0415

    return run_baseline(BaselineConfig(package=Path(args["package"]), video=Path(args["video"]),
                                       stride=int(args["stride"]),
                                       backend=args.get("backend", "cpu"),
                                       threads=int(args.get("threads", 0))))


KINDS = {"fsrun": _run_fsrun, "baseline": _run_baseline}


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    VmHWM belongs to the address space exec() created, whereas ru_maxrss also counts the
    parent's memory that the child held between fork() and exec().
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main() -> None:
    args = json.loads(sys.argv[1])
    import benchmarks.baseline  # noqa: F401, PLC0415 - imports first, so the RSS before the
    import fsrun.run.pipeline  # noqa: F401, PLC0415 - run is the libraries' share alone

    rss_before = peak_rss_mib()
    wall = time.perf_counter()
    report = KINDS[args["kind"]](args)
    wall = time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result = {"report": report, "wall_s": wall, "cpu_user_s": usage.ru_utime,
              "cpu_system_s": usage.ru_stime,
              "cpu_util_pct_of_machine": 100.0 * cpu / wall / max(1, cores or 1),
              "cpu_cores_busy": cpu / wall,
              "peak_rss_mib": peak_rss_mib(),
              "peak_rss_after_imports_mib": rss_before}
    print(json.dumps(result))


def run_probe(args: dict[str, Any], timeout_s: float = 3600) -> dict[str, Any]:
    """Run one configuration in a child process; adds peak GPU memory where nvidia-smi exists."""
    command = [sys.executable, "-m", "benchmarks.probe", json.dumps(args)]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=root, env=env)
    with DeviceMemoryPoller(child.pid) as poller:
        try:
            out, err = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            raise RuntimeError(f"probe {args['kind']} timed out after {timeout_s} s") from None
    if child.returncode != 0:
        tail = (err or "").strip().splitlines()[-5:]
        raise RuntimeError(f"probe {args['kind']} failed ({child.returncode}): " + " | ".join(tail))
    result = json.loads(out.strip().splitlines()[-1])
    if poller.enabled:
        result["peak_device_mib"] = poller.peak_mib
    return result


if __name__ == "__main__":
    main()
