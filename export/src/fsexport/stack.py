"""Stack packages side by side into one: each axis from the package that knows it best.

`fsexport stack STROKE.fsmodel ROLL.fsmodel -o OUT.fsmodel` writes a package whose encoder runs
every part's encoder on the same frames and joins their embeddings ([N, D1 + D2 + ...]), and
whose head gives each part's head its own slice of the joined embedding and keeps, of each
part's outputs, the axes taken from it: every axis comes from the first part that has it, so
the first part gives the stroke. fsrun runs the result as any package (one encoder pass per
frame, one embedding cache entry), and each axis is what its part gives alone: the parts'
graphs are copied unchanged, and the result is checked against them on random frames before
it is written (the differences go into meta.json's parity record).

The cost is every part's encoder on every frame. Why stack at all: a shared encoder fine-tuned
to learn a second axis forgot some of what it knew of the first (the demo's roll recipes), and
a stack keeps a package's stroke as it was while another package adds the roll.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from fsrun.axes import STROKE
from fsrun.errors import ModelError, UsageError
from fsrun.model.package import (
    GRAPH_FILES,
    ModelMeta,
    ModelPackage,
    load_package,
    sha256_file,
    write_package_dir,
)

from fsexport import __version__

ENCODER, HEAD = GRAPH_FILES[("encoder", "fp32")], GRAPH_FILES[("head", "fp32")]
CHECK_FRAMES = 8  # random frames run through the stack and each part before writing
CHECK_TOLERANCE = 1e-5  # largest difference allowed between the stack and its parts
MIN_OPSET = 13  # the joining nodes (Slice, Unsqueeze, Gather) take their axes as inputs
PROVENANCE_KEY = "stack"  # meta.json's provenance entry listing a stack's parts


def stack_parts(meta: ModelMeta) -> list[dict[str, Any]]:
    """A stack's parts as its meta.json records them (package, model_hash, axes, ...); [] for
    any other package."""
    return list(meta.provenance.get(PROVENANCE_KEY) or [])


@dataclass(frozen=True)
class StackConfig:
    parts: tuple[Path, ...]  # the packages, in order; each axis comes from the first that has it
    output: Path  # the stacked package's directory (NAME.fsmodel)
    axes: tuple[str, ...] | None = None  # the axes to keep, the stroke first; None: all of them
    force: bool = False  # replace an existing package at output
    name_parts: tuple[str, ...] = ()  # names recorded for the parts (default: their folder
    # names)

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise UsageError("stack needs two packages or more")
        if self.axes is not None and (not self.axes or self.axes[0] != STROKE):
            raise UsageError("the stacked axes start with the stroke")


@dataclass(frozen=True)
class Taken:
    package: ModelPackage  # one part
    axes: tuple[str, ...]  # the axes the stack takes from it, in the stack's order
    columns: tuple[int, ...]  # their columns among the part's outputs


def plan(packages: list[ModelPackage], wanted: tuple[str, ...] | None) -> list[Taken]:
    """Which axes each part gives: every axis from the first part that has it. UsageError in
    one line when the parts disagree on what a window is or a part would give nothing."""
    first = packages[0].meta
    for package in packages[1:]:
        meta = package.meta
        for name in ("window", "fps", "input_size"):
            if getattr(meta, name) != getattr(first, name):
                raise UsageError(f"{package.path}: {name} {getattr(meta, name)} differs from "
                                 f"{packages[0].path}'s {getattr(first, name)}; a stack's "
                                 "parts share their windows and frames")
    order = []
    for package in packages:
        order += [a for a in package.meta.axis_names if a not in order]
    wanted = wanted or tuple(order)
    missing = [a for a in wanted if a not in order]
    if missing:
        raise UsageError(f"no package gives {', '.join(missing)} (they give {', '.join(order)})")
    taken = []
    for package in packages:
        names = package.meta.axis_names
        mine = tuple(a for a in wanted if a in names
                     and not any(a in t.axes for t in taken))
        if not mine:
            raise UsageError(f"{package.path} gives no axis an earlier package does not "
                             f"({', '.join(names)}): leave it out")
        taken.append(Taken(package, mine, tuple(names.index(a) for a in mine)))
    return taken


def stack_packages(config: StackConfig, log: Callable[[str], None] = print) -> ModelMeta:
    """Write the stacked package (atomically: a reader sees all of it or none) and return its
    meta."""
    import onnx  # noqa: PLC0415

    packages = [load_package(p) for p in config.parts]
    taken = plan(packages, config.axes)
    axes = [a for t in taken for a in t.axes]
    dims = [t.package.meta.embedding_dim for t in taken]

    def fill(staging: Path) -> ModelMeta:
        encoders = [onnx.load(str(t.package.graph("encoder"))) for t in taken]
        heads = [onnx.load(str(t.package.graph("head"))) for t in taken]
        opsets = _common_opsets(encoders + heads, [t.package.path for t in taken] * 2)
        encoder = _join_encoders(encoders, dims, opsets)
        head = _join_heads(heads, taken, dims, opsets)
        for graph, name in ((encoder, ENCODER), (head, HEAD)):
            try:
                onnx.checker.check_model(graph)
            except onnx.checker.ValidationError as exc:
                reason = str(exc).strip().splitlines()[0]
                raise ModelError(f"the stacked {name} is not a valid graph ({reason})") from None
            onnx.save(graph, str(staging / name))
            log(f"write   {name}")
        parity = _check(staging, taken, dims)
        log(f"checked the stack against its parts on {CHECK_FRAMES} random frames: largest "
            f"difference {max(parity.values()):.2g}")
        return _meta(staging, taken, axes, dims, parity, config)

    return write_package_dir(config.output, fill, config.force)


def _common_opsets(models: list[Any], paths: list[Path]) -> dict[str, int]:
    """Operator set per domain of every part's graphs: UsageError in one line when two parts
    were exported at different ones (a node means what its opset says) or at one too old."""
    opsets: dict[str, tuple[int, Path]] = {}
    for model, path in zip(models, paths, strict=True):
        for entry in model.opset_import:
            seen = opsets.setdefault(entry.domain, (entry.version, path))
            if seen[0] != entry.version:
                raise UsageError(f"{path} was exported at ONNX opset {entry.version}, "
                                 f"{seen[1]} at {seen[0]}: export the parts at the same opset")
    default = opsets.get("", (0, paths[0]))
    if default[0] < MIN_OPSET:
        raise UsageError(f"{default[1]} was exported at ONNX opset {default[0]}; a stack needs "
                         f"{MIN_OPSET} or newer")
    return {domain: version for domain, (version, _) in opsets.items()}


def _prefixed(model: Any, k: int) -> Any:
    from onnx import compose  # noqa: PLC0415

    return compose.add_prefix(model, f"part{k}/")


def _join_encoders(models: list[Any], dims: list[int], opsets: dict[str, int]) -> Any:
    """frames -> every part's encoder -> their embeddings side by side [N, sum(dims)]."""
    from onnx import TensorProto, helper  # noqa: PLC0415

    nodes, inits, source = [], [], models[0].graph.input[0]
    outputs = []
    for k, model in enumerate(models):
        graph = _prefixed(model, k).graph
        nodes += [helper.make_node("Identity", [source.name], [graph.input[0].name]), *graph.node]
        inits += list(graph.initializer)
        outputs.append(graph.output[0].name)
    nodes.append(helper.make_node("Concat", outputs, ["embeddings"], axis=1))
    out = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", sum(dims)])
    return _model(models, helper.make_graph(nodes, "stacked_encoder", [source], [out], inits),
                  opsets)


