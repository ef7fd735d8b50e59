"""The cut graphs against the creator's original graph, both run by ONNX Runtime on the CPU, and
the fp16 copies for GPU backends."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from fsrun.errors import Interrupted, ModelError
from fsrun.onnx_door import surgery
from fsrun.package import GRAPH_FILES
from fsrun.parity import (BATCHES, FP32_TOLERANCE, SPLIT_TOLERANCE, ParityReport, allowed_diff,
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


def verify(original: onnx.ModelProto, c: surgery.Contract, embedding: str, staging: Path,
           files: list[str], report: ParityReport, source: Path,
           log: Callable[[str], None]) -> dict:
    """Every graph against the original in ONNX Runtime on seeded frames at two batch sizes."""
    reference = ort_session(surgery.with_outputs(original, [embedding]))
    cases = []
    for batch in BATCHES:
        frames = seeded_frames(f"onnx/{source.name}", batch, c.window, c.size)
        positions, embeddings = reference.run([c.output_name, embedding],
                                              {c.input_name: frames.astype(np.float32)})
        if positions.shape != (batch, c.window):
            raise ModelError(f"{source}: output '{c.output_name}' is {list(positions.shape)} "
                             f"for {batch} clip(s) of {c.window} frames; a model must give "
                             f"[B, {c.window}] positions")
        cases.append((frames, embeddings, positions))
    inputs_and_expected = {
        "encoder": lambda f, e, p: (f.reshape(-1, c.size, c.size, 3), e),
        "head": lambda f, e, p: (e.reshape(f.shape[0], c.window, -1), p),
        "model": lambda f, e, p: (f, p),
    }
    for (kind, precision), name in GRAPH_FILES.items():
        if name not in files:
            continue
        log(f"verify  {name}")
        try:
            session = ort_session(staging / name)
            pairs = [inputs_and_expected[kind](*case) for case in cases]
            actual = [(run_first(session, x), expected) for x, expected in pairs]
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - fp16 kernels missing on some CPU builds
            if precision == "fp32":
                raise ModelError(f"{name}: ONNX Runtime cannot run it ({exc})") from None
            report.diffs[name] = None
            report.notes[name] = f"ONNX Runtime CPU cannot run it: {str(exc).splitlines()[0]}"
            continue
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
    return {f"batch_{f.shape[0]}": {"positions_scale": float(np.abs(p).max())} for f, _, p in cases}


def check_composite(c: surgery.Contract, staging: Path, report: ParityReport) -> None:
    """model.onnx(frames) == head.onnx(encoder.onnx(frames)) at odd frame sizes."""
    encoder, head, composite = (ort_session(staging / f"{k}.onnx")
                                for k in ("encoder", "head", "model"))
    rng = np.random.default_rng(1)
    worst, scale = 0.0, 0.0
    for batch, (h, w) in zip(BATCHES, frame_sizes(c.size)):
        frames = rng.integers(0, 256, (batch, c.window, h, w, 3), dtype=np.uint8)
        embeddings = run_first(encoder, frames.reshape(batch * c.window, h, w, 3))
        split = run_first(head, embeddings.reshape(batch, c.window, -1))
        worst = max(worst, float(np.abs(run_first(composite, frames) - split).max()))
        scale = max(scale, float(np.abs(split).max()))
    report.composite_vs_split = worst
    if worst > allowed_diff(SPLIT_TOLERANCE, scale):
        raise ModelError(f"model.onnx differs from head(encoder(frames)) by {worst:.2e}")
