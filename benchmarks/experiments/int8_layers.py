"""Where an int8 encoder loses accuracy: `python -m benchmarks int8-layers --package P`.

For each package, the encoder is quantized with a recipe (as `fsexport quantize` does) and
both graphs run on the same held-out decoded frames with every quantized tensor exposed
(ONNX Runtime's qdq_loss_debug). Each tensor gets two signal-to-quantization-noise ratios
(dB, 20 log10 |x| / |x - y|):
- own: the tensor before against after its own QuantizeLinear/DequantizeLinear pair (what
  rounding that one tensor costs);
- accumulated: the fp32 graph's tensor against the int8 graph's (every error upstream too).
The embedding gets the same accumulated ratio and the cosine fsexport records, and also the
cosine of the float graph with only the weights rounded as the int8 graph rounds them (what
weight quantization alone costs, against activation quantization). Tables per
stage of the network and one plot of the accumulated ratio along the graph, every package on
one axis, show whether one layer or the depth of the network limits the int8 encoder.
Writes int8_layers.json, int8_layers.md and int8_layers.png (or --name).
"""
from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from benchmarks.files import write_json_and_markdown
from benchmarks.experiments.int8_configs import HELD_OUT_SEED, spread_frames
from benchmarks.plots import save_figure
from fsexport.calibration import (CalibrationConfig, SynthClips, calibration_batches,
                                  calibration_videos, decode_videos, render_synth_clips)
from fsexport.quantize import (DEFAULT_RECIPE, cosine_similarity, embed_frames, get_recipe,
                               quantize_encoder)
from fsrun.backends import BackendOptions, create_backend
from fsrun.model.package import load_package

# Where a tensor sits in the network, from its name: timm exports and Keras imports.
STAGE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"blocks\.(\d+)\.\d+", "stage {0}"),  # timm: /blocks/blocks.3/blocks.3.2/conv_pwl/...
    (r"block(\d+)[a-z]_", "stage {0}"),  # Keras applications / kecam: block3b_project_conv
    (r"stack_?(\d+)", "stage {0}"),  # kecam EfficientNetV2: stack2_block1_...
)
PLOTTED_OPS = ("Conv", "Add")  # the feature maps a block passes on


@dataclass
class LayerErrorConfig:
    packages: list[Path]  # packages whose fp32 encoder is quantized and compared
    recipe: str = DEFAULT_RECIPE  # key of fsexport.quantize.RECIPES
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)  # as fsexport
    held_out: SynthClips = field(default_factory=lambda: SynthClips(
        count=4, seconds=3.0, size=(256, 192), seed=HELD_OUT_SEED))  # frames compared
    frames: int = 8  # held-out frames; every exposed tensor of each is held in memory
    batch: int = 2  # frames per call of the exposed graphs
    threads: int = 0  # ONNX Runtime threads; 0 = all cores


def stage_of(tensor: str) -> str:
    for pattern, label in STAGE_PATTERNS:
        match = re.search(pattern, tensor)
        if match:
            return label.format(*match.groups())
    head = tensor.strip("/").split("/")[0]
    return head.rsplit("_output", 1)[0] or tensor


def _batches(name: str, frames: np.ndarray, batch: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(frames), batch):
        yield {name: frames[start:start + batch]}


def _tensor_errors(float_path: Path, int8_path: Path, frames: np.ndarray, batch: int,
                   work: Path) -> list[dict[str, Any]]:
    """One row per quantized tensor, in the float graph's node order."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization.qdq_loss_debug import (  # noqa: PLC0415
        collect_activations, compute_activation_error, create_activation_matching,
        modify_model_output_intermediate_tensors)

    graph = onnx.load(str(float_path)).graph
    input_name = graph.input[0].name
    order = {out: i for i, node in enumerate(graph.node) for out in node.output}
    producer = {out: node.op_type for node in graph.node for out in node.output}
    exposed = {}
    for label, path in (("float", float_path), ("int8", int8_path)):
        exposed[label] = work / f"exposed_{label}.onnx"
        modify_model_output_intermediate_tensors(str(path), str(exposed[label]))
    activations = {label: collect_activations(str(path), _batches(input_name, frames, batch))
                   for label, path in exposed.items()}
    errors = compute_activation_error(create_activation_matching(activations["int8"],
                                                                 activations["float"]))
    rows = [{"tensor": name, "position": order[name], "op": producer[name],
             "stage": stage_of(name), "own_db": float(err["qdq_err"]),
             "accumulated_db": float(err["xmodel_err"])}
            for name, err in errors.items() if name in order and "xmodel_err" in err]
    rows.sort(key=lambda row: row["position"])
    total = max(1, len(graph.node) - 1)
    for row in rows:
        row["depth"] = round(row["position"] / total, 4)
    return rows


def summarize_stages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage, in graph order: accumulated ratio entering and leaving it, and its worst
    own-rounding tensor."""
    stages: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        stages.setdefault(row["stage"], []).append(row)
    summary, previous_exit = [], None
    for stage, members in sorted(stages.items(), key=lambda item: item[1][0]["position"]):
        worst = min(members, key=lambda row: row["own_db"])
        summary.append({
            "stage": stage, "tensors": len(members),
            "entry_db": previous_exit if previous_exit is not None else members[0]["accumulated_db"],
            "exit_db": members[-1]["accumulated_db"],
            "worst_own_db": worst["own_db"], "worst_own_tensor": worst["tensor"]})
        previous_exit = members[-1]["accumulated_db"]
    return summary


