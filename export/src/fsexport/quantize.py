"""`fsexport quantize PKG`: an int8 encoder for CPU backends, by ONNX Runtime static quantization.

encoder.int8.onnx keeps the fp32 encoder's contract (uint8 [N, H, W, 3] in, any H and W, Cast
and Resize inside, float32 embeddings out): everything before the stem conv stays in float, and
so do the layer groups a recipe lists in keep_float (int8_graph.py finds them). Calibration
runs on frames decoded from videos by fsrun's own source (calibration.py). The drift against
the fp32 encoder is measured on the calibration clips and written into meta.json with the
recipe, the calibration source and the file's sha256.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fsexport.calibration import (CalibrationConfig, VideoFrames, calibration_batches,
                                  calibration_videos, decode_videos)
from fsexport.int8_graph import ALWAYS_FLOAT, float_skip_path, layer_groups
from fsrun.files.atomic import write_atomic
from fsrun.errors import ModelError, OutputError, UsageError
from fsrun.model.package import GRAPH_FILES, META_NAME, finite_json, load_package, sha256_file

Log = Callable[[str], None]
INT8_FILE = GRAPH_FILES[("encoder", "int8")]


@dataclass(frozen=True)
class Recipe:
    calibration: str = "minmax"  # minmax, entropy, percentile (ORT) or mse (int8_ranges.py)
    percentile: float = 99.999  # percentile method: share of |values| kept inside the range
    per_channel: bool = True  # one weight scale per output channel
    quant_format: str = "qdq"  # qdq (QuantizeLinear/DequantizeLinear pairs) or qoperator
    activations: str = "uint8"  # uint8 (u8s8, what x86 int8 kernels are built for) or int8
    reduce_range: bool = False  # 7-bit weights: avoids u8s8 saturation on CPUs without VNNI
    keep_float: tuple[str, ...] = ("stem", "silu", "se", "dense")  # int8_graph groups not quantized
    op_types: tuple[str, ...] = ()  # quantize only these op types; () = every type ORT can
    symmetric_activations: bool = False  # activation ranges centred on zero
    moving_average: bool = False  # minmax: moving average of per-batch ranges, not the extremes
    preprocess: bool = True  # ORT's quant_pre_process (shape inference, graph optimization) first
    float_skip: int = 0  # N > 0: residual Adds on maps 1/N of the input or smaller read the skip
    # path in float (int8_graph.float_skip_path); 0: every tensor keeps its rounding

    def describe(self) -> str:
        kept = "+".join(self.keep_float) or "nothing"
        return (f"{self.quant_format} {self.calibration}"
                f"{f' {self.percentile:g}' if self.calibration == 'percentile' else ''}, "
                f"{'per-channel' if self.per_channel else 'per-tensor'}, {self.activations} "
                f"activations{', reduce_range' if self.reduce_range else ''}, float: {kept}"
                f"{f' + skip path from 1/{self.float_skip}' if self.float_skip else ''}")


# Every configuration measured (benchmarks/results/<machine>/int8_configs.md); the default is
# the fastest one that kept the trained models' drift within bounds.
RECIPES: dict[str, Recipe] = {
    "minmax-all": Recipe(keep_float=()),
    "minmax-keep-stem-dense": Recipe(keep_float=("stem", "dense")),
    "minmax-keep-se": Recipe(keep_float=("stem", "se", "dense")),
    "minmax-keep-se-float-skip": Recipe(keep_float=("stem", "se", "dense"), float_skip=16),
    "minmax-keep-se-float-skip-all": Recipe(keep_float=("stem", "se", "dense"), float_skip=1),
    "minmax-keep-silu-se": Recipe(),
    "minmax-avg-keep-se": Recipe(moving_average=True, keep_float=("stem", "se", "dense")),
    "entropy-keep-se": Recipe(calibration="entropy", keep_float=("stem", "se", "dense")),
    "percentile-keep-se": Recipe(calibration="percentile", keep_float=("stem", "se", "dense")),
    "mse-keep-se": Recipe(calibration="mse", keep_float=("stem", "se", "dense")),
    "mse-keep-silu-se": Recipe(calibration="mse"),
    "entropy-keep-silu-se": Recipe(calibration="entropy"),
    "percentile-keep-silu-se": Recipe(calibration="percentile"),
    "minmax-conv-only": Recipe(op_types=("Conv",), keep_float=("stem", "dense")),
    "minmax-keep-se-per-tensor": Recipe(per_channel=False, keep_float=("stem", "se", "dense")),
    "minmax-keep-se-reduce-range": Recipe(reduce_range=True, keep_float=("stem", "se", "dense")),
    "minmax-keep-silu-se-reduce-range": Recipe(reduce_range=True),
    "minmax-keep-silu-se-s8": Recipe(activations="int8"),
    "qoperator-all": Recipe(quant_format="qoperator", keep_float=()),
    "qoperator-keep-silu-se": Recipe(quant_format="qoperator"),
}
# Every recipe that clips activations (avg, entropy, percentile, mse) lost embedding cosine on the
# trained effv2s: its rare large activations matter (int8.md).
# minmax-keep-se-float-skip: on the briefly trained effv2s, cosine 0.9915 against minmax-keep-se's
# 0.9900 in the same runs, r drop within 0.01 on every held-out clip, at the same encoder speed;
# minmax-keep-se alone sat at 0.990 (three runs 0.9895-0.9902). Reading every skip path in float
# (float-skip-all) costs 4-9% encoder time at 384 px for 0.0004 more; keeping SiLU in float gave
# cosine 0.9904 at 2.84x instead of 3.97x end to end
# (benchmarks/results/cpu-2core-amd-epyc/int8.md).
DEFAULT_RECIPE = "minmax-keep-se-float-skip"
# Recipe.calibration -> (ORT calibrator that collects, ORT method the ranges are saved under);
# mse collects ORT's signed histograms and picks each range itself (int8_ranges.py).
CALIBRATION_METHODS = {"minmax": ("MinMax", "MinMax"), "entropy": ("Entropy", "Entropy"),
                       "percentile": ("Percentile", "Percentile"), "mse": ("Percentile", "MinMax")}
QUANT_FORMATS = {"qdq": "QDQ", "qoperator": "QOperator"}  # Recipe.quant_format -> ORT QuantFormat
QUANT_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}  # Recipe.activations -> ORT QuantType


@dataclass
class QuantizeConfig:
    recipe: str = DEFAULT_RECIPE  # key of RECIPES
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)  # frames used
    force: bool = False  # replace an existing encoder.int8.onnx
    drift_stride: int = 15  # stride of the windows the position drift is measured over
    threads: int = 0  # ONNX Runtime threads for calibration and drift; 0 = all cores


def calibration_config(videos: Path | None = None, frames: int | None = None) -> CalibrationConfig:
    """Calibration settings from the command line's --calibrate / --frames."""
    default = CalibrationConfig()
    return replace(default, videos=videos, frames=frames or default.frames)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown int8 recipe {name!r}; "
                         f"choose from {', '.join(RECIPES)}") from None


