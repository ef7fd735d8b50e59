"""ONNX Runtime on the CUDA execution provider, with IO binding.

Device batches (NVDEC frames) are bound by pointer, so frames stay in GPU memory from the decoder
to the network; host batches are bound as CPU inputs and copied once by ONNX Runtime. Outputs
(embeddings, 1 KB a frame, or positions) are bound to host memory. ONNX Runtime computes on the
stream the decoder and the batch assembler use, so no host synchronization sits between them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from fsrun.backends.base import BackendOptions, ClosingBackend, TensorSpec
from fsrun.errors import Interrupted, MissingDependencyError, ModelError, UsageError
from fsrun.gpu import GPU_EXTRA, as_device_array, get_runtime, is_device_array

CUDA_PROVIDER = "CUDAExecutionProvider"

# ONNX type strings -> numpy dtypes for the tensors a package's graphs use.
ORT_TYPES: dict[str, Any] = {
    "tensor(uint8)": np.uint8,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
}

# CUDA array interface stream values that mean "no particular stream" or a default stream.
_UNSPECIFIED_STREAMS = (None, 0)


def is_available() -> bool:
    """Cheap check: onnxruntime lists the CUDA provider (true only with onnxruntime-gpu)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime  # noqa: PLC0415  (already a runtime dependency; no GPU work happens here)

    return CUDA_PROVIDER in onnxruntime.get_available_providers()


def cuda_provider_options(device_id: int, stream_handle: int | None) -> dict[str, str]:
    """CUDA provider settings; a user stream puts ONNX Runtime on the pipeline's shared stream."""
    options = {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "HEURISTIC",  # EXHAUSTIVE re-tunes for every new frame size
    }
    if stream_handle is not None:
        options["has_user_compute_stream"] = "True"
        options["user_compute_stream"] = str(int(stream_handle))
    return options


def _optional_runtime(device_id: int) -> Any:
    """The shared CUDA runtime when CuPy/cuda-python is installed; host batches work without."""
    try:
        return get_runtime(device_id)
    except MissingDependencyError:
        return None


def _specs(args: list[Any]) -> list[TensorSpec]:
    specs = []
    for arg in args:
        dtype = ORT_TYPES.get(arg.type)
        if dtype is None:
            raise ModelError(f"graph tensor {arg.name} has unsupported type {arg.type}")
        specs.append(TensorSpec(arg.name, np.dtype(dtype).name, tuple(arg.shape)))
    return specs


class OrtCudaBackend(ClosingBackend):
    name = "cuda"
    accepts_device_input = True
    provider = CUDA_PROVIDER
    missing_library = ("onnxruntime-gpu", GPU_EXTRA)  # what to install when the provider is absent

    def __init__(self, onnx_path: Path, options: BackendOptions):
        import onnxruntime as ort  # noqa: PLC0415

        if self.provider not in ort.get_available_providers():
            raise MissingDependencyError(*self.missing_library)
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ModelError(f"{self.onnx_path}: ONNX file not found")
        self.options = options
        self.device_id = options.device_id
        self._runtime = _optional_runtime(options.device_id)
        stream = None if self._runtime is None else self._runtime.stream_handle
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        try:
            self._session = ort.InferenceSession(
                str(self.onnx_path), sess_options=session_options,
                providers=self.providers(stream))
        except Interrupted:  # a second Ctrl-C while ORT loads: a stop, not a broken model
            raise
        except Exception as exc:  # ORT raises its own exception types for unreadable graphs
            raise ModelError(f"{self.onnx_path.name}: ONNX Runtime could not load it: "
                             f"{exc}") from None
        active = self._session.get_providers()
        if not active or active[0] != self.provider:
            # ORT falls back to the CPU quietly when CUDA/cuDNN/TensorRT libraries fail to load.
            raise UsageError(f"ONNX Runtime could not start {self.provider} on device "
                             f"{self.device_id} (active: {', '.join(active)}); check the CUDA, "
                             f"cuDNN and driver installation")
        self.inputs = _specs(self._session.get_inputs())
        self.outputs = _specs(self._session.get_outputs())
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ModelError(f"{self.onnx_path.name}: expected one input and one output")

    def providers(self, stream_handle: int | None) -> list[Any]:
        return [(CUDA_PROVIDER, cuda_provider_options(self.device_id, stream_handle))]

    def _bind_input(self, binding: Any, batch: Any) -> None:
        spec = self.inputs[0]
        expected = np.dtype(spec.dtype)
        if not is_device_array(batch):
            binding.bind_cpu_input(spec.name, np.ascontiguousarray(batch, dtype=expected))
            return
        array = as_device_array(batch, self.device_id)
        if array.dtype != expected:
            raise ValueError(f"{spec.name} needs {expected} on the device, got {array.dtype}")
        if not array.is_c_contiguous:
            raise ValueError(f"{spec.name}: device batches must be C-contiguous")
        own_stream = None if self._runtime is None else self._runtime.stream_handle
        if array.stream not in _UNSPECIFIED_STREAMS and array.stream != own_stream:
            if self._runtime is None:
                raise MissingDependencyError("cuda-python (or CuPy)", GPU_EXTRA)
            self._runtime.synchronize_stream(array.stream)  # producer's work must be done
        binding.bind_input(name=spec.name, device_type="cuda", device_id=self.device_id,
                           element_type=expected.type, shape=list(array.shape),
                           buffer_ptr=array.ptr)

    def run(self, batch: Any) -> np.ndarray:
        binding = self._session.io_binding()
        self._bind_input(binding, batch)
        binding.bind_output(self.outputs[0].name, "cpu")
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def close(self) -> None:
        self._session = None