def _join_heads(models: list[Any], taken: list[Taken], dims: list[int],
                opsets: dict[str, int]) -> Any:
    """The joined embeddings [B, T, sum(dims)] -> each part's head on its slice -> the taken
    columns of each, side by side [B, T, axes]."""
    from onnx import TensorProto, helper  # noqa: PLC0415

    window = taken[0].package.meta.window
    source = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT,
                                           ["B", window, sum(dims)])
    nodes, inits, columns, start = [], [], [], 0
    for k, (model, part) in enumerate(zip(models, taken, strict=True)):
        graph = _prefixed(model, k).graph
        p = f"part{k}/stack"
        bounds = [_constant(inits, f"{p}/{name}", [value])
                  for name, value in (("start", start), ("end", start + dims[k]), ("axis", 2))]
        nodes.append(helper.make_node("Slice", ["embeddings", *bounds], [graph.input[0].name]))
        start += dims[k]
        nodes += list(graph.node)
        inits += list(graph.initializer)
        positions = graph.output[0].name
        if not part.package.meta.axes:  # a stroke-only head gives [B, T]
            last = _constant(inits, f"{p}/last", [2])
            nodes.append(helper.make_node("Unsqueeze", [positions, last], [f"{p}/positions"]))
            positions = f"{p}/positions"
        wanted = _constant(inits, f"{p}/columns", list(part.columns))
        nodes.append(helper.make_node("Gather", [positions, wanted], [f"{p}/taken"], axis=2))
        columns.append(f"{p}/taken")
    nodes.append(helper.make_node("Concat", columns, ["positions"], axis=2))
    out = helper.make_tensor_value_info("positions", TensorProto.FLOAT,
                                        ["B", window, sum(len(t.axes) for t in taken)])
    return _model(models, helper.make_graph(nodes, "stacked_head", [source], [out], inits),
                  opsets)