class _Reader:
    """ORT CalibrationDataReader over prepared batches; set_range lets ORT collect one batch
    at a time, so the calibrator never holds every tensor of every batch at once."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self.input_name, self.batches = input_name, batches
        self.start, self.end, self.position = 0, len(batches), 0

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.position = start_index, end_index, start_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= min(self.end, len(self.batches)):
            return None
        self.position += 1
        return {self.input_name: self.batches[self.position - 1]}


def quantize_encoder(source: Path, target: Path, batches: list[np.ndarray], recipe: Recipe,
                     work: Path, threads: int = 0) -> dict[str, Any]:
    """Write target: source quantized by recipe, calibrated on batches. Returns what was done.

    work keeps the pre-processed graph and the calibrated ranges (per calibration setting), so
    several recipes quantizing one source with the same batches calibrate once."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static  # noqa: PLC0415
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    started = time.perf_counter()
    model_path = source
    if recipe.preprocess:
        model_path = work / "preprocessed.onnx"
        if not model_path.is_file():
            quant_pre_process(str(source), str(model_path), skip_symbolic_shape=True)
    model = onnx.load(str(model_path))
    groups = layer_groups(model)
    if not groups["stem"]:
        raise ModelError(f"{source.name}: no convolution found; not an encoder graph")
    unknown = set(recipe.keep_float) - set(groups)
    if unknown:
        raise UsageError(f"unknown layer groups {sorted(unknown)}; valid: {', '.join(groups)}")
    kept = (*ALWAYS_FLOAT, *recipe.keep_float)
    excluded = sorted({n for g in kept for n in groups[g]})
    input_name = model.graph.input[0].name
    del model
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer warns on every run
    cache = work / _calibration_key(recipe)
    _calibrate(model_path, input_name, batches, recipe, cache, work, threads)
    quantize_static(
        str(model_path), str(target), None,
        quant_format=getattr(QuantFormat, QUANT_FORMATS[recipe.quant_format]),
        op_types_to_quantize=list(recipe.op_types) or None, per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range,
        activation_type=getattr(QuantType, QUANT_TYPES[recipe.activations]),
        weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
        calibrate_method=_method(recipe, collector=False),
        extra_options={"ActivationSymmetric": recipe.symmetric_activations},
        calibration_cache_path=cache)
    quantized = onnx.load(str(target))
    rewired = float_skip_path(quantized, recipe.float_skip) if recipe.float_skip else 0
    if rewired:
        onnx.save(quantized, str(target))
    onnx.checker.check_model(str(target), full_check=True)
    counts: dict[str, int] = {}
    for node in quantized.graph.node:
        if (node.op_type in ("QuantizeLinear", "DequantizeLinear")
                or node.op_type.startswith("QLinear")):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {"kept_float": {g: len(groups[g]) for g in kept},
            "quantized_nodes": counts, "float_skip_inputs": rewired,
            "calibration_batches": len(batches),
            "calibration_frames": int(sum(len(b) for b in batches)),
            "seconds": round(time.perf_counter() - started, 2)}


