"""Native TensorRT engines from the package's engines/ folder (TensorRT 10 and 11).

An engine is specific to a GPU model, a TensorRT major.minor and a precision; it is found by the
names in trt_naming, which fsexport uses when it builds them. Inference uses the tensor-name API
that both TensorRT 10 and 11 share (set_input_shape, set_tensor_address, execute_async_v3); the
binding-index API (num_bindings) is gone in both. Device batches are used in place; host batches
are copied to the device once. Only the output (embeddings or positions) comes back to the host.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from fsrun.backends.base import BackendOptions, ClosingBackend, TensorSpec
from fsrun.backends.trt_naming import find_engine, graph_of_onnx, list_engines, trt_tag
from fsrun.backends.trt_profiles import InputProfile, batch_slices, check_item_shape
from fsrun.errors import MissingDependencyError, ModelError
from fsrun.gpu import as_device_array, empty, get_runtime, is_device_array, to_device, to_host

TENSORRT_EXTRA = "fsrun[tensorrt]"

# TensorRT DataType names -> numpy dtypes.
TRT_DTYPES: dict[str, Any] = {
    "UINT8": np.uint8,
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


def is_available() -> bool:
    """Cheap check: the tensorrt package is installed (nothing is imported)."""
    return importlib.util.find_spec("tensorrt") is not None


def import_tensorrt() -> Any:
    try:
        import tensorrt  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("tensorrt", TENSORRT_EXTRA) from None
    return tensorrt


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    try:
        return np.dtype(TRT_DTYPES[name])
    except KeyError:
        raise ModelError(f"engine tensor type {name} is not supported") from None


def missing_engine_message(package_dir: Path, graph: str, device_name: str, trt_version: str,
                           precision: str) -> str:
    present = ", ".join(f"{e.graph}/{e.gpu}/trt{e.trt}/{e.precision}"
                        for e in list_engines(package_dir)) or "none"
    return (f"{package_dir}: no TensorRT engine for {graph} on {device_name} with TensorRT "
            f"{trt_tag(trt_version)} at {precision} (engines present: {present}); build them on "
            f"this machine with: fsexport trt {package_dir}")


def io_tensors(engine: Any, trt: Any) -> tuple[list[str], list[str]]:
    """Input and output tensor names, via the name-based API of TensorRT 10 and 11."""
    if not hasattr(engine, "num_io_tensors"):
        raise ModelError("this TensorRT is older than 10; fsrun needs TensorRT 10 or 11")
    inputs, outputs = [], []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        (inputs if is_input else outputs).append(name)
    return inputs, outputs


class TrtNativeBackend(ClosingBackend):
    name = "trt-native"
    accepts_device_input = True

    def __init__(self, onnx_path: Path, options: BackendOptions):
        trt = import_tensorrt()
        self._trt = trt
        self.onnx_path = Path(onnx_path)
        self.package_dir = self.onnx_path.parent
        self.graph = graph_of_onnx(self.onnx_path)
        self.options = options
        self._runtime = get_runtime(options.device_id)
        device_name = self._runtime.device_name()
        engine_path = find_engine(self.package_dir, self.graph, device_name, trt.__version__,
                                  options.precision)
        if engine_path is None:
            raise ModelError(missing_engine_message(self.package_dir, self.graph, device_name,
                                                    trt.__version__, options.precision))
        self.engine_path = engine_path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._trt_runtime = trt.Runtime(self._logger)
        self._engine = self._trt_runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            raise ModelError(f"{engine_path.name}: TensorRT could not load the engine (built by "
                             f"another TensorRT or for another GPU?); rebuild it with: "
                             f"fsexport trt {self.package_dir}")
        self._context = self._engine.create_execution_context()
        inputs, outputs = io_tensors(self._engine, trt)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{engine_path.name}: expected one input and one output tensor")
        self.inputs = [self._spec(n) for n in inputs]
        self.outputs = [self._spec(n) for n in outputs]
        low, opt, high = (tuple(int(d) for d in s)
                          for s in self._engine.get_tensor_profile_shape(inputs[0], 0))
        self.profile = InputProfile(inputs[0], low, opt, high)

    def _spec(self, name: str) -> TensorSpec:
        dims = self._engine.get_tensor_shape(name)
        shape = tuple(int(d) if int(d) >= 0 else "dynamic" for d in dims)
        return TensorSpec(name, numpy_dtype(self._engine.get_tensor_dtype(name)).name, shape)

    def _device_input(self, batch: Any) -> Any:
        expected = np.dtype(self.inputs[0].dtype)
        if not is_device_array(batch):
            return to_device(self._runtime, np.ascontiguousarray(batch, dtype=expected))
        array = as_device_array(batch, self.options.device_id)
        if array.dtype != expected or not array.is_c_contiguous:
            raise ValueError(f"{self.inputs[0].name} needs a C-contiguous {expected} device array")
        if array.stream not in (None, 0, self._runtime.stream_handle):
            self._runtime.synchronize_stream(array.stream)  # producer's work must be done
        return array

    def _run_once(self, array: Any) -> np.ndarray:
        in_name, out_name = self.inputs[0].name, self.outputs[0].name
        if not self._context.set_input_shape(in_name, tuple(array.shape)):
            raise ValueError(f"TensorRT rejected input shape {tuple(array.shape)}")
        out_shape = tuple(int(d) for d in self._context.get_tensor_shape(out_name))
        output = empty(self._runtime, out_shape, np.dtype(self.outputs[0].dtype))
        self._context.set_tensor_address(in_name, array.ptr)
        self._context.set_tensor_address(out_name, output.ptr)
        if not self._context.execute_async_v3(self._runtime.stream_handle):
            raise RuntimeError(f"{self.engine_path.name}: TensorRT execution failed")
        return to_host(self._runtime, output)  # synchronizes the shared stream

    def run(self, batch: Any) -> np.ndarray:
        shape = tuple(int(s) for s in batch.shape)
        check_item_shape(self.profile, shape)
        array = self._device_input(batch)
        parts = [self._run_once(array[part])
                 for part in batch_slices(shape[0], self.profile.max[0])]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        self._context = None
        self._engine = None
