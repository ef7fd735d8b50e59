"""Fetch what the GPU machine lacks (where pip works) and cut it into carryable chunks.

The GPU machine reaches no package registry and each device call carries at most 64 MiB,
the working tree included. So the wheels are downloaded here for the machine's Python
(cp312, manylinux x86-64), their requirements are checked against what the machine already
holds (device_packages.txt), anything missing is fetched too, and the lot is split into
chunk folders that each fit one call beside the tree (chunks.py).
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tools.gpu_kit.chunks import MiB, Manifest, write_kit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KIT_DIR = REPO / ".gpukit"  # git-ignored: downloads/cpXY/ and cpXY/chunk-NN/
CALL_LIMIT_BYTES = 64 * MiB  # the working tree plus carried folders, per device call
CHUNK_CAP_BYTES = 55 * MiB  # largest part, whatever the tree
TREE_HEADROOM_BYTES = 2 * MiB  # room for the tree to grow between download and GPU session
# manylinux glibc levels pip may pick (it matches each exactly); the GPU image is newer.
GLIBC_LEVELS = (17, 24, 27, 28, 31, 34, 35)


@dataclass(frozen=True)
class Wheel:
    name: str  # distribution name on PyPI
    version: str  # pinned: the kit is tested with exactly this
    extras: tuple[str, ...]  # extras whose requirements the GPU machine must meet
    why: str  # what needs it
    slim: bool = False  # carried slimmed (slim.py: sm_90 kernels only, no C API, no TensorRT EP)


# Carried in this order: the NVDEC stage needs only the first two, which come first.
WHEELS: tuple[Wheel, ...] = (
    Wheel("av", "18.1.0", (), "PyAV: fsrun's demuxer and CPU decoder; encodes the test clips"),
    Wheel("PyNvVideoCodec", "2.2.4", (), "NVDEC decoding (fsrun --decoder nvdec)"),
    # PyPI's onnxruntime-gpu is built for CUDA 13 (build_and_package_info.cuda_version '13.0');
    # CUDA, cuBLAS, cuFFT, cuRAND and cuDNN come from the nvidia-* packages torch brought.
    Wheel("onnxruntime-gpu", "1.31.1", ("cuda", "cudnn"),
          "ONNX Runtime with the CUDA execution provider", slim=True),
)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def device_packages(path: Path = HERE / "device_packages.txt") -> set[str]:
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words += line.split()
    return {normalize(w) for w in words}


def platform_args(python_version: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for level in GLIBC_LEVELS:
        args += ["--platform", f"manylinux_2_{level}_x86_64"]
    return args + ["--platform", "manylinux2014_x86_64"]


def python_tag(python_version: str) -> str:
    return "cp" + python_version.replace(".", "")


def _wheel_name(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return normalize(name), version


def pip_download(spec: str, python_version: str, dest: Path,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Path:
    """One wheel for the target Python and platform, no dependencies; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", str(dest), *platform_args(python_version), spec]
    result = run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip download {spec} failed:\n{result.stderr.strip()[-2000:]}")
    wanted = normalize(re.split(r"[<>=!~ ;\[]", spec, maxsplit=1)[0])
    pinned = spec.split("==", 1)[1] if "==" in spec else None
    found = [p for p in dest.glob("*.whl") if _wheel_name(p)[0] == wanted
             and (pinned is None or _wheel_name(p)[1] == pinned)]
    if not found:
        raise RuntimeError(f"pip download {spec}: no wheel of it in {dest}")
    return max(found, key=lambda p: p.stat().st_mtime)


def requirements(wheel: Path, extras: tuple[str, ...], python_version: str) -> list[str]:
    """Requires-Dist lines that apply on the GPU machine (base plus the named extras)."""
    from packaging.requirements import Requirement  # noqa: PLC0415

    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode("utf-8")
    applying = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        environments = [{"extra": extra, "python_version": python_version,
                         "platform_system": "Linux", "sys_platform": "linux",
                         "platform_machine": "x86_64"} for extra in ("", *extras)]
        if requirement.marker is None or any(requirement.marker.evaluate(env)
                                             for env in environments):
            applying.append(str(requirement).split(";")[0].strip())
    return applying


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of what travels with every device call: tracked and untracked-not-ignored files,
    plus a shared/ folder inside the checkout."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    paths = {repo / p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p}
    shared = repo / "shared"
    if shared.is_dir():
        paths |= {p for p in shared.rglob("*") if p.is_file()}
    return sum(p.lstat().st_size for p in paths if p.is_file() or p.is_symlink())


def chunk_budget(tree: int, limit: int = CALL_LIMIT_BYTES, cap: int = CHUNK_CAP_BYTES,
                 headroom: int = TREE_HEADROOM_BYTES) -> int:
    """Largest part that fits one call beside the tree, in whole MiB."""
    room = (limit - tree - headroom) // MiB * MiB
    if room < MiB:
        raise ValueError(f"the working tree ({tree / MiB:.1f} MiB) leaves no room for a chunk "
                         f"in a {limit / MiB:.0f} MiB call")
    return min(cap, room)