def _constant(inits: list, name: str, values: list[int]) -> str:
    """Add an int64 initializer; its name."""
    from onnx import numpy_helper  # noqa: PLC0415

    inits.append(numpy_helper.from_array(np.array(values, np.int64), name))
    return name


def _model(parts: list[Any], graph: Any, opsets: dict[str, int]) -> Any:
    from onnx import helper  # noqa: PLC0415

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v)
                                                    for d, v in opsets.items()],
                              producer_name="fsexport-stack", producer_version=__version__)
    model.ir_version = max(part.ir_version for part in parts)
    return model


def _check(staging: Path, taken: list[Taken], dims: list[int]) -> dict[str, float]:
    """Largest difference between the stack's graphs and its parts' on the same random frames
    (ModelError above CHECK_TOLERANCE): the parts' graphs are copied, so it should be 0."""
    import onnxruntime as ort  # noqa: PLC0415

    def run(path: Path, data: np.ndarray) -> np.ndarray:
        graph = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return graph.run(None, {graph.get_inputs()[0].name: data})[0]

    meta = taken[0].package.meta
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (CHECK_FRAMES, meta.input_size, meta.input_size, 3), np.uint8)

    joined = run(staging / ENCODER, frames)
    windows = np.resize(joined, (meta.window, joined.shape[1]))[None]  # frames repeated
    positions = run(staging / HEAD, windows)
    encoder_diff = head_diff = 0.0
    start = column = 0
    for part, dim in zip(taken, dims, strict=True):
        alone = run(part.package.graph("encoder"), frames)
        encoder_diff = max(encoder_diff, largest_difference(alone, joined[:, start:start + dim]))
        own = run(part.package.graph("head"), windows[..., start:start + dim])
        own = own.reshape(*own.shape[:2], -1)[..., list(part.columns)]
        head_diff = max(head_diff, largest_difference(
            own, positions[..., column:column + len(part.axes)]))
        start, column = start + dim, column + len(part.axes)
    parity = {ENCODER: encoder_diff, HEAD: head_diff}
    if not all(np.isfinite(v) and v <= CHECK_TOLERANCE for v in parity.values()):
        raise ModelError(f"the stack differs from its parts (encoder {encoder_diff:.3g}, head "
                         f"{head_diff:.3g}; at most {CHECK_TOLERANCE:g} allowed)")
    return parity


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b|, where NaN in both places agrees and NaN in one place is an infinite
    difference (max() over floats would drop a NaN)."""
    both = np.isnan(a) & np.isnan(b)
    return float(np.nan_to_num(np.where(both, 0.0, np.abs(a - b)), nan=np.inf).max())


def _meta(staging: Path, taken: list[Taken], axes: list[str], dims: list[int],
          parity: dict[str, float], config: StackConfig) -> ModelMeta:
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    metas = [t.package.meta for t in taken]
    names = config.name_parts or tuple(t.package.name for t in taken)
    normalizations = [m.normalization for m in metas]
    variants = list(dict.fromkeys(m.variant for m in metas))
    backbones = list(dict.fromkeys(m.backbone for m in metas))
    return ModelMeta(
        variant="+".join(variants), backbone="+".join(backbones),
        input_size=metas[0].input_size, window=metas[0].window, fps=metas[0].fps,
        embedding_dim=sum(dims),
        # each part's own is folded into its encoder; one is recorded when they agree
        normalization=(normalizations[0] if all(n == normalizations[0] for n in normalizations)
                       else {"mean": None, "std": None}),
        trained=all(m.trained for m in metas),
        files={name: sha256_file(staging / name) for name in (ENCODER, HEAD)},
        parity={"max_abs_diff_vs_parts": parity, "notes": {}},
        exporter={"fsexport": __version__, "onnx": onnx.__version__,
                  "onnxruntime": onnxruntime.__version__},
        provenance={PROVENANCE_KEY: [
            {"package": name, "model_hash": t.package.model_hash, "axes": list(t.axes),
             "embedding_dim": dim, "variant": m.variant,
             "normalization": vars(m.normalization), "provenance": m.provenance}
            for name, t, m, dim in zip(names, taken, metas, dims, strict=True)]},
        axes=axes)