def _method(recipe: Recipe, collector: bool) -> Any:
    """ORT's method for collecting the calibration data, or for the ranges saved from it."""
    from onnxruntime.quantization import CalibrationMethod  # noqa: PLC0415

    collect, save = CALIBRATION_METHODS[recipe.calibration]
    return getattr(CalibrationMethod, collect if collector else save)


def _calibrate(model_path: Path, input_name: str, batches: list[np.ndarray], recipe: Recipe,
               cache: Path, work: Path, threads: int = 0) -> None:
    """Tensor ranges into cache (ORT's calibration-cache JSON, which quantize_static reads).

    ORT's calibrators, with a session of our own: intra-op spin-waiting off (ORT's default
    session spins, and on a busy 2-core machine spinning threads starve each other: calibration
    took 40 minutes instead of a few), and one batch collected at a time (the histogram methods
    otherwise hold every tensor of every batch)."""
    if cache.is_file():
        return
    import onnxruntime as ort  # noqa: PLC0415
    from onnxruntime.quantization.calibrate import (create_calibrator,  # noqa: PLC0415
                                                    save_tensors_data)

    options = {"moving_average": recipe.moving_average, "percentile": recipe.percentile,
               "symmetric": recipe.symmetric_activations}
    if recipe.calibration == "percentile":
        options["symmetric"] = True  # ORT's percentile method works on |values|
    calibrator = create_calibrator(
        model_path, list(recipe.op_types), augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=_method(recipe, collector=True), extra_options=options)
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        session_options.intra_op_num_threads = threads
    calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path,
                                                    session_options,
                                                    providers=["CPUExecutionProvider"])
    reader = _Reader(input_name, batches)
    for index in range(len(batches)):
        # ORT merges ranges as old + c * (new - old); c = 1 / (k + 1) makes that the plain mean of
        # the per-batch ranges (ORT's fixed 0.01 would keep little more than the first batch).
        calibrator.averaging_constant = 1.0 / (index + 1)
        reader.set_range(index, index + 1)
        calibrator.collect_data(reader)
    if recipe.calibration == "mse":
        save_tensors_data(_mse_ranges(calibrator.collector.histogram_dict), cache)
    else:
        save_tensors_data(calibrator.compute_data(), cache)
    del calibrator
    Path(work / "augmented.onnx").unlink(missing_ok=True)


