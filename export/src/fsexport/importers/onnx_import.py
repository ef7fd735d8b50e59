"""`fsexport import MODEL.onnx`: the ONNX door, cut by graph surgery and checked against the
original graph in ONNX Runtime."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx

from fsexport.build import BuildResult, Log, _stderr, package_dir_for, refuse_existing, write_package
from fsexport.importers import onnx_surgery as surgery
from fsexport.importers.config import ImportConfig
from fsexport.importers.keras_reference import BATCHES, seeded_frames
from fsexport.parity import (FP32_TOLERANCE, SPLIT_TOLERANCE, ParityReport, allowed_diff,
                             frame_sizes)
from fsrun.errors import ModelError
from fsrun.package import FORMAT_VERSION, GRAPH_FILES, ModelMeta, sha256_file

KEEP_FP32 = ["Resize", "Cast"]  # ops the fp16 graphs keep in float32: the uint8 front
CONTROL_FLOW = {"Loop", "Scan", "If"}  # the float16 converter cannot rewrite their bodies


def session_for(model: onnx.ModelProto | Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    data = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Half precision inside, float32/uint8 at the inputs and outputs; (graph, note).

    A graph with control flow stays float32 (same contract), and the note says so: the
    converter rewrites Loop bodies into graphs ONNX Runtime rejects.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if any(node.op_type in CONTROL_FLOW for node in model.graph.node):
        return copy, "kept in float32: the graph has Loop/Scan/If nodes"
    return convert_float_to_float16(copy, keep_io_types=True,
                                    op_block_list=DEFAULT_OP_BLOCK_LIST + KEEP_FP32), None


def import_onnx(config: ImportConfig, log: Log = _stderr) -> BuildResult:
    source = Path(config.source)
    build_config = config.build_config()
    refuse_existing(package_dir_for(build_config), config.force)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    log(f"read    {source}")
    original = surgery.load(source)
    surgery.rename_reserved(original)
    c = surgery.contract(original, source)
    embedding, dim = surgery.find_embedding(original, c, session_for, config.split_at, source)
    log(f"split   at {embedding!r} ({c.window} frames of {c.size} px -> {dim} per frame)")
    graphs = {"encoder": surgery.encoder_graph(original, c, embedding),
              "head": surgery.head_graph(original, c, embedding, dim),
              "model": surgery.composite_graph(original, c)}
    timings["surgery"] = time.perf_counter() - started

    def fill(staging: Path) -> ModelMeta:
        files, notes = [], {}
        for precision in ["fp32", "fp16"] if config.fp16 else ["fp32"]:
            for kind, graph in graphs.items():
                name = GRAPH_FILES[(kind, precision)]
                log(f"write   {name}")
                if precision == "fp16":
                    graph, note = to_fp16(graph)
                    if note:
                        notes[name] = note
                onnx.save(graph, str(staging / name))
                files.append(name)
        began = time.perf_counter()
        parity = ParityReport()
        vs_original = verify(original, c, embedding, staging, files, parity, source, log)
        parity.notes.update(notes)
        timings["verify"] = time.perf_counter() - began
        provenance = {
            "door": "import-onnx",
            "source": {"file": source.name, "sha256": sha256_file(source),
                       "producer": f"{original.producer_name} {original.producer_version}".strip(),
                       "opset": max(o.version for o in original.opset_import if o.domain in ("", "ai.onnx"))},
            "mapping": {"split_at": embedding, "split": "--split-at" if config.split_at else "found",
                        "embedding_dim": dim,
                        "front": f"uint8 -> Cast -> Resize(linear, half_pixel) to {c.size}x{c.size}",
                        "nodes": {k: len(g.graph.node) for k, g in graphs.items()}},
            "parity_vs_original": vs_original,
        }
        return _meta(c, config.fps, dim, files, staging, parity, provenance)

    target, meta = write_package(build_config, fill, log)
    return BuildResult(path=target, meta=meta, timings=timings)


def _meta(c: surgery.Contract, fps: float, dim: int, files: list[str], staging: Path,
          parity: ParityReport, provenance: dict) -> ModelMeta:
    import onnxruntime

    from fsexport import __version__

    return ModelMeta(
        format_version=FORMAT_VERSION, variant="imported-onnx", backbone="onnx-graph",
        input_size=c.size, window=c.window, fps=fps, embedding_dim=dim,
        normalization={"mean": None, "std": None},  # inside the original graph, not recovered
        trained=True, files={name: sha256_file(staging / name) for name in sorted(files)},
        parity=parity.as_meta(),
        exporter={"fsexport": __version__, "onnx": onnx.__version__,
                  "onnxruntime": onnxruntime.__version__},
        provenance=provenance)


def _run(session, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def verify(original: onnx.ModelProto, c: surgery.Contract, embedding: str, staging: Path,
           files: list[str], report: ParityReport, source: Path, log: Log) -> dict:
    """Every graph against the original in ONNX Runtime on seeded frames at two batch sizes."""
    reference = session_for(surgery.with_outputs(original, [embedding]))
    cases = []
    for batch in BATCHES:
        frames = seeded_frames(f"onnx/{source.name}", batch, c.window, c.size)
        positions, embeddings = reference.run([c.output_name, embedding],
                                              {c.input_name: frames.astype(np.float32)})
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
            session = session_for(staging / name)
            pairs = [inputs_and_expected[kind](*case) for case in cases]
            actual = [(_run(session, x), expected) for x, expected in pairs]
        except Exception as exc:  # fp16 kernels missing on some CPU builds
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
    _check_composite(c, staging, report)
    return {f"batch_{f.shape[0]}": {"positions_scale": float(np.abs(p).max())} for f, _, p in cases}


def _check_composite(c: surgery.Contract, staging: Path, report: ParityReport) -> None:
    """model.onnx(frames) == head.onnx(encoder.onnx(frames)) at odd frame sizes."""
    encoder, head, composite = (session_for(staging / f"{k}.onnx") for k in ("encoder", "head", "model"))
    rng = np.random.default_rng(1)
    worst, scale = 0.0, 0.0
    for batch, (h, w) in zip(BATCHES, frame_sizes(c.size)):
        frames = rng.integers(0, 256, (batch, c.window, h, w, 3), dtype=np.uint8)
        embeddings = _run(encoder, frames.reshape(batch * c.window, h, w, 3))
        split = _run(head, embeddings.reshape(batch, c.window, -1))
        worst = max(worst, float(np.abs(_run(composite, frames) - split).max()))
        scale = max(scale, float(np.abs(split).max()))
    report.composite_vs_split = worst
    if worst > allowed_diff(SPLIT_TOLERANCE, scale):
        raise ModelError(f"model.onnx differs from head(encoder(frames)) by {worst:.2e}")
