"""The model package (`NAME.fsmodel/`): the contract between fsexport and fsrun.

meta.json describes the model and lists every file with its sha256. fsrun verifies the files
before use and never follows a path out of the package directory.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fsrun.errors import ModelError

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
    format_version: int  # bumped when the package layout changes incompatibly
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

    def __post_init__(self) -> None:
        if isinstance(self.normalization, dict):
            self.normalization = Normalization(**self.normalization)
        if self.window < 1 or self.input_size < 1 or self.embedding_dim < 1 or self.fps <= 0:
            raise ModelError(f"meta.json has invalid sizes: window={self.window}, "
                             f"input_size={self.input_size}, fps={self.fps}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


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
        """Identity of the weights: sha256 over the sorted file digests."""
        joined = "".join(f"{k}={v};" for k, v in sorted(self.meta.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()

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
        """Check every listed file exists and matches its sha256."""
        for name, expected in sorted(self.meta.files.items()):
            path = _inside(self.path, name)
            if not path.is_file():
                raise ModelError(f"{self.path}: {name} is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ModelError(f"{self.path}: {name} is damaged (sha256 {actual[:12]}..., "
                                 f"expected {expected[:12]}...)")


def _inside(root: Path, name: str) -> Path:
    root = root.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ModelError(f"{root}: file name {name!r} escapes the package directory")
    return path


def load_package(path: Path | str, verify: bool = True) -> ModelPackage:
    """Read meta.json of a package directory and (by default) verify its files."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: model package not found (expected a NAME.fsmodel directory)")
    meta_path = path / META_NAME
    if not meta_path.is_file():
        raise ModelError(f"{path}: {META_NAME} is missing")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
