"""A seed-contract ONNX file -> a verified model package (see the package docstring)."""
from __future__ import annotations

import glob
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import fsrun
from fsrun import config as user_config
from fsrun.files.atomic import os_reason
from fsrun.errors import MissingDependencyError, ModelError, UsageError
from fsrun.files.fingerprint import sha256_files
from fsrun.files.locking import FileLock
from fsrun.model.package import (GRAPH_FILES, META_NAME, ModelMeta, sha256_file,
                           write_package_dir)
from fsrun.signals import raise_if_interrupted

Log = Callable[[str], None]
ONNX_SUFFIX = ".onnx"
DEFAULT_FPS = 30.0  # model files do not record the frame rate they were trained at


@dataclass(frozen=True)
class OnnxImport:
    source: Path  # the creator's .onnx file
    target: Path  # the package directory to write
    fps: float = DEFAULT_FPS  # frame rate the model was trained at (the file does not say)
    fp16: bool = True  # also write *.fp16.onnx for GPU backends
    composite: bool = True  # also write model.onnx (the original behind the uint8 front)
    split_at: str | None = None  # embedding tensor to cut at (default: found automatically)
    force: bool = False  # replace an existing package directory

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise UsageError(f"--fps must be positive, got {self.fps}")


def is_onnx_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX and Path(path).is_file()


def _onnx():
    try:
        import onnx  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("onnx (to cut a .onnx model into a package)",
                                     "onnx") from None
    return onnx


def import_onnx(job: OnnxImport, log: Log) -> ModelMeta:
    """Cut job.source into encoder, head (and composite) graphs, check every one against the
    original in ONNX Runtime and write the package at job.target; ModelError (exit 4) in one
    line for a file that does not fit the contract."""
    onnx = _onnx()
    from fsrun.onnx_door import check, surgery  # noqa: PLC0415
    from fsrun.model.parity import ParityReport  # noqa: PLC0415

    source = Path(job.source)
    data_files = model_files(source)[1:]  # refuses weights outside the model's folder
    log(f"read    {source}")
    original = surgery.load(source)
    surgery.rename_reserved(original)
    c = surgery.contract(original, source)
    candidates = surgery.split_candidates(original, c, job.split_at, source)
    opset = max(o.version for o in original.opset_import if o.domain in ("", "ai.onnx"))
    producer = f"{original.producer_name} {original.producer_version}".strip()
    kinds = ["encoder", "head", *(["model"] if job.composite else [])]
    # package graph kind -> its graph from (original, contract, embedding tensor, its width)
    makers: dict[str, Callable] = {
        "encoder": lambda m, c, e, d: surgery.encoder_graph(m, c, e),
        "head": surgery.head_graph,
        "model": lambda m, c, e, d: surgery.composite_graph(m, c)}

    def fill(staging: Path) -> ModelMeta:
        # One copy of the weights at a time: the original goes to a file that ONNX Runtime
        # reads (with the candidates as outputs) and leaves memory while the reference runs.
        nonlocal original
        probe = staging / PROBE_NAME
        surgery.save_probe(original, [c.output_name, *candidates], probe)
        original = None
        windows = check.reference_windows(source.name, c)
        values = check.run_reference(probe, c, windows, [c.output_name, *candidates])
        embedding, dim = surgery.pick_embedding(candidates, *values, c, job.split_at, source)
        log(f"split   at {embedding!r} ({c.window} frames of {c.size} px -> {dim} per frame)")
        references = [(f, v[embedding], v[c.output_name]) for f, v in zip(windows, values)]
        del values
        probe.unlink()
        model = surgery.load(source)
        surgery.rename_reserved(model)
        files, notes, nodes = [], {}, {}
        for kind in kinds:
            graph = makers[kind](model, c, embedding, dim)
            nodes[kind] = len(graph.graph.node)
            files.append(_save(onnx, graph, staging, GRAPH_FILES[(kind, "fp32")], log))
            del graph
        del model
        for kind in kinds if job.fp16 else []:
            graph, note = check.to_fp16(onnx.load(str(staging / GRAPH_FILES[(kind, "fp32")])))
            name = GRAPH_FILES[(kind, "fp16")]
            if note:
                notes[name] = note
            files.append(_save(onnx, graph, staging, name, log))
            del graph
        parity = ParityReport()
        vs_original = check.verify(c, references, staging, files, parity, log)
        parity.notes.update(notes)
        provenance = {
            "door": "import-onnx",
            "source": {"file": source.name, "sha256": sha256_file(source),
                       "data_files": {p.name: sha256_file(p) for p in data_files},
                       "producer": producer, "opset": opset},
            "mapping": {"split_at": embedding, "split": "--split-at" if job.split_at else "found",
                        "embedding_dim": dim,
                        "front": f"uint8 -> Cast -> Resize(linear, half_pixel) to {c.size}x{c.size}",
                        "nodes": nodes},
            "parity_vs_original": vs_original,
        }
        return _meta(c, job.fps, dim, files, staging, parity, provenance)

    return write_package_dir(Path(job.target), fill, job.force)