def _mse_ranges(histograms: dict[str, tuple]) -> Any:
    """MinMax-style ranges from ORT's signed histograms (counts, edges, min, max, threshold)."""
    from onnxruntime.quantization import CalibrationMethod  # noqa: PLC0415
    from onnxruntime.quantization.calibrate import TensorsData  # noqa: PLC0415

    from fsexport.int8_ranges import mse_range  # noqa: PLC0415

    ranges = {}
    for name, (counts, edges, low, high, _threshold) in histograms.items():
        best = mse_range(counts, edges, float(low), float(high))
        ranges[name] = (np.array(best[0], dtype=np.float32), np.array(best[1], dtype=np.float32))
    return TensorsData(CalibrationMethod.MinMax, ranges)


def _calibration_key(recipe: Recipe) -> str:
    """File name of the calibrated ranges: what the calibration pass depends on."""
    parts = [recipe.calibration, "pre" if recipe.preprocess else "raw",
             "-".join(recipe.op_types) or "all", "sym" if recipe.symmetric_activations else "asym",
             "avg" if recipe.moving_average else "ext"]
    if recipe.calibration == "percentile":
        parts.append(f"{recipe.percentile:g}")
    return "calibration-" + "_".join(parts) + ".json"


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity; two all-zero rows (a dead ReLU) count as identical."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
    dot = np.sum(a64 * b64, axis=1)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-30))


def embed_frames(encoder: Any, frames: np.ndarray, batch: int = 16) -> np.ndarray:
    return np.concatenate([encoder.run(frames[i:i + batch]) for i in range(0, len(frames), batch)])


def _positions(head: Any, embeddings: np.ndarray, window: int, stride: int,
               axes: int = 1) -> np.ndarray:
    """The stitched positions fsrun writes: [n], or [n, axes] from a head of several axes."""
    from fsrun.run.encode import Stages  # noqa: PLC0415
    from fsrun.run.head import run_head  # noqa: PLC0415
    from fsrun.run.stitching import plan_windows  # noqa: PLC0415

    plan = plan_windows(len(embeddings), window, stride)
    return run_head(head, embeddings, plan, 32, Stages(), axes=axes)[0]


