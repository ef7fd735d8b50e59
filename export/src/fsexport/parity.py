"""Every exported graph, run by ONNX Runtime on the CPU, against the PyTorch module."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from fsexport.model import WindowModel
from fsrun.errors import ModelError
from fsrun.model.parity import (FP32_TOLERANCE, SPLIT_TOLERANCE, ParityReport, allowed_diff,  # noqa: F401
                          frame_sizes, ort_session, run_first)


def _session(path: Path):
    return ort_session(path)


def _run(session, x: np.ndarray) -> np.ndarray:
    return run_first(session, x)


def _cases(model: WindowModel, kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    window, dim = model.head.window, model.head.embedding_dim
    sizes = frame_sizes(model.encoder.input_size)
    if kind == "encoder":
        return [rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8) for n, (h, w) in zip((1, 3), sizes)]
    if kind == "head":
        return [rng.standard_normal((b, window, dim)).astype(np.float32) for b in (1, 3)]
    return [rng.integers(0, 256, (b, window, h, w, 3), dtype=np.uint8) for b, (h, w) in zip((1, 2), sizes)]


def float32_noise(module: torch.nn.Module, x: np.ndarray, expected: np.ndarray) -> float:
    """Max |PyTorch fp32 - PyTorch fp64| on x: the closest any float32 runtime can come.

    Wide layers (effv2l flattens 16x16x1280 features into one Dense) reach ~1e-4 from summation
    order alone, so a fixed 1e-4 would reject a correct graph.
    """
    with torch.no_grad():
        reference = copy.deepcopy(module).double()
        inputs = torch.from_numpy(x)
        if inputs.is_floating_point():
            inputs = inputs.double()
        return float(np.abs(reference(inputs).numpy() - expected).max())


def check_graph(model: WindowModel, kind: str, path: Path, precision: str,
                report: ParityReport, seed: int = 0) -> None:
    """Record the max abs diff; raise for fp32 beyond tolerance."""
    module = {"encoder": model.encoder, "head": model.head, "model": model}[kind]
    rng = np.random.default_rng(seed)
    try:
        session = _session(path)
    except Exception as exc:  # fp16 kernels missing on some CPU builds
        report.diffs[path.name] = None
        report.notes[path.name] = f"ONNX Runtime CPU cannot run it: {str(exc).splitlines()[0]}"
        if precision == "fp32":
            raise ModelError(f"{path.name}: ONNX Runtime cannot load it ({exc})") from None
        return
    worst, scale = 0.0, 0.0
    for index, x in enumerate(_cases(model, kind, rng)):
        key = (kind, seed, index)  # fp32 and fp16 graphs are compared with the same reference
        if key not in report.expected:
            with torch.no_grad():
                report.expected[key] = module(torch.from_numpy(x)).numpy()
        expected = report.expected[key]
        try:
            actual = _run(session, x)
        except Exception as exc:
            report.diffs[path.name] = None
            report.notes[path.name] = f"ONNX Runtime CPU cannot run it: {str(exc).splitlines()[0]}"
            if precision == "fp32":
                raise ModelError(f"{path.name}: ONNX Runtime failed ({exc})") from None
            return
        if actual.shape != expected.shape:
            raise ModelError(f"{path.name}: output shape {actual.shape} != {expected.shape}")
        worst = max(worst, float(np.abs(actual - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    report.diffs[path.name] = worst
    report.scales[path.name] = scale
    allowed = allowed_diff(FP32_TOLERANCE, scale)
    if precision == "fp32" and worst > allowed:
        key = (kind, seed, 0)
        first = _cases(model, kind, np.random.default_rng(seed))[0]
        noise = report.float32_noise.setdefault(kind, float32_noise(module, first, report.expected[key]))
        allowed = max(allowed, 2.0 * noise)
    if precision == "fp32" and worst > allowed:
        raise ModelError(f"{path.name}: ONNX output differs from PyTorch by {worst:.2e} "
                         f"(allowed {allowed:.1e} for outputs up to {scale:.2e})")


def check_composite(model: WindowModel, package_dir: Path, report: ParityReport, seed: int = 1) -> None:
    """model.onnx(frames) must equal head.onnx(encoder.onnx(frames))."""
    rng = np.random.default_rng(seed)
    encoder, head, composite = (_session(package_dir / f"{k}.onnx") for k in ("encoder", "head", "model"))
    worst, scale = 0.0, 0.0
    for x in _cases(model, "model", rng):
        b, t = x.shape[:2]
        embeddings = _run(encoder, x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1)
        split = _run(head, embeddings)
        worst = max(worst, float(np.abs(_run(composite, x) - split).max()))
        scale = max(scale, float(np.abs(split).max()))
    report.composite_vs_split = worst
    if worst > allowed_diff(SPLIT_TOLERANCE, scale):
        raise ModelError(f"model.onnx differs from head(encoder(frames)) by {worst:.2e} "
                         f"(tolerance {SPLIT_TOLERANCE:.0e})")
