"""fsexport: build funscript video models into verified ONNX/TensorRT packages for fsrun."""
from __future__ import annotations

__version__ = "0.1.0"
