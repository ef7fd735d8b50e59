"""On the GPU machine: receive carried chunks, install what is complete, run named stages.

    python3 -m tools.gpu_kit.device --chunk .gpukit/cp312/chunk-02 nvdec

Every --chunk folder is verified and kept in the state folder (default /tmp/fsgpukit, which
lasts between back-to-back calls while the machine stays warm). Wheels whose parts have all
arrived are rebuilt, checked against their sha256 and installed with `pip install --no-index
--no-deps --target STATE/site`; the project's two distributions are installed from the tree
the same way into STATE/project with --project-install (metadata and console scripts; the
code itself is always imported from the tree, first on PYTHONPATH). Then the stages run in
order as child processes with that environment, each within what is left of --deadline.
Into the output folder ($OUT) go, named after the stages run: NAME.log (all this call
printed), NAME-status.json (chunks present and missing, wheels installed, each stage's exit
code and seconds) and NAME-results.tar.gz (the results folder and logs so far, cumulative).
Every step is idempotent: repeating a call is safe.

--rehearsal runs the same steps on a machine without a GPU: GPU steps report themselves
skipped instead of failing and sizes shrink so that each stage takes seconds to minutes.
Standard library only up to the stages' child processes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from tools.gpu_kit.chunks import KitError, Receiver

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_STATE = Path("/tmp/fsgpukit")
BUNDLE_LIMIT_BYTES = 15 << 20  # one file back from the device is at most 16 MiB


@dataclass
class Context:
    repo: Path  # the working tree (repository root)
    state: Path  # kept between calls: parts, wheels, site, packages, results, logs
    out: Path  # what comes back from the call
    env: dict[str, str]  # environment of every child process
    rehearsal: bool  # no GPU here: GPU steps report skipped
    deadline: float  # time.monotonic() by which the stages must have returned
    variants: list[str]  # model variants for the network stage
    machine: str  # results folder name: the GPU's name where one exists
    verify_builds: bool  # run fsexport's parity checks when building packages
    log: Callable[[str], None]
    notes: list[str] = field(default_factory=list)  # lines for the status file
    on_checkpoint: Callable[[], None] | None = None  # bundles what is measured so far into $OUT

    def checkpoint(self) -> None:
        """Write this call's files now: a call cut off at its limit still returns them."""
        if self.on_checkpoint is not None:
            self.on_checkpoint()

    @property
    def results(self) -> Path:
        """Results folder named after the machine, as benchmarks/results/<machine>/."""
        return self.state / "results" / self.machine

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def python(self) -> str:
        return sys.executable

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, command: list[str], name: str, timeout: float | None = None,
            env: dict[str, str] | None = None) -> int:
        """A child process in the repo, its output into logs/NAME.log and this call's log."""
        budget = self.remaining() - 15
        timeout = budget if timeout is None else min(timeout, budget)
        if timeout < 5:
            self.log(f"[{name}] not started: {self.remaining():.0f} s left before the deadline")
            return 124
        self.logs.mkdir(parents=True, exist_ok=True)
        self.log(f"[{name}] $ {' '.join(command)}  (timeout {timeout:.0f} s)")
        started = time.monotonic()
        with open(self.logs / f"{name}.log", "a", encoding="utf-8") as log_file:
            child = subprocess.Popen(command, cwd=self.repo, env={**self.env, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            rc = _pump(child, log_file, self.log, name, started + timeout)
        self.log(f"[{name}] exit {rc} after {time.monotonic() - started:.0f} s")
        return rc


def _pump(child: subprocess.Popen, log_file: TextIO, log: Callable[[str], None], name: str,
          stop_at: float) -> int:
    """Copy a child's output line by line until it exits or its time is up (then kill it).

    Reads whatever is there (no readline), so a child printing a progress bar without a
    newline cannot hold the deadline off.
    """
    import selectors  # noqa: PLC0415

    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    fd, pending = child.stdout.fileno(), b""

    def emit(raw: bytes) -> None:
        for line in raw.replace(b"\r", b"\n").decode("utf-8", "replace").splitlines():
            if line.strip():
                log_file.write(line + "\n")
                log(f"[{name}] {line}")

    while True:
        left = stop_at - time.monotonic()
        if left <= 0:
            os.killpg(child.pid, 9)  # its own session: the child and what it started
            child.wait()
            emit(pending)
            log(f"[{name}] killed: out of time")
            return 124
        if not selector.select(timeout=min(left, 5.0)):
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            emit(pending)
            return child.wait()
        *lines, pending = (pending + data).split(b"\n")
        emit(b"\n".join(lines))


def machine_folder(env: dict[str, str]) -> str:
    """benchmarks.sysinfo.machine_name() in a child (it is the GPU's name where one exists)."""
    code = "from benchmarks.sysinfo import machine_name; print(machine_name())"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                            text=True)
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else "unknown-machine"


def nvidia_library_dirs() -> list[str]:
    """lib folders of this Python's nvidia-* packages (CUDA 13: nvidia/cu13/lib, nvidia/cudnn/lib).

    onnxruntime-gpu's providers dlopen cuBLAS, cuRAND, cuFFT, cudart and cuDNN by soname;
    installed with --target they do not find torch's copies on their own (its preload looks
    beside itself), so the dynamic loader is told where they are.
    """
    import importlib.util  # noqa: PLC0415

    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    roots = list(spec.submodule_search_locations or []) if spec else []
    return sorted(str(lib) for root in roots for lib in Path(root).glob("*/lib") if lib.is_dir())


def stage_env(state: Path, repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [repo / "runtime" / "src", repo / "export" / "src", repo, state / "site",
             state / "project"]
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths]
                                        + [p for p in [env.get("PYTHONPATH")] if p])
    env["PATH"] = os.pathsep.join([str(state / "project" / "bin"), str(state / "site" / "bin"),
                                   env.get("PATH", "")])
    libraries = nvidia_library_dirs() + [p for p in [env.get("LD_LIBRARY_PATH")] if p]
    if libraries:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
    env["FSRUN_CACHE_DIR"] = str(state / "fsrun-cache")
    env["FSRUN_CONFIG_DIR"] = str(state / "fsrun-config")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pip_target(target: Path, items: list[str], log: Callable[[str], None],
                extra: list[str] | None = None) -> bool:
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--target",
               str(target), *(extra or []), *items]
    log("$ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    for line in (result.stdout + result.stderr).strip().splitlines()[-8:]:
        log("  " + line)
    return result.returncode == 0


def cross_install_args(python_version: str) -> list[str]:
    """pip options that install wheels for another Python and manylinux x86-64 (a check of the
    kit on a machine that is not its target; what is installed cannot be imported there)."""
    from tools.gpu_kit.download import platform_args  # noqa: PLC0415

    return platform_args(python_version)


def install_kit(receiver: Receiver, state: Path, log: Callable[[str], None],
                pip_args: list[str] | None = None) -> list[str]:
    """pip-install each verified wheel not installed yet; returns the installed file names."""
    record = state / "installed.json"
    installed = json.loads(record.read_text()) if record.is_file() else {}
    manifest = receiver.manifest
    shas = {f.name: f.sha256 for f in manifest.files} if manifest else {}
    new = [p for p in receiver.assemble() if installed.get(p.name) != shas.get(p.name)]
    if new:
        started = time.monotonic()
        if not _pip_target(state / "site", [str(p) for p in new], log, pip_args):
            raise KitError("pip could not install " + ", ".join(p.name for p in new))
        installed.update({p.name: shas[p.name] for p in new})
        record.write_text(json.dumps(installed, indent=1) + "\n")
        log(f"installed {', '.join(p.name for p in new)} in {time.monotonic() - started:.0f} s")
    return sorted(installed)


def install_project(state: Path, repo: Path, log: Callable[[str], None]) -> bool:
    """fsrun and fsexport from the tree, without dependencies (once per machine)."""
    marker, failed = state / ".project-installed", state / ".project-install-failed"
    if marker.is_file() or failed.is_file():
        return marker.is_file()
    sources = state / "project-src"  # pip builds in the source folder: not in the tree
    shutil.rmtree(sources, ignore_errors=True)
    for name in ("runtime", "export"):
        shutil.copytree(repo / name, sources / name,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    ok = _pip_target(state / "project", [str(sources / "runtime"), str(sources / "export")], log,
                     ["--no-build-isolation"])
    (marker if ok else failed).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    if not ok:
        log("the project's distributions did not install (not retried on this machine); the "
            "tree is on PYTHONPATH anyway: no console scripts, no version metadata")
    return ok


def bundle(ctx: Context, name: str, status: dict) -> list[Path]:
    """NAME-status.json and NAME-results.tar.gz (results and logs so far) into the out folder."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    status_path = ctx.out / f"{name}-status.json"
    status_path.write_text(json.dumps(status, indent=1) + "\n", encoding="utf-8")
    archive = ctx.out / f"{name}-results.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for folder in (ctx.state / "results", ctx.logs):
            if folder.is_dir():
                tar.add(folder, arcname=folder.relative_to(ctx.state))
        tar.add(status_path, arcname="status.json")
    if archive.stat().st_size > BUNDLE_LIMIT_BYTES:  # keep the results; drop the logs
        with tarfile.open(archive, "w:gz") as tar:
            if (ctx.state / "results").is_dir():
                tar.add(ctx.state / "results", arcname="results")
            tar.add(status_path, arcname="status.json")
        ctx.log(f"{archive.name}: logs left out to stay under 16 MiB (they are in {ctx.logs})")
    return [status_path, archive]


def parse_args(argv: list[str] | None, stage_names: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m tools.gpu_kit.device",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="*", metavar="STAGE",
                        help=f"stages to run in order: {', '.join(stage_names)}")
    parser.add_argument("--chunk", action="append", default=[], type=Path,
                        help="carried chunk folder (repeatable)")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE,
                        help=f"kept between calls [default: {DEFAULT_STATE}]")
    parser.add_argument("--out", type=Path, default=None,
                        help="what comes back [default: $OUT, else STATE/out]")
    parser.add_argument("--deadline", type=float, default=560,
                        help="seconds from start by which every stage has returned")
    parser.add_argument("--variants", default="tiny,effv2s,effv2m,effv2l",
                        help="model variants of the network stage")
    parser.add_argument("--rehearsal", action="store_true",
                        help="no GPU here: GPU steps report skipped; small sizes")
    parser.add_argument("--verify-builds", action="store_true",
                        help="keep fsexport's ONNX Runtime vs PyTorch checks in package builds")
    parser.add_argument("--cross-python", default=None, metavar="VERSION",
                        help="install the wheels for another Python (checks a kit on a machine "
                             "that is not its target)")
    parser.add_argument("--project-install", action="store_true",
                        help="also pip-install fsrun and fsexport from the tree (--no-deps) for "
                             "their metadata and console scripts; the code runs from the tree "
                             "through PYTHONPATH either way")
    args = parser.parse_args(argv)
    unknown = [s for s in args.stages if s not in stage_names]
    if unknown:
        parser.error(f"unknown stage {', '.join(unknown)}; choose from {', '.join(stage_names)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from tools.gpu_kit.stages import STAGES, run_stage  # noqa: PLC0415

    started = time.monotonic()
    args = parse_args(argv, list(STAGES))
    out = args.out or Path(os.environ.get("OUT") or args.state / "out")
    out.mkdir(parents=True, exist_ok=True)
    name = "_".join(args.stages) or "receive"
    log_file = open(out / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115

    def log(line: str) -> None:
        stamp = f"{time.monotonic() - started:6.1f}s"
        print(f"{stamp} {line}", flush=True)
        log_file.write(f"{stamp} {line}\n")
        log_file.flush()

    args.state.mkdir(parents=True, exist_ok=True)
    receiver = Receiver(args.state)
    status: dict = {"stages": {}, "errors": []}
    for chunk in args.chunk:
        try:
            entry = receiver.receive(chunk)
            log(f"chunk {entry.index} verified and kept ({entry.size / 2**20:.1f} MiB)")
        except KitError as exc:
            log(f"CHUNK REJECTED: {exc}")
            status["errors"].append(str(exc))
    try:
        status["installed"] = install_kit(
            receiver, args.state, log,
            cross_install_args(args.cross_python) if args.cross_python else None)
    except KitError as exc:
        log(f"INSTALL FAILED: {exc}")
        status["errors"].append(str(exc))
    manifest = receiver.manifest
    status.update({"kit": manifest.kit_id if manifest else None, "present": receiver.present(),
                   "missing": receiver.missing()})
    log(f"kit {status['kit']}: chunks present {status['present']}, missing {status['missing']}")
    if args.project_install and not args.cross_python:
        install_project(args.state, REPO, log)
    env = stage_env(args.state, REPO)
    ctx = Context(REPO, args.state, out, env, args.rehearsal, started + args.deadline,
                  [v for v in args.variants.split(",") if v], machine_folder(env),
                  args.verify_builds, log)
    ctx.on_checkpoint = lambda: bundle(ctx, name, {**status, "notes": ctx.notes,
                                                   "seconds": round(time.monotonic() - started, 1),
                                                   "partial": True})
    for stage in args.stages:
        status["stages"][stage] = run_stage(ctx, stage)
        ctx.checkpoint()
    status["notes"] = ctx.notes
    status["seconds"] = round(time.monotonic() - started, 1)
    for path in bundle(ctx, name, status):
        log(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    log_file.close()
    failed = status["errors"] or any(s["rc"] != 0 for s in status["stages"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
