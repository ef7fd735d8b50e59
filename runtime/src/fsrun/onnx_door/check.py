"""The cut graphs against the creator's original graph, both run by ONNX Runtime on the CPU, and
the fp16 copies for GPU backends."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from fsrun.errors import Interrupted, ModelError
from fsrun.onnx_door import surgery
from fsrun.model.package import GRAPH_FILES
from fsrun.model.parity import (FP32_TOLERANCE, SPLIT_TOLERANCE, ParityReport, allowed_diff,
                          frame_sizes, ort_session, run_first, seeded_frames)

KEEP_FP32 = ["Resize", "Cast"]  # ops the fp16 graphs keep in float32: the uint8 front
CONTROL_FLOW = {"Loop", "Scan", "If"}  # the float16 converter cannot rewrite their bodies


def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Half precision inside, float32/uint8 at the inputs and outputs; (graph, note).

    A graph with control flow stays float32 (same contract), and the note says so: the
    converter rewrites Loop bodies into graphs ONNX Runtime rejects.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16  # noqa: PLC0415

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if any(node.op_type in CONTROL_FLOW for node in model.graph.node):
        return copy, "kept in float32: the graph has Loop/Scan/If nodes"
    return convert_float_to_float16(copy, keep_io_types=True,
                                    op_block_list=DEFAULT_OP_BLOCK_LIST + KEEP_FP32), None


# Frames the encoder checks take at a time: its per-frame promise is checked too (a frame's
# embedding may not depend on the others in its call), with a tenth of one window's memory.
ENCODER_CHUNK = 8


def reference_windows(name: str, c: surgery.Contract) -> list[np.ndarray]:
    """Two seeded windows, uint8 [1, T, S, S, 3] each: the second is the first with its first
    and last frames replaced (what tells a per-frame tensor from one that mixes frames)."""
    first = seeded_frames(f"onnx/{name}", 1, c.window, c.size)
    second = first.copy()
    other = seeded_frames(f"onnx/{name}/other", 1, c.window, c.size)
    second[0, [0, -1]] = other[0, [0, -1]]
    return [first, second]


def run_reference(probe: Path, c: surgery.Contract, windows: list[np.ndarray],
                  names: list[str]) -> list[dict[str, np.ndarray]]:
    """The original graph (with `names` among its outputs) on each window, one window per run
    (the original's activations for one window are its largest memory)."""
    session = ort_session(probe, lean=True)
    values = []
    for frames in windows:
        outputs = session.run(names, {c.input_name: frames.astype(np.float32)})
        values.append(dict(zip(names, outputs)))
    del session
    for window in values:
        positions = window[c.output_name]
        if positions.shape != (1, c.window):
            name = c.output_name.removeprefix(surgery.FRONT + "orig_")
            raise ModelError(f"{probe.name}: output '{name}' is {list(positions.shape)} for "
                             f"one clip of {c.window} frames; a model must give "
                             f"[B, {c.window}] positions (one per input frame)")
    return values


def verify(c: surgery.Contract, references: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
           staging: Path, files: list[str], report: ParityReport,
           log: Callable[[str], None]) -> dict:
    """Every graph against the original's outputs for the reference windows: (frames [1, T, S,
    S, 3] uint8, embeddings [T, D], positions [1, T]) each. The encoder runs a few frames at a
    time, the head on one window and on both at once (batch 1 and 2), the composite on each
    window; every session without ONNX Runtime's memory arena, one at a time."""
    frames = np.concatenate([f for f, _, _ in references])  # [2, T, S, S, 3]
    embeddings = np.concatenate([e for _, e, _ in references])  # [2T, D]
    positions = np.concatenate([p for _, _, p in references])  # [2, T]
    batches = {
        "encoder": lambda run: [(_chunked(run, frames.reshape(-1, c.size, c.size, 3)),
                                 embeddings)],
        "head": lambda run: [(run(embeddings[:c.window].reshape(1, c.window, -1)),
                              positions[:1]),
                             (run(embeddings.reshape(2, c.window, -1)), positions)],
        "model": lambda run: [(run(frames[i:i + 1]), positions[i:i + 1]) for i in range(2)],
    }
    for (kind, precision), name in GRAPH_FILES.items():
        if name not in files:
            continue
        log(f"verify  {name}")
        try:
            session = ort_session(staging / name, lean=True)
            actual = batches[kind](lambda x, s=session: run_first(s, x))
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - fp16 kernels missing on some CPU builds
            if precision == "fp32":
                raise ModelError(f"{name}: ONNX Runtime cannot run it ({exc})") from None
            report.diffs[name] = None
            report.notes[name] = f"ONNX Runtime CPU cannot run it: {str(exc).splitlines()[0]}"
            continue
        finally:
            session = None
        for got, expected in actual:
            if got.shape != expected.shape:
                raise ModelError(f"{name}: output shape {got.shape} != original {expected.shape}")
        worst = max(float(np.abs(got - expected).max()) for got, expected in actual)
        scale = max(float(np.abs(expected).max()) for _, expected in actual)
        report.diffs[name], report.scales[name] = worst, scale
        if precision == "fp32" and worst > allowed_diff(FP32_TOLERANCE, scale):
            raise ModelError(f"{name}: differs from the original graph by {worst:.2e} "
                             f"(allowed {allowed_diff(FP32_TOLERANCE, scale):.1e})")
    if "model.onnx" in files:
        check_composite(c, staging, report)
    return {f"window_{i}": {"positions_scale": float(np.abs(p).max())}
            for i, (_, _, p) in enumerate(references, start=1)}


def _chunked(run: Callable[[np.ndarray], np.ndarray], frames: np.ndarray) -> np.ndarray:
    return np.concatenate([run(frames[i:i + ENCODER_CHUNK])
                           for i in range(0, len(frames), ENCODER_CHUNK)])


def check_composite(c: surgery.Contract, staging: Path, report: ParityReport) -> None:
    """model.onnx(frames) == head.onnx(encoder.onnx(frames)) at odd frame sizes, one window
    at a time."""
    worst, scale = 0.0, 0.0
    rng = np.random.default_rng(1)
    for h, w in frame_sizes(c.size):
        frames = rng.integers(0, 256, (1, c.window, h, w, 3), dtype=np.uint8)
        encoder = ort_session(staging / "encoder.onnx", lean=True)
        embeddings = _chunked(lambda x: run_first(encoder, x), frames[0])
        encoder = None
        head = ort_session(staging / "head.onnx", lean=True)
        split = run_first(head, embeddings.reshape(1, c.window, -1))
        head = None
        composite = ort_session(staging / "model.onnx", lean=True)
        whole = run_first(composite, frames)
        composite = None
        worst = max(worst, float(np.abs(whole - split).max()))
        scale = max(scale, float(np.abs(split).max()))
    report.composite_vs_split = worst
    if worst > allowed_diff(SPLIT_TOLERANCE, scale):
        raise ModelError(f"model.onnx differs from head(encoder(frames)) by {worst:.2e}")