def _embeddings(graph: Path, frames: np.ndarray, threads: int) -> np.ndarray:
    with create_backend("cpu", graph, BackendOptions(threads=threads)) as encoder:
        return embed_frames(encoder, frames)


def _embedding_error(reference: np.ndarray, quantized: np.ndarray) -> dict[str, float]:
    from onnxruntime.quantization.qdq_loss_debug import (  # noqa: PLC0415
        compute_signal_to_quantization_noice_ratio as sqnr_db)

    cosine = cosine_similarity(reference, quantized)
    return {"accumulated_db": float(sqnr_db(reference, quantized)),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())}


def weights_only_graph(float_path: Path, int8_path: Path, target: Path) -> int:
    """Write target: the float graph with every initializer that the int8 graph stores quantized
    (ORT names it <name>_quantized, behind a DequantizeLinear) replaced by its dequantized values.
    Returns how many were replaced."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    int8 = onnx.load(str(int8_path))
    stored = {i.name: i for i in int8.graph.initializer}
    rounded: dict[str, np.ndarray] = {}
    for node in int8.graph.node:
        name = node.input[0]
        if (node.op_type != "DequantizeLinear" or name not in stored
                or not name.endswith("_quantized")):
            continue
        values = numpy_helper.to_array(stored[name]).astype(np.float64)
        scale = numpy_helper.to_array(stored[node.input[1]]).astype(np.float64)
        zero = (numpy_helper.to_array(stored[node.input[2]]).astype(np.float64)
                if len(node.input) > 2 and node.input[2] in stored else np.zeros_like(scale))
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and values.ndim > 1:  # per channel along axis
            shape = [1] * values.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        rounded[name.removesuffix("_quantized")] = (values - zero) * scale
    model = onnx.load(str(float_path))
    replaced = 0
    for init in model.graph.initializer:
        if init.name in rounded:
            dtype = numpy_helper.to_array(init).dtype
            init.CopyFrom(numpy_helper.from_array(rounded[init.name].astype(dtype), init.name))
            replaced += 1
    onnx.save(model, str(target))
    return replaced


def measure_package(path: Path, cfg: LayerErrorConfig, work: Path,
                    log: Callable[[str], None]) -> dict[str, Any]:
    package = load_package(path)
    meta = package.meta
    with calibration_videos(cfg.calibration) as (videos, description):
        batches = calibration_batches(decode_videos(videos, meta.fps, meta.input_size),
                                      cfg.calibration)
    scratch = work / path.name
    scratch.mkdir()
    int8_path = scratch / "encoder.int8.onnx"
    quantize_encoder(package.graph("encoder", "fp32"), int8_path, batches,
                     get_recipe(cfg.recipe), scratch, cfg.threads)
    clips = render_synth_clips(scratch / "held_out", cfg.held_out)
    held = decode_videos([c.video for c in clips], meta.fps, meta.input_size)
    frames = spread_frames(held, cfg.frames, full=False)
    # The float side is the pre-processed graph the quantizer worked on, so names match.
    rows = _tensor_errors(scratch / "preprocessed.onnx", int8_path, frames, cfg.batch, scratch)
    reference = _embeddings(package.graph("encoder", "fp32"), frames, cfg.threads)
    embedding = _embedding_error(reference, _embeddings(int8_path, frames, cfg.threads))
    weights_only = scratch / "weights_only.onnx"
    embedding["weights_rounded"] = weights_only_graph(scratch / "preprocessed.onnx", int8_path,
                                                      weights_only)
    embedding["weights_only_cosine"] = float(cosine_similarity(
        reference, _embeddings(weights_only, frames, cfg.threads)).mean())
    log(f"layers  {path.name}: {len(rows)} tensors, accumulated {rows[0]['accumulated_db']:.1f}"
        f" dB after the first, {rows[-1]['accumulated_db']:.1f} dB after the last; embedding "
        f"{embedding['accumulated_db']:.1f} dB, cosine {embedding['cosine_mean']:.4f} (weights "
        f"alone {embedding['weights_only_cosine']:.5f})")
    return {"package": path.name, "variant": meta.variant, "input_size": meta.input_size,
            "trained": meta.trained, "calibration": description, "frames": int(len(frames)),
            "embedding": embedding, "stages": summarize_stages(rows), "tensors": rows}


def measure(cfg: LayerErrorConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fsrun-int8-layers-") as scratch:
        packages = [measure_package(Path(p), cfg, Path(scratch), log) for p in cfg.packages]
    return {"recipe": cfg.recipe, "recipe_description": get_recipe(cfg.recipe).describe(),
            "packages": packages, "held_out": vars(cfg.held_out), "frames": cfg.frames,
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1)}


def to_markdown(results: dict[str, Any], plot_name: str | None) -> str:
    lines = ["# int8 encoder: where the error comes from", "",
             f"Measured {results['started']} ({results['duration_s']} s). Recipe "
             f"`{results['recipe']}` ({results['recipe_description']}), {results['frames']} "
             "held-out decoded frames per package. dB: 20 log10 |x| / |x - y|; 'own' is one "
             "tensor's rounding alone, 'accumulated' is the fp32 graph against the int8 graph "
             "at that tensor (everything upstream included).", "",
             "| package | trained | input | first tensor dB | last tensor dB | embedding dB | "
             "embedding cosine mean / min | weights alone: cosine |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for pkg in results["packages"]:
        first, last = pkg["tensors"][0], pkg["tensors"][-1]
        emb = pkg["embedding"]
        lines.append(f"| {pkg['package']} | {'yes' if pkg['trained'] else 'no'} | "
                     f"{pkg['input_size']} | {first['accumulated_db']:.1f} | "
                     f"{last['accumulated_db']:.1f} | {emb['accumulated_db']:.1f} | "
                     f"{emb['cosine_mean']:.4f} / {emb['cosine_min']:.4f} | "
                     f"{emb.get('weights_only_cosine', float('nan')):.5f} |")
    if plot_name:
        lines += ["", f"![accumulated error along the graph]({plot_name})"]
    for pkg in results["packages"]:
        lines += ["", f"## {pkg['package']}", "",
                  "| stage | tensors | accumulated dB in -> out | worst own dB | at |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {s['stage']} | {s['tensors']} | {s['entry_db']:.1f} -> {s['exit_db']:.1f}"
                  f" | {s['worst_own_db']:.1f} | `{s['worst_own_tensor']}` |"
                  for s in pkg["stages"]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for pkg in results["packages"]:
        # Feature maps only: a Sigmoid's output is near-constant and its ratio says little.
        rows = [row for row in pkg["tensors"] if row["op"] in PLOTTED_OPS] or pkg["tensors"]
        depth = [row["depth"] for row in rows]
        line, = axis.plot(depth, [row["accumulated_db"] for row in rows], lw=1.2,
                          label=f"{pkg['package']} ({'trained' if pkg['trained'] else 'random'})")
        axis.scatter([1.0], [pkg["embedding"]["accumulated_db"]], color=line.get_color(),
                     marker="*", s=90, zorder=3)
    axis.set_xlabel("position in the encoder graph (0 = input, 1 = embedding; star: embedding); "
                    "conv and residual outputs")
    axis.set_ylabel("fp32 vs int8, accumulated SQNR (dB)")
    axis.set_title(f"int8 encoder error along the graph ({results['recipe']})")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def write(out: Path, results: dict[str, Any], name: str = "int8_layers") -> tuple[Path, ...]:
    out.mkdir(parents=True, exist_ok=True)
    picture = plot(results, out / f"{name}.png")
    paths = write_json_and_markdown(out, name, results,
                                    to_markdown(results, picture.name if picture else None))
    return (*paths, *([picture] if picture else []))