def measure_drift(fp32: Path, int8: Path, head: Path, decoded: list[VideoFrames], window: int,
                  stride: int = 15, threads: int = 0, axes: int = 1) -> dict[str, Any]:
    """int8 vs fp32 on every sampled frame of the videos: embedding cosine similarity (both
    resize paths) and the stitched positions' difference (--resize source, fsrun's CPU path;
    every axis of a head of several)."""
    from fsrun.backends import BackendOptions, create_backend  # noqa: PLC0415

    options = BackendOptions(threads=threads)
    cosines: dict[str, list[np.ndarray]] = {"source": [], "graph": []}
    position_diffs: list[np.ndarray] = []
    with create_backend("cpu", fp32, options) as enc32, \
            create_backend("cpu", int8, options) as enc8, \
            create_backend("cpu", head, options) as head_backend:
        for item in decoded:
            e32, e8 = embed_frames(enc32, item.resized), embed_frames(enc8, item.resized)
            cosines["source"].append(cosine_similarity(e32, e8))
            p32 = _positions(head_backend, e32, window, stride, axes)
            p8 = _positions(head_backend, e8, window, stride, axes)
            position_diffs.append(np.abs(p32 - p8).reshape(-1))
            if item.full is not None:  # the graph path: a spread of full-size frames
                picks = np.linspace(0, len(item.full) - 1, min(8, len(item.full))).astype(int)
                cosines["graph"].append(cosine_similarity(embed_frames(enc32, item.full[picks]),
                                                embed_frames(enc8, item.full[picks])))
    out: dict[str, Any] = {"videos": len(decoded)}
    for path, values in cosines.items():
        if values:
            v = np.concatenate(values)
            out[f"embedding_cosine_{path}"] = {"mean": round(float(v.mean()), 5),
                                               "min": round(float(v.min()), 5),
                                               "p01": round(float(np.percentile(v, 1)), 5),
                                               "frames": int(len(v))}
    diffs = np.concatenate(position_diffs)
    out["position_max_abs_diff"] = round(float(diffs.max()), 5)  # positions in 0..1
    out["position_mean_abs_diff"] = round(float(diffs.mean()), 5)
    out["position_stride"] = stride
    return out


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quantize_package(package_dir: Path, cfg: QuantizeConfig | None = None,
                     log: Log = _stderr) -> dict[str, Any]:
    """Add encoder.int8.onnx to a package and record it in meta.json (both written atomically)."""
    cfg = cfg or QuantizeConfig()
    recipe = get_recipe(cfg.recipe)
    package = load_package(package_dir)
    meta = package.meta
    target = package.path / INT8_FILE
    if INT8_FILE in meta.files and not cfg.force:
        raise OutputError(f"{target} exists; use --force to replace it")
    import onnxruntime  # noqa: PLC0415

    with calibration_videos(cfg.calibration) as (videos, description), \
            tempfile.TemporaryDirectory(prefix=".int8-", dir=package.path) as work:
        log(f"decode  {description}")
        decoded = decode_videos(videos, meta.fps, meta.input_size)
        batches = calibration_batches(decoded, cfg.calibration)
        log(f"int8    {INT8_FILE}: {recipe.describe()}, {sum(len(b) for b in batches)} frames")
        staged = Path(work) / INT8_FILE
        info = quantize_encoder(package.graph("encoder", "fp32"), staged, batches, recipe,
                                Path(work), cfg.threads)
        log("drift   int8 vs fp32 on every sampled frame of the calibration clips")
        drift = measure_drift(package.graph("encoder", "fp32"), staged,
                              package.graph("head", "fp32"), decoded, meta.window,
                              cfg.drift_stride, cfg.threads, len(meta.axis_names))
        resize_paths = {"source": int(sum(len(b) for b in batches if b.shape[1] == meta.input_size
                                          and b.shape[2] == meta.input_size))}
        resize_paths["graph"] = info["calibration_frames"] - resize_paths["source"]
        record = {
            "file": INT8_FILE, "precision": "int8", "recipe": cfg.recipe,
            "recipe_settings": asdict(recipe), "description": recipe.describe(),
            "calibration": {"source": description, "videos": [v.name for v in videos],
                            "frames": info["calibration_frames"], "resize_paths": resize_paths,
                            "decoder": "fsrun pyav source at the model fps"},
            "kept_float": info["kept_float"], "quantized_nodes": info["quantized_nodes"],
            "float_skip_inputs": info["float_skip_inputs"],
            "drift_vs_fp32": drift, "onnxruntime": onnxruntime.__version__,
            "seconds": info["seconds"],
        }
        os.replace(staged, target)
    _update_meta(package.path, record, sha256_file(target))
    log(f"int8    wrote {target}")
    return record


def _update_meta(package_dir: Path, record: dict[str, Any], digest: str) -> None:
    path = package_dir / META_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data["files"][INT8_FILE] = digest
    data.setdefault("quantization", {})["int8"] = {**record, "sha256": digest}
    write_atomic(path, json.dumps(finite_json(data), indent=2, sort_keys=True, allow_nan=False)
                 + "\n")
