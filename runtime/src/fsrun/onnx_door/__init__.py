"""The ONNX door: a creator's one-graph ONNX model (the seed contract: float32 frames
[B, T, S, S, 3] in 0..255 -> positions [B, T]) cut into encoder and head by graph surgery,
checked against the original in ONNX Runtime, and written as a model package.

One implementation for both ways in: `fsexport import FILE.onnx` (a package where the user
says) and `fsrun VIDEO --model FILE.onnx` (a package in the user cache, keyed by the file's
sha256 and the frame rate, made the first time and reused after). Needs the `onnx` package and
ONNX Runtime, never a deep-learning framework; `onnx` is imported only when a file comes in.
"""
from __future__ import annotations

from fsrun.onnx_door.door import OnnxImport, cached_package, import_onnx, is_onnx_file

__all__ = ["OnnxImport", "cached_package", "import_onnx", "is_onnx_file"]
