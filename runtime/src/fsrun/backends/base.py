"""One small interface for every inference backend: run(batch) -> numpy array."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str  # graph input/output name
    dtype: str  # numpy dtype name: uint8, float32, float16
    shape: tuple  # dims; str for dynamic axes


@dataclass(frozen=True)
class BackendOptions:
    device_id: int = 0  # CUDA device ordinal for GPU backends
    precision: str = "fp32"  # fp32 or fp16 graph from the package
    threads: int = 0  # CPU intra-op threads; 0 lets ONNX Runtime decide
    cache_dir: Path | None = None  # engine / timing cache folder for TensorRT backends
    window: int | None = None  # frames per window, from meta.json (TensorRT input profiles)
    embedding_dim: int | None = None  # embedding width, from meta.json (TensorRT profiles)

    @classmethod
    def for_package(cls, package: Any, **options: Any) -> BackendOptions:
        """Options for a package's graphs: its window and embedding size."""
        meta = package.meta
        return cls(window=meta.window, embedding_dim=meta.embedding_dim, **options)


class Backend(Protocol):
    """Runs one ONNX graph (encoder or head) of a model package.

    Constructed as Backend(onnx_path, options). run() takes a host numpy array or, for backends
    with accepts_device_input, a device array (__cuda_array_interface__) that stays on the GPU.
    The result always comes back as a host numpy array (embeddings or positions are small).
    """

    name: str
    accepts_device_input: bool
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, batch: Any) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


class ClosingBackend:
    """Context-manager half of the Backend protocol: `with` closes the backend on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
