"""Names of TensorRT engine and timing-cache files in a package's engines/ folder.

An engine only runs on the GPU model and TensorRT version it was built with, so both are part of
the file name: `encoder.nvidia-h100-80gb-hbm3.trt10.7.fp16.engine`. fsexport writes these names
and the trt-native backend looks them up with the same functions, so the two never disagree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ENGINES_DIR = "engines"
ENGINE_SUFFIX = ".engine"
PRECISIONS = ("fp32", "fp16")

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)")
_ENGINE_NAME = re.compile(
    r"^(?P<graph>[a-z]+)\.(?P<gpu>[a-z0-9-]+)\.trt(?P<trt>\d+\.\d+)\.(?P<precision>fp32|fp16)"
    + re.escape(ENGINE_SUFFIX) + "$")


def gpu_slug(device_name: str | bytes) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (stable, file-name safe)."""
    if isinstance(device_name, bytes):
        device_name = device_name.split(b"\0", 1)[0].decode("utf-8", "replace")
    slug = _SLUG_CHARS.sub("-", device_name.strip().lower()).strip("-")
    if not slug:
        raise ValueError(f"GPU name {device_name!r} has no usable characters")
    return slug


def trt_tag(trt_version: str) -> str:
    """'10.7.0.23' -> '10.7': engines are compatible within a major.minor release."""
    match = _VERSION.match(str(trt_version))
    if match is None:
        raise ValueError(f"not a TensorRT version: {trt_version!r}")
    return f"{int(match.group(1))}.{int(match.group(2))}"


def trt_major(trt_version: str) -> int:
    return int(trt_tag(trt_version).split(".")[0])


def engine_filename(graph: str, device_name: str | bytes, trt_version: str, precision: str) -> str:
    """File name of the engine for one graph (encoder, head, model) on one GPU + TensorRT."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not re.fullmatch(r"[a-z]+", graph):
        raise ValueError(f"graph name must be lowercase letters, got {graph!r}")
    return f"{graph}.{gpu_slug(device_name)}.trt{trt_tag(trt_version)}.{precision}{ENGINE_SUFFIX}"


def timing_cache_filename(device_name: str | bytes, trt_version: str) -> str:
    """Timing cache shared by every graph and precision built on this GPU + TensorRT."""
    return f"timing.{gpu_slug(device_name)}.trt{trt_tag(trt_version)}.cache"


@dataclass(frozen=True)
class EngineName:
    graph: str  # encoder, head or model
    gpu: str  # gpu_slug of the device it was built on
    trt: str  # TensorRT major.minor it was built with
    precision: str  # fp32 or fp16


def parse_engine_filename(name: str) -> EngineName | None:
    """The parts of an engine file name, or None for anything else in engines/."""
    match = _ENGINE_NAME.match(name)
    if match is None:
        return None
    return EngineName(match["graph"], match["gpu"], match["trt"], match["precision"])


def graph_of_onnx(onnx_path: Path) -> str:
    """'encoder.fp16.onnx' -> 'encoder': the graph an ONNX file of a package holds."""
    return Path(onnx_path).name.split(".", 1)[0]


def engines_dir(package_dir: Path) -> Path:
    return Path(package_dir) / ENGINES_DIR


def find_engine(package_dir: Path, graph: str, device_name: str | bytes, trt_version: str,
                precision: str) -> Path | None:
    """The engine built for exactly this GPU, TensorRT major.minor and precision, if present."""
    path = engines_dir(package_dir) / engine_filename(graph, device_name, trt_version, precision)
    return path if path.is_file() else None


def list_engines(package_dir: Path) -> list[EngineName]:
    """Every engine in the package (for error messages that say what is there instead)."""
    folder = engines_dir(package_dir)
    if not folder.is_dir():
        return []
    found = (parse_engine_filename(p.name) for p in sorted(folder.iterdir()))
    return [e for e in found if e is not None]
