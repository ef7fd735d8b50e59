"""How a package's graphs are held against what they came from: tolerances, the seeded frames
every check runs on, and the record that goes into meta.json's `parity`.

Both sides use it: fsexport checks graphs against PyTorch, the ONNX door (fsrun.onnx_door)
against the creator's original ONNX graph in ONNX Runtime. Nothing here needs a framework.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FP32_TOLERANCE = 1e-4  # max abs diff allowed between ONNX Runtime fp32 and the reference, for
# outputs of magnitude <= 1; larger outputs (deep backbones with random weights reach 1e8) are
# held to the same tolerance relative to their largest value: float32 carries ~7 digits.
SPLIT_TOLERANCE = 1e-5  # composite vs head(encoder(.)) inside ONNX Runtime
BATCHES = (1, 2)  # batch sizes every parity check runs


@dataclass
class ParityReport:
    diffs: dict[str, float | None] = field(default_factory=dict)  # file -> max abs diff
    scales: dict[str, float] = field(default_factory=dict)  # file -> max |reference output|
    float32_noise: dict[str, float] = field(default_factory=dict)  # graph -> fp32 vs fp64
    expected: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)  # references
    notes: dict[str, str] = field(default_factory=dict)  # file -> why it could not run
    composite_vs_split: float | None = None  # model.onnx vs head(encoder) in ONNX Runtime

    def as_meta(self) -> dict:
        return {"max_abs_diff": self.diffs, "output_scale": self.scales,
                "float32_noise": self.float32_noise,
                "composite_vs_split": self.composite_vs_split,
                "notes": self.notes, "fp32_tolerance": FP32_TOLERANCE}


def allowed_diff(tolerance: float, scale: float) -> float:
    """Absolute tolerance for outputs up to 1, relative to the output's magnitude above that."""
    return tolerance * max(1.0, scale)


def frame_sizes(input_size: int) -> list[tuple[int, int]]:
    """One square size that is no multiple of 32, one that is not square."""
    return [(input_size + 13, input_size + 13), (input_size * 3 // 4 + 1, input_size + 37)]


def seeded_frames(name: str, batch: int, window: int, size: int) -> np.ndarray:
    """uint8 [batch, window, size, size, 3], the same for every caller of the same name."""
    seed = int.from_bytes(hashlib.sha256(f"{name}/{batch}".encode()).digest()[:4], "little")
    return np.random.default_rng(seed).integers(0, 256, (batch, window, size, size, 3),
                                                dtype=np.uint8)


def frames_sha256(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def ort_session(model: Any, lean: bool = False) -> Any:
    """An ONNX Runtime CPU session on a path or an in-memory onnx.ModelProto, quiet. lean: no
    memory arena, so a run's activations go back to the system when it ends (a check that
    runs a large model once pays some speed for a flat peak)."""
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if lean:
        options.enable_cpu_mem_arena = False
    data = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run_first(session: Any, x: np.ndarray) -> np.ndarray:
    """The first output of a one-input session."""
    return session.run(None, {session.get_inputs()[0].name: x})[0]