def fetch(python_version: str, dest: Path, packages: set[str],
          log: Callable[[str], None] = print) -> list[dict]:
    """Every WHEELS entry plus each requirement the GPU machine lacks, in carrying order."""
    rows: list[dict] = []
    queue = [(f"{w.name}=={w.version}", w.extras, w.why) for w in WHEELS]
    seen: set[str] = set()
    while queue:
        spec, extras, why = queue.pop(0)
        path = pip_download(spec, python_version, dest)
        name = _wheel_name(path)[0]
        if name in seen:
            continue
        seen.add(name)
        needs = requirements(path, extras, python_version)
        missing = [r for r in needs if normalize(re.split(r"[<>=!~ \[]", r, maxsplit=1)[0])
                   not in packages and normalize(re.split(r"[<>=!~ \[]", r, maxsplit=1)[0])
                   not in seen]
        rows.append({"file": path.name, "path": str(path), "bytes": path.stat().st_size,
                     "why": why, "requires": needs, "missing_on_device": missing})
        log(f"{path.name}: {path.stat().st_size / MiB:.1f} MiB; requires "
            f"{', '.join(needs) or 'nothing'}"
            + (f"; fetching what the GPU machine lacks: {', '.join(missing)}" if missing else ""))
        queue += [(r, (), f"requirement of {name}") for r in missing]
    return rows


def slimmed(rows: list[dict], folder: Path, log: Callable[[str], None] = print) -> list[dict]:
    """rows with each slim=True wheel replaced by its slimmed copy in folder (made once per
    source wheel: the copy records the source's sha256)."""
    from tools.gpu_kit.slim import slim_wheel  # noqa: PLC0415

    slim_names = {normalize(w.name) for w in WHEELS if w.slim}
    out = []
    for row in rows:
        path = Path(row["path"])
        if _wheel_name(path)[0] not in slim_names:
            out.append(row)
            continue
        target, stamp = folder / path.name, folder / (path.name + ".source-sha256")
        source_sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if not (target.is_file() and stamp.is_file() and stamp.read_text() == source_sha):
            began = time.monotonic()
            done = slim_wheel(path, target)
            stamp.write_text(source_sha)
            fatbin = done.get("fatbin", {})
            log(f"{path.name}: slimmed {done['source_bytes'] / MiB:.1f} -> "
                f"{done['target_bytes'] / MiB:.1f} MiB in {time.monotonic() - began:.0f} s "
                f"(kept sm_{done['arch']} cubins {sum(fatbin.get('kept', {}).values()) / MiB:.0f}"
                f" MiB, zeroed {sum(fatbin.get('zeroed', {}).values()) / MiB:.0f} MiB of "
                f"{sorted(fatbin.get('zeroed', {}))}; dropped {', '.join(Path(d).name for d in done['dropped'])})")
        out.append({**row, "path": str(target), "bytes": target.stat().st_size,
                    "slimmed_from": {"file": path.name, "bytes": path.stat().st_size,
                                     "sha256": source_sha}})
    return out


def build_kit(python_version: str = "3.12", kit_dir: Path = KIT_DIR, repo: Path = REPO,
              chunk_mib: int | None = None, log: Callable[[str], None] = print,
              full_ort: bool = False) -> Manifest:
    """Download, check requirements, slim onnxruntime-gpu (unless full_ort), measure the tree,
    split: kit_dir/cpXY/chunk-NN/."""
    tag = python_tag(python_version)
    rows = fetch(python_version, kit_dir / "downloads" / tag, device_packages(), log)
    if not full_ort:
        rows = slimmed(rows, kit_dir / "slim" / tag, log)
    tree = tree_bytes(repo)
    chunk = chunk_mib * MiB if chunk_mib else chunk_budget(tree)
    if tree + chunk + MiB > CALL_LIMIT_BYTES:
        raise ValueError(f"chunks of {chunk / MiB:.0f} MiB do not fit beside the "
                         f"{tree / MiB:.1f} MiB tree in one call")
    info = {"python_version": python_version, "python_tag": tag, "platform": "manylinux x86-64",
            "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "tree_bytes_at_download": tree, "wheels": [{k: v for k, v in r.items() if k != "path"}
                                                       for r in rows]}
    manifest = write_kit([Path(r["path"]) for r in rows], kit_dir / tag, chunk, info)
    log(f"working tree {tree / MiB:.2f} MiB; {len(manifest.chunks)} chunks of at most "
        f"{chunk / MiB:.0f} MiB ({manifest.total_bytes / MiB:.1f} MiB in all) in "
        f"{kit_dir / tag}; kit {manifest.kit_id}")
    for c in manifest.chunks:
        files = [f.name for f in manifest.files if c in manifest.chunks_of(f)]
        log(f"  {c.folder}: {c.size / MiB:5.1f} MiB  {', '.join(files)}")
    return manifest


def call_sizes(kit: Path, repo: Path = REPO) -> list[dict]:
    """What each chunk's call would carry now (tree + chunk), against the call limit."""
    manifest = Manifest.read(kit / "manifest.json")
    tree = tree_bytes(repo)
    rows = []
    for c in manifest.chunks:
        folder = kit / c.folder
        size = sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else None
        total = None if size is None else tree + size
        rows.append({"chunk": c.folder, "tree_bytes": tree, "chunk_bytes": size,
                     "call_bytes": total, "fits": total is not None and total <= CALL_LIMIT_BYTES})
    return rows


__all__ = ["WHEELS", "Wheel", "build_kit", "call_sizes", "chunk_budget", "device_packages",
           "fetch", "normalize", "platform_args", "requirements", "tree_bytes"]

