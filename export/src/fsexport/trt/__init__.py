"""TensorRT on the export side: engine building and the static ONNX-parser check.

Neither module imports TensorRT at import time; build_engines imports it when called.
"""
from __future__ import annotations

from fsexport.trt.engine_build import build_engines, precision_plan
from fsexport.trt.static_check import Finding, check_onnx, check_package, has_errors

__all__ = ["Finding", "build_engines", "check_onnx", "check_package", "has_errors",
           "precision_plan"]
