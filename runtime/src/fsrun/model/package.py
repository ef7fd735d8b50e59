"""The model package (`NAME.fsmodel/`): the contract between fsexport and fsrun.

meta.json describes the model and lists every file with its sha256. fsrun verifies the files
before use and never follows a path out of the package directory.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

from fsrun.files.atomic import os_reason
from fsrun.axes import AXES, SINGLE, STROKE
from fsrun.errors import ModelError, OutputError
from fsrun.numbers import is_finite
from fsrun.model.onnx_header import OnnxHeaderError, TensorDecl, read_header

FORMAT_VERSION = 1
META_NAME = "meta.json"

# Logical graph name -> file name per precision.
GRAPH_FILES = {
    ("encoder", "fp32"): "encoder.onnx",
    ("head", "fp32"): "head.onnx",
    ("model", "fp32"): "model.onnx",
    ("encoder", "fp16"): "encoder.fp16.onnx",
    ("head", "fp16"): "head.fp16.onnx",
    ("model", "fp16"): "model.fp16.onnx",
    ("encoder", "int8"): "encoder.int8.onnx",
}
# Graphs a precision borrows from another: the int8 encoder (CPU backends) feeds the fp32 head,
# a few LSTMs over 256 floats a frame that int8 would not speed up.
SHARED_GRAPHS = {("head", "int8"): "fp32", ("model", "int8"): "fp32"}


@dataclass
class Normalization:
    mean: list[float]  # per RGB channel, on the 0..1 scale
    std: list[float]  # per RGB channel, on the 0..1 scale


@dataclass
class ModelMeta:
    # the layout's version, bumped when it changes incompatibly: a package is written in this
    # one, and one read was checked against it (load_package) before its fields were read
    format_version: ClassVar[int] = FORMAT_VERSION
    variant: str  # row of the variant table: tiny, effv2s, effv2m, effv2l
    backbone: str  # timm model name
    input_size: int  # square side the encoder resizes every frame to
    window: int  # frames per window (T), fixed by the head's last Dense layer
    fps: float  # frame rate the model expects; videos are sampled to it
    embedding_dim: int  # width of one frame's embedding (Dense(256))
    normalization: Normalization  # folded into the encoder graph; recorded for reference
    trained: bool  # False when the head (or backbone) has random weights
    files: dict[str, str]  # file name -> sha256 hex digest
    parity: dict[str, Any] = field(default_factory=dict)  # file -> max abs diff vs PyTorch
    exporter: dict[str, str] = field(default_factory=dict)  # library -> version used to export
    provenance: dict[str, Any] = field(default_factory=dict)  # checkpoint, training data, seed
    quantization: dict[str, Any] = field(default_factory=dict)  # precision -> recipe, drift
    axes: list[str] | None = None  # the head's outputs per frame in order (fsrun/axes.py), the
    # stroke first; None (no field in meta.json): the stroke alone, positions [B, window]

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(self.axes) if self.axes else SINGLE

    def __post_init__(self) -> None:
        if self.axes is not None:
            names = self.axes if isinstance(self.axes, list) else None
            if (not names or not all(isinstance(n, str) and n in AXES for n in names)
                    or names[0] != STROKE or len(set(names)) != len(names)):
                raise ModelError(f"meta.json has invalid axes {self.axes!r}: a list of "
                                 f"{', '.join(AXES)}, the stroke first, none twice")
        if isinstance(self.normalization, dict):
            self.normalization = Normalization(**self.normalization)
        sizes = (self.window, self.input_size, self.embedding_dim)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes) \
                or not (is_finite(self.fps) and self.fps > 0):
            raise ModelError(f"meta.json has invalid sizes: window={self.window!r}, "
                             f"input_size={self.input_size!r}, "
                             f"embedding_dim={self.embedding_dim!r}, fps={self.fps!r}")

    def to_json(self) -> str:
        """Strict JSON (what a browser's JSON.parse reads): NaN and infinities become null."""
        written = {"format_version": self.format_version, **asdict(self)}
        if written["axes"] is None:  # a stroke-only package's meta.json as it always was
            del written["axes"]
        return json.dumps(finite_json(written), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        known = {f.name for f in fields(cls)}  # format_version is the class's own
        return cls(**{k: v for k, v in data.items() if k in known})


def finite_json(value: Any) -> Any:
    """value with every NaN or infinite float replaced by None, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelPackage:
    path: Path  # the package directory
    meta: ModelMeta  # parsed meta.json

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_hash(self) -> str:
        """Identity of the model: sha256 over meta.json's content, which lists every file's
        sha256 beside the window, frame rate, sizes and provenance, so editing either changes
        it (and with it the embedding cache key)."""
        canonical = json.dumps(asdict(self.meta), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file(self, name: str) -> Path:
        """A listed file's path; refuses names that would leave the package directory."""
        if name not in self.meta.files:
            raise ModelError(f"{self.path}: {name} is not listed in {META_NAME}")
        return _inside(self.path, name)

    def graph(self, kind: str, precision: str = "fp32") -> Path:
        """Path of the encoder/head/model graph at a precision."""
        try:
            name = GRAPH_FILES[(kind, SHARED_GRAPHS.get((kind, precision), precision))]
        except KeyError:
            raise ModelError(f"no graph {kind!r} at precision {precision!r}") from None
        return self.file(name)

    def has_graph(self, kind: str, precision: str = "fp32") -> bool:
        precision = SHARED_GRAPHS.get((kind, precision), precision)
        return GRAPH_FILES.get((kind, precision)) in self.meta.files

    def verify(self) -> None:
        """Check every listed file exists and matches its sha256, and that each graph declares
        the inputs and outputs meta.json promises (check_graphs)."""
        for name, expected in sorted(self.meta.files.items()):
            path = _inside(self.path, name)
            if not path.is_file():
                raise ModelError(f"{self.path}: {name} is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ModelError(f"{self.path}: {name} is damaged (sha256 {actual[:12]}..., "
                                 f"expected {expected[:12]}...)")
        check_graphs(self)


def _inside(root: Path, name: str) -> Path:
    root = root.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ModelError(f"{root}: file name {name!r} escapes the package directory")
    return path


def refuse_existing(target: Path, force: bool) -> None:
    """OutputError when a package directory is there and force does not allow replacing it."""
    if target.exists() and not force:
        raise OutputError(f"{target} exists; use --force to replace it")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a directory")


def write_package_dir(target: Path, fill: Callable[[Path], ModelMeta], force: bool = False
                      ) -> ModelMeta:
    """fill(staging) writes a package's files into a hidden folder beside target and returns
    its meta; meta.json goes in last and the folder takes target's name only when complete,
    so no reader ever sees half a package. An existing target is replaced only with force,
    and removed only after the swap."""
    target = Path(target)
    refuse_existing(target, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot write there ({os_reason(exc)})") \
            from None
    try:
        meta = fill(staging)
        (staging / META_NAME).write_text(meta.to_json(), encoding="utf-8")
        staging.chmod(0o755)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{time.time_ns()}")
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"{target}: cannot write the package ({os_reason(exc)})") \
            from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def load_package(path: Path | str, verify: bool = True) -> ModelPackage:
    """Read meta.json of a package directory and (by default) verify its files."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: model package not found (expected a NAME.fsmodel directory)")
    meta_path = path / META_NAME
    if not meta_path.is_file():
        raise ModelError(f"{path}: {META_NAME} is missing")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{meta_path}: expected a JSON object")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise ModelError(f"{meta_path}: format_version is missing")
    if version > FORMAT_VERSION:
        raise ModelError(f"{meta_path}: format version {version} is newer than this fsrun "
                         f"understands ({FORMAT_VERSION}); upgrade fsrun")
    try:
        meta = ModelMeta.from_dict(data)
    except TypeError as exc:
        raise ModelError(f"{meta_path}: incomplete ({exc})") from None
    package = ModelPackage(path=path, meta=meta)
    if verify:
        package.verify()
    return package


def _no_constant(name: str) -> Any:
    """json.loads reads NaN and Infinity, which are not JSON: a meta.json holding one is refused."""
    raise ValueError(f"{name} is not a number JSON allows")


def check_graphs(package: ModelPackage) -> None:
    """ModelError, in one line, when a graph's declared inputs or outputs contradict meta.json
    (window, embedding size, uint8 RGB frames): found at load, not after decoding a video."""
    meta = package.meta
    frames = ("uint8", [None, None, None, 3])
    embeddings = ("float32", [None, meta.embedding_dim])
    windows = ("float32", [None, meta.window, meta.embedding_dim])
    positions = ("float32", [None, meta.window] + ([len(meta.axes)] if meta.axes else []))
    clips = ("uint8", [None, meta.window, None, None, 3])
    contract = {"encoder": (frames, embeddings), "head": (windows, positions),
                "model": (clips, positions)}
    for (kind, _precision), name in GRAPH_FILES.items():
        if name not in meta.files:
            continue
        try:
            header = read_header(_inside(package.path, name))
        except (OSError, OnnxHeaderError) as exc:
            raise ModelError(f"{package.path}: {name} is not a readable ONNX file ({exc})") \
                from None
        if len(header.inputs) != 1 or not header.outputs:
            raise ModelError(f"{package.path}: {name} has {len(header.inputs)} inputs and "
                             f"{len(header.outputs)} outputs; a package graph has one of each")
        for role, decl, (dtype, dims) in (("input", header.inputs[0], contract[kind][0]),
                                          ("output", header.outputs[0], contract[kind][1])):
            problem = _contradiction(decl, dtype, dims)
            if problem:
                axes = f", axes {','.join(meta.axes)}" if meta.axes else ""
                raise ModelError(f"{package.path}: {name} {role} {decl.name!r} {problem}, but "
                                 f"{META_NAME} says window {meta.window}, embedding_dim "
                                 f"{meta.embedding_dim}{axes} (frames uint8 RGB, the rest "
                                 "float32)")


def _contradiction(decl: TensorDecl, dtype: str, dims: list[int | None]) -> str | None:
    """How a declared tensor differs from [dims] of dtype (None: any size), or None."""
    if decl.dtype != dtype:
        return f"is {decl.dtype}"
    if decl.shape and len(decl.shape) != len(dims):
        return f"has shape {list(decl.shape)}"
    for have, want in zip(decl.shape, dims):
        if want is not None and isinstance(have, int) and have != want:
            return f"has shape {list(decl.shape)}"
    return None