# The original with its candidate split tensors as outputs, for ONNX Runtime; removed from the
# staging folder before the package is complete.
PROBE_NAME = ".probe.onnx"


def _save(onnx, graph, staging: Path, name: str, log: Log) -> str:
    log(f"write   {name}")
    onnx.save(graph, str(staging / name))
    return name


def _meta(c, fps: float, dim: int, files: list[str], staging: Path, parity, provenance: dict
          ) -> ModelMeta:
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    return ModelMeta(
        variant="imported-onnx", backbone="onnx-graph",
        input_size=c.size, window=c.window, fps=fps, embedding_dim=dim,
        normalization={"mean": None, "std": None},  # inside the original graph, not recovered
        trained=True, files={name: sha256_file(staging / name) for name in sorted(files)},
        parity=parity.as_meta(),
        exporter={"fsrun": fsrun.__version__, "onnx": onnx.__version__,
                  "onnxruntime": onnxruntime.__version__},
        provenance=provenance)


# --- `fsrun VIDEO --model FILE.onnx`: the package kept in the user cache ----------------------

# (file and data files with size and mtime, fps, cache folder) -> its package, for the files
# this process has seen.
_MADE: dict[tuple, Path] = {}


def model_files(source: Path) -> list[Path]:
    """The .onnx file and every external data file it reads (ModelError, exit 4, for a
    location that leads out of the model's folder or a file that is not there)."""
    from fsrun.model.onnx_header import OnnxHeaderError, external_data_locations  # noqa: PLC0415

    try:
        locations = external_data_locations(source)
    except (OSError, OnnxHeaderError) as exc:
        raise ModelError(f"{source}: not a valid ONNX model ({exc})") from None
    folder = source.resolve().parent
    files = [source]
    for location in locations:
        relative = Path(location)
        inside = folder / relative
        if relative.is_absolute() or ".." in relative.parts or not _within(inside, folder):
            raise ModelError(f"{source}: its weights point to {location!r}, outside the model's "
                             "folder; a model may only read files beside it")
        if not inside.is_file():
            raise ModelError(f"{source}: its weights file {location!r} is missing")
        files.append(inside)
    return files


def _within(path: Path, folder: Path) -> bool:
    """Whether path, symlinks followed, lies inside folder."""
    try:
        path.resolve().relative_to(folder)
    except (OSError, ValueError):
        return False
    return True


def packages_dir(root: Path | None = None) -> Path:
    """Where packages cut from ONNX files by fsrun live: packages/ in the cache root."""
    return user_config.cache_root(root) / "packages"


def cached_package(source: Path | str, fps: float | None, log: Log | None = None,
                   root: Path | None = None) -> tuple[Path, str | None]:
    """(package directory, a notice or None) for an ONNX file: made the first time (one line
    says what was done and where), reused while the file's sha256 and the fps stay the same.
    Two processes asking at once make it once: the second waits for the first."""
    source = Path(source)
    fps = DEFAULT_FPS if fps is None else float(fps)
    files = model_files(source)
    seen = (tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files),
            fps, str(packages_dir(root)))
    if seen in _MADE and (_MADE[seen] / META_NAME).is_file():
        return _MADE[seen], None  # this process hashed the same files already
    digest = sha256_files(files)  # the weights in a .data file are the model too
    target = packages_dir(root) / f"{source.stem}-{digest[:16]}-{fps:g}fps.fsmodel"
    if (target / META_NAME).is_file():
        _MADE[seen] = target
        return target, None
    locks = packages_dir(root) / "locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{packages_dir(root)}: cannot keep the package cut from {source.name} "
                         f"there ({os_reason(exc)}); set $FSRUN_CACHE_DIR or use "
                         "`fsexport import`") from None
    def waiting(seconds: float) -> None:
        if log is not None:
            log(f"another fsrun is cutting {source.name} into a package; waiting for it "
                f"({seconds:.0f} s so far; Ctrl-C stops)")

    with FileLock(locks / f"{target.name}.lock", on_wait=waiting, check=raise_if_interrupted):
        if (target / META_NAME).is_file():  # made by another process meanwhile
            return target, None
        _remove_leftovers(target)
        began = time.perf_counter()
        import_onnx(OnnxImport(source, target, fps=fps, composite=False),
                    log or (lambda message: None))
        seconds = time.perf_counter() - began
    _MADE[seen] = target
    return target, (f"cut {source.name} into encoder and head and checked both against the "
                    f"original in ONNX Runtime ({seconds:.1f} s, model fps {fps:g}): {target} "
                    "(reused next time)")


def _remove_leftovers(target: Path) -> None:
    """Staging folders of earlier imports of this package that were killed (kill -9, a power
    cut): the caller holds the package's lock, so none of them is being filled."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
