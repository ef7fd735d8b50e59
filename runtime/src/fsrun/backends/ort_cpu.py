"""ONNX Runtime on the CPU: the backend every machine has."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fsrun.backends.base import BackendOptions, ClosingBackend, TensorSpec
from fsrun.errors import Interrupted, ModelError

# ONNX Runtime type strings -> numpy dtype names.
_ORT_TYPES = {
    "tensor(uint8)": "uint8",
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
}


def is_available() -> bool:
    return True


def _specs(args: list[Any]) -> list[TensorSpec]:
    return [TensorSpec(a.name, _ORT_TYPES.get(a.type, a.type), tuple(a.shape)) for a in args]


class OrtCpuBackend(ClosingBackend):
    name = "cpu"
    accepts_device_input = False

    def __init__(self, onnx_path: Path | str, options: BackendOptions | None = None):
        import onnxruntime as ort  # noqa: PLC0415

        options = options or BackendOptions()
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        # Spin-waiting threads hold the cores the decode thread needs between encoder calls
        # (benchmarks: 1.8x wall, 1.6x CPU time on the tiny model, 2 cores).
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(onnx_path), session_options,
                                                providers=["CPUExecutionProvider"])
        except Interrupted:  # a second Ctrl-C while ORT loads: a stop, not a broken model
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{onnx_path}: ONNX Runtime cannot load it ({first})") from None
        self.inputs = _specs(self.session.get_inputs())
        self.outputs = _specs(self.session.get_outputs())
        if len(self.inputs) != 1:
            raise ModelError(f"{onnx_path}: expected one input, found {len(self.inputs)}")
        self._input_name = self.inputs[0].name
        self._input_dtype = np.dtype(self.inputs[0].dtype)
        self._output_name = self.outputs[0].name

    def run(self, batch: Any) -> np.ndarray:
        array = np.ascontiguousarray(batch, dtype=self._input_dtype)
        return self.session.run([self._output_name], {self._input_name: array})[0]

    def close(self) -> None:
        self.session = None
